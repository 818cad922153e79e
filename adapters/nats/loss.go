package nats

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"hexapost/ports"
)

// lossWatch is what a subscription remembers of its checks for lost changes.
type lossWatch struct {
	// checked is when it last checked; created, when the consumer it saw then was created.
	checked, created time.Time
	// lost says the last check found changes removed before the consumer was given them, so
	// that one incident is told once, however many checks see it.
	lost bool
}

// checkLoss tells, once per incident, of changes that MaxMsgs removed before the consumer was
// given them, and of a consumer that was deleted, with its stream or alone: the first is
// created again if missing; the other is found by its new creation time when another process
// created it first. It asks the server only once every LossCheck: a fetch cannot see a gap,
// and the gap closes once the consumer is given what follows it.
func (b *Bus) checkLoss(ctx context.Context, w *lossWatch) error {
	if time.Since(w.checked) < b.policy.LossCheck {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	// The stream first: its first sequence can only have grown by the time the consumer
	// answers, so the comparison never sees a gap that was not there.
	stream, err := b.js.Stream(ctx, b.cfg.Stream)
	var info *jetstream.ConsumerInfo
	if err == nil {
		info, err = b.cons.Info(ctx)
	}
	gone := errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrConsumerNotFound)
	if gone {
		if _, _, err = b.ensure(ctx); err != nil {
			return err
		}
		if stream, err = b.js.Stream(ctx, b.cfg.Stream); err == nil {
			info, err = b.cons.Info(ctx)
		}
	}
	if err != nil {
		return wrap("check for lost changes", err)
	}
	gone = gone || !w.created.IsZero() && !info.Created.Equal(w.created)
	// Sequences up to FirstSeq-1 are gone (in an empty stream FirstSeq is LastSeq+1).
	lost := int64(stream.CachedInfo().State.FirstSeq) - 1 - int64(info.Delivered.Stream)
	switch {
	case gone:
		b.policy.Lost(ports.LossStreamGone, b.lossAttrs()...)
	case lost > 0 && !w.lost:
		b.policy.Lost(ports.LossTrimmed, b.lossAttrs("changes_lost", lost)...)
	}
	w.checked, w.created, w.lost = time.Now(), info.Created, !gone && lost > 0
	return nil
}

// lossAttrs returns the attributes of a loss's log line, followed by more.
func (b *Bus) lossAttrs(more ...any) []any {
	return append([]any{"stream", b.cfg.Stream, "consumer", b.cfg.Durable}, more...)
}

// warnIfFragile warns when the consumer's backlog is close to MaxMsgs. The stream is on disk,
// so a server restart keeps it.
func (b *Bus) warnIfFragile(ctx context.Context) {
	info, err := b.cons.Info(ctx)
	if err != nil {
		return // advice, not a condition to start
	}
	b.policy.WarnBacklog(int64(info.NumPending)+int64(info.NumAckPending), b.cfg.MaxMsgs,
		"stream", b.cfg.Stream, "consumer", b.cfg.Durable)
}
