package memory

import (
	"context"
	"fmt"
	"sync"

	"hexapost/adapters/wire"
	"hexapost/core/post"
	"hexapost/ports"
)

// DefaultFeedRetain is how many changes a Feed keeps when NewFeed is given no bound.
const DefaultFeedRetain = 10_000

// Feed is the change feed of the in-memory bus: a ring of the last changes published, each
// numbered from 1, which is the window a reader may resume from. It hears of the changes as a
// decorator of the bus's Publisher, so the bus itself stays a plain queue.
type Feed struct {
	mu   sync.Mutex
	ring []ports.Change
	// last is the number of the last change recorded; the ring holds the numbers
	// last-len(ring)+1 … last once it is full.
	last uint64
	// more is closed, and replaced, when changes are recorded, waking every waiting Tail.
	more chan struct{}
}

var _ ports.ChangeFeed = (*Feed)(nil)

// NewFeed returns a Feed that keeps the last retain changes (DefaultFeedRetain when retain is
// not positive).
func NewFeed(retain int) *Feed {
	if retain <= 0 {
		retain = DefaultFeedRetain
	}
	return &Feed{ring: make([]ports.Change, 0, retain), more: make(chan struct{})}
}

// Publisher returns next, recording every change next accepted, in the order published.
func (f *Feed) Publisher(next ports.Publisher) ports.Publisher { return feedPublisher{f, next} }

type feedPublisher struct {
	f    *Feed
	next ports.Publisher
}

func (p feedPublisher) Publish(ctx context.Context, changes []ports.Change) error {
	if err := p.next.Publish(ctx, changes); err != nil {
		return err
	}
	p.f.record(changes)
	return nil
}

func (f *Feed) record(changes []ports.Change) {
	if len(changes) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range changes {
		c = copyChange(c) // the publisher's pointers stay its own
		f.last++
		if len(f.ring) < cap(f.ring) {
			f.ring = append(f.ring, c)
		} else {
			f.ring[(f.last-1)%uint64(cap(f.ring))] = c
		}
	}
	close(f.more)
	f.more = make(chan struct{})
}

// Head returns the number of the last change recorded.
func (f *Feed) Head(context.Context) (ports.Position, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return ports.Position{Major: f.last}, nil
}

// Tail hands fn the recorded changes after `after`, waiting for new ones; ports.ErrPositionGone
// once the ring no longer holds the change after the one fn was last given.
func (f *Feed) Tail(ctx context.Context, after ports.Position, fn func([]ports.FeedEntry) error) error {
	next := after.Major + 1
	if after.Minor != 0 {
		return fmt.Errorf("memory: feed: %s is no position of this bus: %w", after, ports.ErrPositionGone)
	}
	for {
		batch, more, err := f.since(next)
		if err != nil {
			return err
		}
		if len(batch) > 0 {
			if err := fn(batch); err != nil {
				return err
			}
			next = batch[len(batch)-1].Position.Major + 1
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-more:
		}
	}
}

// maxBatch bounds the changes handed to Tail's fn at once.
const maxBatch = 256

// since returns copies of at most maxBatch changes from number next on, and the channel closed
// when more are recorded.
func (f *Feed) since(next uint64) ([]ports.FeedEntry, <-chan struct{}, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	first := f.last - uint64(len(f.ring)) + 1
	switch {
	case next > f.last+1:
		return nil, nil, fmt.Errorf("memory: feed: position %d is beyond the last change %d: %w",
			next-1, f.last, ports.ErrPositionGone)
	case next < first:
		return nil, nil, fmt.Errorf("memory: feed: changes from %d on are kept, not %d: %w",
			first, next, ports.ErrPositionGone)
	}
	n := min(f.last+1-next, maxBatch)
	out := make([]ports.FeedEntry, n)
	for i := range out {
		seq := next + uint64(i)
		out[i] = ports.FeedEntry{Position: ports.Position{Major: seq}, Change: f.ring[(seq-1)%uint64(cap(f.ring))]}
	}
	return out, f.more, nil
}

// Eraser returns next, which erases posts from the bus, redacting as well the changes of
// those posts that the ring keeps. They are redacted in place rather than removed, so the
// positions stay whole and a reader resumes without a reset.
func (f *Feed) Eraser(next ports.BusEraser) ports.BusEraser { return feedEraser{f, next} }

type feedEraser struct {
	f    *Feed
	next ports.BusEraser
}

func (e feedEraser) EraseFromBus(ctx context.Context, postIDs []string) (int, error) {
	n, err := e.next.EraseFromBus(ctx, postIDs)
	if err != nil {
		return n, err
	}
	return n + e.f.redact(postIDs), nil
}

// redact redacts the kept changes of the posts, but their erasure, and returns how many.
func (f *Feed) redact(postIDs []string) int {
	erased := wire.PostSet(postIDs)
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for i, c := range f.ring {
		if erased[c.Event.PostID] && c.Event.Type != post.EventErased && !c.State.Erased {
			f.ring[i].Event, f.ring[i].State = c.Event.Redacted(), c.State.Redacted()
			n++
		}
	}
	return n
}
