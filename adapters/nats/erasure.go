package nats

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

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
	erased := wire.PostSet(postIDs)
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
	return deleteAll(ctx, s, name, seqs, b.cfg.Timeout)
}

// eraseDeleters is how many deletes an erasure has in flight at once: JetStream deletes one
// message per request, so a post with many messages would otherwise wait for as many round trips
// one after the other.
const eraseDeleters = 32

// deleteAll deletes the messages at seqs, eraseDeleters at a time, and returns how many it
// deleted; a message gone meanwhile is not an error.
func deleteAll(ctx context.Context, s jetstream.Stream, name string, seqs []uint64, timeout time.Duration) (int, error) {
	var (
		removed atomic.Int64
		mu      sync.Mutex
		first   error
		wg      sync.WaitGroup
	)
	next := make(chan uint64)
	for range min(eraseDeleters, len(seqs)) {
		wg.Go(func() {
			for seq := range next {
				dctx, cancel := context.WithTimeout(ctx, timeout)
				err := s.SecureDeleteMsg(dctx, seq)
				cancel()
				switch {
				case err == nil:
					removed.Add(1)
				case errors.Is(err, jetstream.ErrMsgNotFound) || isGone(err):
				default:
					mu.Lock()
					if first == nil {
						first = wrap(fmt.Sprintf("erase: delete %s #%d", name, seq), err)
					}
					mu.Unlock()
				}
			}
		})
	}
	for _, seq := range seqs {
		next <- seq
	}
	close(next)
	wg.Wait()
	return int(removed.Load()), first
}

// isGone reports whether a delete failed because the message is not there any more.
func isGone(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeMessageNotFound
}
