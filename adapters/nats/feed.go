package nats

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"hexapost/adapters/wire"
	"hexapost/ports"
)

var _ ports.ChangeFeed = (*Bus)(nil)

// feedBatch bounds the messages one pull of the feed takes.
const feedBatch = 256

// Head returns the stream sequence of the last change; zero when the stream is empty.
func (b *Bus) Head(ctx context.Context) (ports.Position, error) {
	info, err := b.streamInfo(ctx)
	if err != nil {
		return ports.Position{}, err
	}
	return ports.Position{Major: info.State.LastSeq}, nil
}

func (b *Bus) streamInfo(ctx context.Context) (*jetstream.StreamInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	s, err := b.js.Stream(ctx, b.cfg.Stream)
	if err != nil {
		return nil, wrap("feed: stream "+b.cfg.Stream, err)
	}
	return s.CachedInfo(), nil
}

// Tail reads the stream through an ordered consumer of its own, an ephemeral one that
// acknowledges nothing and that the server forgets once it is idle, starting at the sequence
// after `after`. Sequences of the stream follow one another without a hole unless messages
// were removed, so a sequence that is not the one after the last seen tells of a gap.
func (b *Bus) Tail(ctx context.Context, after ports.Position, fn func([]ports.FeedEntry) error) error {
	if after.Minor != 0 {
		return fmt.Errorf("nats: feed: %s is no stream sequence: %w", after, ports.ErrPositionGone)
	}
	info, err := b.streamInfo(ctx)
	if err != nil {
		return err
	}
	switch st := info.State; {
	case after.Major > st.LastSeq:
		return fmt.Errorf("nats: feed: %d is beyond the stream's last sequence %d: %w", after.Major, st.LastSeq, ports.ErrPositionGone)
	case after.Major+1 < st.FirstSeq:
		return fmt.Errorf("nats: feed: the stream keeps sequences from %d on, not %d: %w", st.FirstSeq, after.Major+1, ports.ErrPositionGone)
	}
	cons, err := b.js.OrderedConsumer(ctx, b.cfg.Stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{b.cfg.Subject}, DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq: after.Major + 1, InactiveThreshold: 10 * time.Second,
	})
	if err != nil {
		return wrap("feed: ordered consumer", err)
	}
	next := after.Major + 1 // the sequence the next message must have
	idle := true
	for ctx.Err() == nil {
		var batch jetstream.MessageBatch
		if idle {
			batch, err = cons.Fetch(1, jetstream.FetchMaxWait(500*time.Millisecond))
		} else {
			batch, err = cons.FetchNoWait(feedBatch)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return wrap("feed: fetch", err)
		}
		entries := make([]ports.FeedEntry, 0, 1)
		received := 0
		for m := range batch.Messages() {
			received++
			md, err := m.Metadata()
			if err != nil {
				return fmt.Errorf("nats: feed: metadata: %w", err)
			}
			seq := md.Sequence.Stream
			if seq != next {
				return fmt.Errorf("nats: feed: sequence %d follows %d: %w", seq, next-1, ports.ErrPositionGone)
			}
			next = seq + 1
			if c, bad := wire.Decode(m.Data()); bad == nil {
				entries = append(entries, ports.FeedEntry{Position: ports.Position{Major: seq}, Change: c})
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && ctx.Err() == nil {
			return wrap("feed: fetch", err)
		}
		idle = received == 0
		if len(entries) > 0 {
			if err := fn(entries); err != nil {
				return err
			}
		}
	}
	return nil
}
