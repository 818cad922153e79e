package command

import (
	"context"
	"log/slog"
	"time"

	"hexapost/ports"
)

// RelayConfig tunes the relay; zero values take the defaults.
type RelayConfig struct {
	// Batch is the most changes published in one round (default 100).
	Batch int
	// Poll is how often the outbox is checked when nothing signals an append, which catches
	// appends of other processes (default 250ms).
	Poll time.Duration
	// MaxBackoff caps the wait after a failed round (default 5s).
	MaxBackoff time.Duration
}

// Relay moves appended changes from the outbox to the bus.
type Relay struct {
	outbox ports.Outbox
	pub    ports.Publisher
	log    *slog.Logger
	cfg    RelayConfig
}

// NewRelay returns a Relay.
func NewRelay(outbox ports.Outbox, pub ports.Publisher, log *slog.Logger, cfg RelayConfig) *Relay {
	if cfg.Batch <= 0 {
		cfg.Batch = 100
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 250 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Second
	}
	return &Relay{outbox: outbox, pub: pub, log: log, cfg: cfg}
}

// Run relays until ctx ends, batching naturally: a round starts as soon as an append signals
// and no round is in flight, and what is appended while one is in flight makes the next
// round's batch, so a busy outbox gets bigger batches without any change waiting on a timer.
// Failures are logged and retried with a growing delay: the outbox keeps every change until
// the bus has taken it.
func (r *Relay) Run(ctx context.Context) {
	failures := 0
	poll := time.NewTimer(r.cfg.Poll)
	defer poll.Stop()
	for ctx.Err() == nil {
		n, err := r.outbox.Relay(ctx, r.cfg.Batch, r.publish)
		wait, appended := r.cfg.Poll, r.outbox.Appended()
		switch {
		case err == nil && n == r.cfg.Batch:
			failures = 0
			continue // more may be waiting
		case err == nil:
			failures = 0
		case ctx.Err() != nil:
			return
		default:
			failures++
			wait = min(r.cfg.Poll<<min(failures, 8), r.cfg.MaxBackoff)
			appended = nil // a failing bus is not hammered on every append: wait out the backoff
			r.log.Warn("relay round failed; retrying", "error", err, "failures", failures, "retry_in", wait)
		}
		poll.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-appended:
		case <-poll.C:
		}
	}
}

func (r *Relay) publish(ctx context.Context, changes []ports.Change) error {
	if err := r.pub.Publish(ctx, changes); err != nil {
		return err
	}
	// Debug: a line per event at info costs a busy relay more than the publish itself; the
	// outbox and publish metrics say how it is doing.
	if !r.log.Enabled(ctx, slog.LevelDebug) {
		return nil
	}
	for _, c := range changes {
		attrs := []any{"post_id", c.Event.PostID, "version", c.Event.Version, "event_id", c.Event.ID,
			"event_type", string(c.Event.Type)}
		if c.Metadata.RequestID != "" {
			attrs = append(attrs, "request_id", c.Metadata.RequestID)
		}
		r.log.Debug("event published", attrs...)
	}
	return nil
}
