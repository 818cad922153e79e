package nats

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"hexapost/adapters/wire"
	"hexapost/ports"
)

var _ ports.BusEraser = (*Bus)(nil)

// erasePage is how many messages one fetch of an erasure reads.
const erasePage = 500

// EraseFromBus deletes the messages of the posts that still carry personal data from the
// changes stream and from the dead-letter stream. All posts share one subject, so it reads each
// stream whole with an ordered consumer of its own, up to the last message at the start, and
// deletes the matching ones by sequence with SecureDeleteMsg, which also overwrites them in the
// stream's files.
func (b *Bus) EraseFromBus(ctx context.Context, postIDs []string) (int, error) {
	erased := make(map[string]bool, len(postIDs))
	for _, id := range postIDs {
		erased[id] = true
	}
	n := 0
	for _, name := range []string{b.cfg.Stream, b.cfg.DeadStream} {
		m, err := b.eraseIn(ctx, name, erased)
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (b *Bus) eraseIn(ctx context.Context, name string, erased map[string]bool) (int, error) {
	s, err := b.js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, wrap("erase: stream "+name, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, wrap("erase: stream "+name, err)
	}
	last := info.State.LastSeq
	if info.State.Msgs == 0 {
		return 0, nil
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return 0, wrap("erase: read "+name, err)
	}
	var seqs []uint64
	for seen := uint64(0); seen < last; {
		// No wait: the messages up to last are in the stream already, so a fetch that finds
		// none means they were trimmed or deleted meanwhile.
		batch, err := cons.FetchNoWait(erasePage)
		if err != nil {
			return 0, wrap("erase: read "+name, err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			md, err := m.Metadata()
			if err != nil {
				return 0, wrap("erase: read "+name, err)
			}
			seen = md.Sequence.Stream
			if wire.Erasable(m.Data(), erased) {
				seqs = append(seqs, seen)
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return 0, wrap("erase: read "+name, err)
		}
		if got == 0 {
			break
		}
	}
	removed := 0
	for _, seq := range seqs {
		ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
		err := s.SecureDeleteMsg(ctx, seq)
		cancel()
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound) || err != nil && isGone(err):
		case err != nil:
			return removed, wrap(fmt.Sprintf("erase: delete %s #%d", name, seq), err)
		default:
			removed++
		}
	}
	return removed, nil
}

// isGone reports whether a delete failed because the message is not there any more.
func isGone(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeMessageNotFound
}
