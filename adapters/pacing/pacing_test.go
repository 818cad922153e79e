package pacing_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"hexapost/adapters/pacing"
	"hexapost/core/post"
	"hexapost/ports"
)

// outbox is a ports.Outbox of pending changes that counts its rounds.
type outbox struct {
	mu      sync.Mutex
	pending []ports.Change
	rounds  int
}

func (o *outbox) add(n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for range n {
		o.pending = append(o.pending, ports.Change{Event: post.Event{PostID: "p"}})
	}
}

func (o *outbox) Relay(ctx context.Context, maxChanges int, publish func(context.Context, []ports.Change) error) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.rounds++
	n := min(maxChanges, len(o.pending))
	if err := publish(ctx, o.pending[:n]); err != nil {
		return 0, err
	}
	o.pending = o.pending[n:]
	return n, nil
}

func (o *outbox) Appended() <-chan struct{} { return nil }

func ignore(context.Context, []ports.Change) error { return nil }

func TestAChangeAfterAQuietSpellIsRelayedAtOnceAndTheNextRoundWaitsForTheSpacing(t *testing.T) {
	t.Parallel()
	const spacing = 200 * time.Millisecond
	inner := &outbox{}
	o := pacing.New(inner, spacing)
	inner.add(1)
	first := time.Now()
	if n, err := o.Relay(t.Context(), 100, ignore); n != 1 || err != nil {
		t.Fatalf("first round: %d, %v; want 1, nil", n, err)
	}
	// Three commits while the spacing runs: the next round takes them together.
	inner.add(1)
	inner.add(1)
	inner.add(1)
	if n, err := o.Relay(t.Context(), 100, ignore); n != 3 || err != nil {
		t.Fatalf("second round: %d, %v; want 3, nil", n, err)
	}
	if took := time.Since(first); took < spacing {
		t.Errorf("the second round began %v after the first, want at least %v", took, spacing)
	}
	if inner.rounds != 2 {
		t.Errorf("%d rounds, want 2", inner.rounds)
	}
}

func TestAFullBatchIsFollowedAtOnceAndAWaitEndsWithTheContext(t *testing.T) {
	t.Parallel()
	inner := &outbox{}
	o := pacing.New(inner, time.Hour)
	inner.add(5)
	for i, want := range []int{2, 2, 1} {
		if n, err := o.Relay(t.Context(), 2, ignore); n != want || err != nil {
			t.Fatalf("round %d: %d, %v; want %d, nil", i+1, n, err, want)
		}
	}
	// The last round was not full: the next one waits out the hour, unless its context ends.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if n, err := o.Relay(ctx, 2, ignore); n != 0 || !errors.Is(err, context.Canceled) {
		t.Fatalf("round after a partial one, context canceled: %d, %v; want 0, context.Canceled", n, err)
	}
	if inner.rounds != 3 {
		t.Errorf("%d rounds reached the outbox, want 3", inner.rounds)
	}
}
