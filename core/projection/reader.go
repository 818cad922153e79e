package projection

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"hexapost/core/post"
	"hexapost/ports"
)

// maxPollBackoff bounds how far a waiting read's checks of the read model back off: 32 × 50ms.
// A read that has waited long is one that the read side is behind on; checking it less often
// costs a change projected by another query server at most that much more latency.
const maxPollBackoff = 32

// quietPollFactor is how much later than Poll a waiting read first looks while no look has
// found another process's change for PeerMemory: 20 × 50ms.
const quietPollFactor = 20

// ErrNotCaughtUp is returned when the read model did not reach the asked version in time.
var ErrNotCaughtUp = errors.New("read model has not caught up with the requested version")

// ReaderConfig tunes the reader; zero values take the defaults.
type ReaderConfig struct {
	// Wait bounds how long a read waits for min_version (default 2s).
	Wait time.Duration
	// Poll is how soon the read model is checked again while waiting, for changes projected by
	// another process of the group, which this process's notifier does not see (default 50ms).
	// Each check that finds nothing doubles the delay, up to maxPollBackoff times Poll, so a
	// read side that falls behind is not read ever harder by the readers waiting for it.
	Poll time.Duration
	// QuietPoll replaces Poll as the first delay while no look of this process has found a
	// change projected by another process for PeerMemory (default 20 × Poll, and 1 minute).
	// A query server that projects alone — one process serving both sides, or the only query
	// server of its group — then hears of every change from its own projector, and its waiting
	// readers' looks would only add reads to a read model that is already behind. With other
	// query servers in the group their looks find changes often and stay at Poll; after a
	// minute without one, the first change of another process that a reader waits for can take
	// up to QuietPoll to be seen.
	QuietPoll  time.Duration
	PeerMemory time.Duration
}

// Reader answers single-post reads, optionally waiting for a version (read your own writes).
type Reader struct {
	views  ports.ViewReader
	notify *Notifier
	cfg    ReaderConfig

	// draining is closed by Drain.
	draining  chan struct{}
	drainOnce sync.Once
}

// NewReader returns a Reader woken by n.
func NewReader(views ports.ViewReader, n *Notifier, cfg ReaderConfig) *Reader {
	if cfg.Wait <= 0 {
		cfg.Wait = 2 * time.Second
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 50 * time.Millisecond
	}
	if cfg.QuietPoll <= 0 {
		cfg.QuietPoll = quietPollFactor * cfg.Poll
	}
	if cfg.PeerMemory <= 0 {
		cfg.PeerMemory = time.Minute
	}
	return &Reader{views: views, notify: n, cfg: cfg, draining: make(chan struct{})}
}

// Drain ends every wait for a version, those under way and those to come: each read looks at
// the read model once more and answers with what it holds, ErrNotCaughtUp if the version is
// not there. A server calls it when it stops, so that a read waiting for a version that may
// never come (its command server is stopping too) does not hold the shutdown up for the whole
// wait; the client is told to retry. Drain may be called more than once.
func (r *Reader) Drain() {
	r.drainOnce.Do(func() { close(r.draining) })
}

// Get returns the current view of a post once its version is at least minVersion. A deleted
// post is returned with post.ErrDeleted, an unknown one with ports.ErrNotFound, and a version
// not reached within the wait, or before Drain, with ErrNotCaughtUp.
//
// A waiting Get reads the read model once, then again only when it has to: a change projected
// by this process hands it the stored view, and for changes of other processes the readers of
// one post take turns to look (Wait.PollDue), a look that finds a newer view handing it to the
// rest.
func (r *Reader) Get(ctx context.Context, id string, minVersion int64) (post.State, error) {
	if minVersion <= 0 {
		s, err := r.views.Get(ctx, id)
		return settled(id, s, err)
	}
	deadline := time.NewTimer(r.cfg.Wait)
	defer deadline.Stop()
	w := r.notify.Wait(id) // before reading, so no change is missed
	defer func() { w.Forget() }()
	s, err := r.views.Get(ctx, id)
	for poll := r.firstPoll(); ; {
		if (err != nil && !errors.Is(err, ports.ErrNotFound)) || (err == nil && s.Version >= minVersion) {
			return settled(id, s, err)
		}
		woke, werr := r.wait(ctx, w.Changed(), deadline.C, poll)
		if werr != nil {
			return post.State{}, werr
		}
		switch woke {
		case wokenByChange:
			stored, known := w.Stored()
			w = w.Next() // before reading again
			if known {
				s, err = stored, nil
				continue
			}
		case wokenToPoll:
			poll = r.nextPoll(poll)
			if !w.PollDue(poll / 2) {
				continue // another reader of this post looked a moment ago
			}
		}
		before := s.Version
		s, err = r.views.Get(ctx, id)
		if err == nil && s.Version > before && woke == wokenToPoll {
			w.Found(s) // for the other readers of the post, and the next waits' first looks
			w = w.Next()
		}
	}
}

// History returns the post's history as one entry per version from the first, oldest first.
// The read model may hold a later version before an earlier one — query servers of one group
// apply a post's consecutive changes side by side, and a change may wait for a retry while the
// next is applied — so a history with a gap is read again, woken like a waiting Get, until the
// gap is filled or the wait ends (or Drain). Then the entries before the gap are the answer, or
// ErrNotCaughtUp when even the first version is missing: a history never skips a version. An
// unknown post is ports.ErrNotFound at once.
func (r *Reader) History(ctx context.Context, id string) ([]ports.HistoryEntry, error) {
	deadline := time.NewTimer(r.cfg.Wait)
	defer deadline.Stop()
	for poll := r.firstPoll(); ; poll = r.nextPoll(poll) {
		changed, forget := r.notify.Watch(id)
		entries, err := r.views.History(ctx, id)
		n := unbroken(entries)
		if err != nil || n == len(entries) {
			forget()
			return entries, err
		}
		_, err = r.wait(ctx, changed, deadline.C, poll)
		forget()
		switch {
		case errors.Is(err, ErrNotCaughtUp) && n > 0:
			return entries[:n], nil
		case errors.Is(err, ErrNotCaughtUp):
			return nil, fmt.Errorf("%w: version 1 of post %s is not in the history yet", err, id)
		case err != nil:
			return nil, err
		}
	}
}

// firstPoll is how long a read waits before its first look for another process's change:
// Poll while such looks have found changes lately, QuietPoll otherwise.
func (r *Reader) firstPoll() time.Duration {
	if r.notify.FoundWithin(r.cfg.PeerMemory) {
		return r.cfg.Poll
	}
	return r.cfg.QuietPoll
}

// nextPoll doubles the delay between looks, up to maxPollBackoff times Poll (or QuietPoll, if
// that is longer).
func (r *Reader) nextPoll(poll time.Duration) time.Duration {
	return min(2*poll, max(maxPollBackoff*r.cfg.Poll, r.cfg.QuietPoll))
}

// unbroken returns how many of the entries, oldest first, are versions 1, 2, 3, … without a
// gap.
func unbroken(entries []ports.HistoryEntry) int {
	for i, e := range entries {
		if e.State.Version != int64(i)+1 {
			return i
		}
	}
	return len(entries)
}

// settled is the answer of a read that waits no longer.
func settled(id string, s post.State, err error) (post.State, error) {
	switch {
	case err != nil:
		return post.State{}, err
	case s.Deleted:
		return s, fmt.Errorf("%s: %w", id, post.ErrDeleted)
	}
	return s, nil
}

// woken is why a wait ended without an error.
type woken int

const (
	wokenByChange woken = iota // the post changed in this process
	wokenToPoll                // time to look for a change of another process
	wokenToDrain               // Drain asks for one last look
)

// wait returns why the post may have changed: its change was announced, the look for other
// processes' changes is due (after pollAfter), or Drain asks for one last look. It returns the
// error to answer with when the wait is over.
func (r *Reader) wait(ctx context.Context, changed <-chan struct{}, deadline <-chan time.Time, pollAfter time.Duration) (woken, error) {
	select {
	case <-r.draining:
		return 0, ErrNotCaughtUp // the last look was taken
	default:
	}
	poll := time.NewTimer(pollAfter)
	defer poll.Stop()
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-deadline:
		return 0, ErrNotCaughtUp
	case <-r.draining:
		return wokenToDrain, nil
	case <-changed:
		return wokenByChange, nil
	case <-poll.C:
		return wokenToPoll, nil
	}
}
