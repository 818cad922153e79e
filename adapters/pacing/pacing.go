// Package pacing spaces the outbox relay's rounds, so that under load one round takes the
// changes of many commits instead of each commit paying for a round of its own.
package pacing

import (
	"context"
	"sync"
	"time"

	"hexapost/ports"
)

// Outbox is a ports.Outbox whose Relay starts a round no sooner than a spacing after the
// previous round began, unless that round took a full batch (more is waiting) or the spacing has
// passed already (an append after a quiet spell is relayed at once). Rounds through it run one
// at a time.
type Outbox struct {
	ports.Outbox
	spacing time.Duration

	mu    sync.Mutex
	began time.Time // when the previous round began
	full  bool      // whether the previous round took a full batch
}

var _ ports.Outbox = (*Outbox)(nil)

// New returns an Outbox in front of next that spaces rounds by spacing.
func New(next ports.Outbox, spacing time.Duration) *Outbox {
	return &Outbox{Outbox: next, spacing: spacing}
}

// Relay waits out the spacing, or ctx, then relays through next.
func (o *Outbox) Relay(ctx context.Context, maxChanges int, publish func(context.Context, []ports.Change) error) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if wait := o.spacing - time.Since(o.began); !o.full && wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, ctx.Err()
		case <-t.C:
		}
	}
	o.began = time.Now()
	n, err := o.Outbox.Relay(ctx, maxChanges, publish)
	o.full = err == nil && n == maxChanges
	return n, err
}
