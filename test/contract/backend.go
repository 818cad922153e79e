package contract

import (
	"os"
	"testing"
)

// Backend returns the address of a real backend from its environment variable (POSTS_REDIS_URL,
// POSTS_NATS_URL, POSTS_MONGO_URI, …). Without it the test skips with the reason — except under
// CI=true, where a missing backend fails the test, so CI can never go green by skipping.
func Backend(tb testing.TB, variable string) string {
	tb.Helper()
	v := os.Getenv(variable)
	if v != "" {
		return v
	}
	reason := variable + " is not set; start the test backends with: eval \"$(bash test/backends/up.sh)\""
	if os.Getenv("CI") == "true" {
		tb.Fatal(reason + " (CI=true: a missing backend is a failure)")
	}
	tb.Skip(reason)
	return ""
}
