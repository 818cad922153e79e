package query

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"hexapost/ports"
)

// ChangesConfig tunes Changes; zero fields take the defaults.
type ChangesConfig struct {
	// Buffer is how many changes a subscriber may have waiting before it is cut off
	// (default 1024). Each subscriber holds at most twice as many: those waiting to be written
	// and, while it catches up from an earlier position, those that arrived meanwhile.
	Buffer int
	// Remember is how many posts' last versions the feed remembers to drop duplicates
	// (default 65 536): a duplicate arriving after its post has been forgotten is sent again.
	Remember int
	// Log receives a line when the tail of the bus fails or loses its place, and one per
	// subscriber cut off (default slog.Default()).
	Log *slog.Logger
}

// Changes fans the changes on the bus out to subscribers: one tail of the bus per process,
// whatever the number of subscribers, so every query server sees every change, not only the
// share its consumer group gives it. A subscriber never holds the tail up: one whose buffer is
// full is cut off and told to start over. Each post's changes reach a subscriber in version
// order, once: a change whose version is not above the last one passed on for its post (a
// duplicate of at-least-once delivery) is dropped.
type Changes struct {
	feed ports.ChangeFeed
	cfg  ChangesConfig

	// ready is closed once head holds the bus's position the tail starts from.
	ready     chan struct{}
	readyOnce sync.Once

	mu   sync.Mutex
	head ports.Position // the last position fanned out
	seen *versions
	subs map[*Subscription]struct{}
	// draining refuses new subscriptions once the server stops.
	draining bool
	// cutOff counts the subscribers cut off for falling behind.
	cutOff atomic.Uint64
}

// NewChanges returns a Changes over feed; Run tails it.
func NewChanges(feed ports.ChangeFeed, cfg ChangesConfig) *Changes {
	if cfg.Buffer <= 0 {
		cfg.Buffer = 1024
	}
	if cfg.Remember <= 0 {
		cfg.Remember = 1 << 16
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Changes{feed: feed, cfg: cfg, ready: make(chan struct{}), seen: newVersions(cfg.Remember),
		subs: map[*Subscription]struct{}{}}
}

// Run tails the bus from its head and fans each change out until ctx ends. A failing tail is
// retried from the last position with a growing delay; one that lost its place (the bus
// dropped changes it had not read, or was made again) cuts every subscriber off with a reset
// and starts again at the bus's head.
func (h *Changes) Run(ctx context.Context) {
	failures := 0
	retry := func(what string, err error) {
		failures++
		wait := min(100*time.Millisecond<<min(failures, 6), 5*time.Second)
		h.cfg.Log.Warn(what, "error", err, "retry_in", wait)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
	started := false
	for ctx.Err() == nil {
		if !started {
			head, err := h.feed.Head(ctx)
			if err != nil {
				if ctx.Err() == nil {
					retry("change feed: cannot read the bus's head", err)
				}
				continue
			}
			h.restart(head)
			started = true
		}
		h.mu.Lock()
		from := h.head
		h.mu.Unlock()
		err := h.feed.Tail(ctx, from, func(batch []ports.FeedEntry) error {
			failures = 0
			h.fanOut(batch)
			return nil
		})
		switch {
		case ctx.Err() != nil:
		case errors.Is(err, ports.ErrPositionGone):
			h.cfg.Log.Warn("change feed lost its place on the bus; subscribers start over", "error", err)
			started = false
		case err != nil:
			retry("change feed: tail of the bus failed", err)
		}
	}
}

// restart places the tail at head, cutting off the subscribers of an earlier place.
func (h *Changes) restart(head ports.Position) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		s.cut(head, true)
		delete(h.subs, s)
	}
	h.head, h.seen = head, newVersions(h.cfg.Remember)
	h.readyOnce.Do(func() { close(h.ready) })
}

func (h *Changes) fanOut(batch []ports.FeedEntry) {
	h.mu.Lock()
	defer h.mu.Unlock()
	// Subscribers share the entries: a buffer holds pointers, not copies.
	fresh := make([]*ports.FeedEntry, 0, len(batch))
	for i := range batch {
		if h.seen.fresh(batch[i].Change) {
			fresh = append(fresh, &batch[i])
		}
	}
	for s := range h.subs {
		if !s.offer(fresh) {
			delete(h.subs, s)
		}
	}
	h.head = batch[len(batch)-1].Position
}

// Stats returns the number of subscribers and how many were cut off so far for falling behind.
func (h *Changes) Stats() (subscribers int, cutOff uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs), h.cutOff.Load()
}

// Drain ends every subscription without a reset, and refuses new ones with ErrDraining, so
// that a server can stop: each subscriber may resume elsewhere from its last position.
func (h *Changes) Drain() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.draining = true
	for s := range h.subs {
		s.cut(ports.Position{}, false)
		delete(h.subs, s)
	}
}

// ErrDraining is returned by Subscribe once the server stops.
var ErrDraining = fmt.Errorf("the server is stopping: %w", ports.ErrUnavailable)

// Filter selects changes; an empty field selects every value.
type Filter struct {
	PostID string
	// AuthorName selects the changes after which the post has this author.
	AuthorName string
}

func (f Filter) match(c ports.Change) bool {
	return (f.PostID == "" || c.Event.PostID == f.PostID) && (f.AuthorName == "" || c.State.AuthorName == f.AuthorName)
}

// Item is what a subscriber receives: a change, or a reset.
type Item struct {
	Entry *ports.FeedEntry
	// Reset says that the changes between the subscriber's position and Entry.Position are
	// gone: the subscriber reads again what it cares about, then goes on from Entry.Position.
	// Entry.Change is empty.
	Reset bool
}

// Subscription is one subscriber's stream of changes.
type Subscription struct {
	h      *Changes
	filter Filter
	items  chan Item
	done   chan struct{} // closed when the subscription ends

	mu sync.Mutex
	// last is the position of the last change given to the subscriber or passed over; later
	// changes only are given.
	last ports.Position
	// catching is set while the changes up to the tail's position are read from the bus;
	// pending holds the changes the tail fanned out meanwhile.
	catching bool
	pending  []*ports.FeedEntry
	ended    bool
	resetAt  ports.Position
	reset    bool
	stop     context.CancelFunc
}

// Subscribe starts a subscription to the changes that match f after the position `after`, or,
// when after is zero, to those from now on. A position the bus no longer holds, or one beyond
// its last change, gives a reset first, then the changes from the reset's position. It waits
// until the tail has started; the error is ctx's, or the bus's when it cannot tell its head.
// Close the subscription when done.
func (h *Changes) Subscribe(ctx context.Context, after ports.Position, f Filter) (*Subscription, error) {
	select {
	case <-h.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var busHead ports.Position
	if !after.IsZero() {
		var err error
		if busHead, err = h.feed.Head(ctx); err != nil {
			return nil, err
		}
	}
	cctx, stop := context.WithCancel(context.Background())
	s := &Subscription{h: h, filter: f, items: make(chan Item, h.cfg.Buffer), done: make(chan struct{}), stop: stop}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.draining {
		stop()
		return nil, ErrDraining
	}
	live := h.head
	switch {
	case after.IsZero():
		s.last = live
	case after.Compare(busHead) > 0: // beyond the bus: it was made again since
		s.last = live
		s.items <- Item{Entry: &ports.FeedEntry{Position: live}, Reset: true}
	case after.Compare(live) >= 0:
		s.last = after
	default:
		s.last, s.catching = after, true
		go s.catchUp(cctx, after, live)
	}
	h.subs[s] = struct{}{}
	return s, nil
}

// errCaughtUp ends a catch-up's tail once it reached the position it catches up to.
var errCaughtUp = errors.New("caught up")

// catchUp gives the subscriber the changes after `after` up to `to` from the bus, waiting for
// it to take them, then the changes the tail fanned out meanwhile.
func (s *Subscription) catchUp(ctx context.Context, after, to ports.Position) {
	seen := newVersions(s.h.cfg.Remember)
	err := s.h.feed.Tail(ctx, after, func(batch []ports.FeedEntry) error {
		for i := range batch {
			e := &batch[i]
			if e.Position.Compare(to) > 0 {
				return errCaughtUp
			}
			if seen.fresh(e.Change) && s.filter.match(e.Change) {
				select {
				case s.items <- Item{Entry: e}:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			s.mu.Lock()
			s.last = e.Position
			s.mu.Unlock()
			if e.Position == to {
				return errCaughtUp
			}
		}
		return nil
	})
	switch {
	case errors.Is(err, errCaughtUp):
	case errors.Is(err, ports.ErrPositionGone):
		select {
		case s.items <- Item{Entry: &ports.FeedEntry{Position: to}, Reset: true}:
		case <-ctx.Done():
			return
		}
		s.mu.Lock()
		s.last = to
		s.mu.Unlock()
	default:
		// The bus failed, or the subscription ended: the subscriber may come back with its
		// position.
		if ctx.Err() == nil {
			s.h.cfg.Log.Warn("change feed: catching a subscriber up failed", "error", err)
		}
		s.h.drop(s, ports.Position{}, false)
		return
	}
	// The tail's next fan-out removes a subscriber that sendLocked cut off.
	s.mu.Lock()
	defer s.mu.Unlock()
	pending := s.pending
	s.catching, s.pending = false, nil
	s.sendLocked(pending)
}

// offer hands the subscriber fresh changes of the tail without waiting; false when it is cut
// off because they do not fit. The hub holds h.mu.
func (s *Subscription) offer(batch []*ports.FeedEntry) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return false
	}
	if s.catching {
		if len(s.pending)+len(batch) > s.h.cfg.Buffer {
			s.behind(batch)
			return false
		}
		s.pending = append(s.pending, batch...)
		return true
	}
	return s.sendLocked(batch)
}

// sendLocked puts the changes after s.last that match the filter in the buffer, or cuts the
// subscriber off when they do not fit. The caller holds s.mu.
func (s *Subscription) sendLocked(batch []*ports.FeedEntry) bool {
	for _, e := range batch {
		if e.Position.Compare(s.last) <= 0 {
			continue
		}
		s.last = e.Position
		if !s.filter.match(e.Change) {
			continue
		}
		select {
		case s.items <- Item{Entry: e}:
		default:
			s.behind(batch)
			return false
		}
	}
	return true
}

// behind cuts off a subscriber whose buffer cannot take batch. It goes on from after the
// batch, once it has read again what it cares about. The caller holds s.mu.
func (s *Subscription) behind(batch []*ports.FeedEntry) {
	at := batch[len(batch)-1].Position
	s.h.cutOff.Add(1)
	s.h.cfg.Log.Info("change feed: a subscriber fell too far behind; cut off with a reset",
		"buffer", s.h.cfg.Buffer, "reset_at", at.String())
	s.cutLocked(at, true)
}

// drop removes the subscriber from the hub and ends it.
func (h *Changes) drop(s *Subscription, at ports.Position, reset bool) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
	s.cut(at, reset)
}

func (s *Subscription) cut(at ports.Position, reset bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cutLocked(at, reset)
}

func (s *Subscription) cutLocked(at ports.Position, reset bool) {
	if s.ended {
		return
	}
	s.ended, s.resetAt, s.reset = true, at, reset
	s.pending = nil
	s.stop()
	close(s.done)
}

// Items returns the changes, and resets, in order.
func (s *Subscription) Items() <-chan Item { return s.items }

// Done is closed when the subscription ended: the subscriber was cut off, or the bus failed
// while it caught up. Ended tells which.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Ended tells, once Done is closed, whether the subscriber must start over (reset) and from
// which position; without a reset it may come back with the position of the last change it
// received.
func (s *Subscription) Ended() (at ports.Position, reset bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.resetAt, s.reset
}

// Close ends the subscription and frees what it holds.
func (s *Subscription) Close() { s.h.drop(s, ports.Position{}, false) }

// versions remembers the last version passed on of a bounded number of posts, forgetting the
// post first remembered when it needs room.
type versions struct {
	last  map[string]int64
	order []string // grows up to max, then is a ring
	max   int
	next  int
}

// newVersions remembers up to n posts. It starts small: a catch-up that meets few posts
// costs little.
func newVersions(n int) *versions {
	return &versions{last: make(map[string]int64), max: n}
}

// fresh reports whether c is later than the last version passed on for its post, and if so
// remembers it.
func (v *versions) fresh(c ports.Change) bool {
	id, ver := c.Event.PostID, c.Event.Version
	if have, ok := v.last[id]; ok {
		if ver <= have {
			return false
		}
		v.last[id] = ver
		return true
	}
	if len(v.order) < v.max {
		v.order = append(v.order, id)
	} else {
		delete(v.last, v.order[v.next])
		v.order[v.next] = id
		v.next = (v.next + 1) % len(v.order)
	}
	v.last[id] = ver
	return true
}
