package e2e_test

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestMongoLostAtRuntime kills the read model's server under a running hexapost: reads answer
// 503 in bounded time, /readyz names the read model, and reads recover by themselves.
func TestMongoLostAtRuntime(t *testing.T) {
	t.Parallel()
	f := startPrivateFerretDB(t)
	p := start(t, map[string]string{"POSTS_READ_MODEL": "mongo", "POSTS_MONGO_URI": f.URI()})
	id := do(t, "POST", p.CommandURL+"/posts", map[string]string{
		"title": "t", "content": "c", "author_name": "outage",
	}).must(t, http.StatusCreated).str("id")
	do(t, "GET", p.QueryURL+"/posts/"+id+"?min_version=1", nil).must(t, http.StatusOK)

	f.kill()
	begin := time.Now()
	r := do(t, "GET", p.QueryURL+"/posts/"+id, nil)
	took := time.Since(begin)
	if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" || took > 15*time.Second {
		t.Fatalf("with the read model down: %d after %s (Retry-After %q), want 503 in bounded time; %s",
			r.Status, took, r.Header.Get("Retry-After"), r.Raw)
	}
	ready := do(t, "GET", p.QueryURL+"/readyz", nil)
	if ready.Status != http.StatusServiceUnavailable || !strings.Contains(string(ready.Raw), "read_model") {
		t.Fatalf("readyz with the read model down: %d %s", ready.Status, ready.Raw)
	}
	t.Logf("503 after %s; readyz: %s", took.Round(time.Millisecond), ready.Raw)

	f.start(t)
	eventually(t, 30*time.Second, "reads to recover", func() bool {
		return do(t, "GET", p.QueryURL+"/posts/"+id, nil).Status == http.StatusOK
	})
	do(t, "GET", p.QueryURL+"/readyz", nil).must(t, http.StatusOK)
}
