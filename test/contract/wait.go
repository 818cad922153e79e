package contract

import (
	"testing"
	"time"

	"github.com/google/uuid"
)

// defaultTimeout bounds every wait of a suite unless its Features say otherwise.
const defaultTimeout = 10 * time.Second

// eventually polls cond until it holds, failing the test with msg if it does not within timeout.
func eventually(t *testing.T, timeout time.Duration, cond func() bool, msg string) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out after %s waiting for %s", timeout, msg)
		case <-tick.C:
		}
	}
}

// receive returns the next value from ch, failing the test with msg if none comes in time.
func receive[T any](t *testing.T, timeout time.Duration, ch <-chan T, msg string) T {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	select {
	case v := <-ch:
		return v
	case <-deadline.C:
		t.Fatalf("timed out after %s waiting for %s", timeout, msg)
		var zero T
		return zero
	}
}

// newID returns a fresh UUIDv7, the form of every id the service generates, so that an
// adapter that stores ids in a UUID column accepts the suites' ids.
func newID() string { return uuid.Must(uuid.NewV7()).String() }

func ptr[T any](v T) *T { return &v }
