package query

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"hexapost/core/post"
	"hexapost/ports"
)

// ErrNotCaughtUp is returned when the read model did not reach the asked version in time.
var ErrNotCaughtUp = errors.New("read model has not caught up with the requested version")

// Reader answers single-post reads, optionally waiting for a version (read your own writes).
type Reader struct {
	views   ports.ViewReader
	changes ports.ViewChanges
	wait    time.Duration

	// draining is closed by Drain.
	draining  chan struct{}
	drainOnce sync.Once
}

// NewReader returns a Reader whose waits for a version last at most wait (default 2s) and
// read the view again whenever changes says it may have changed.
func NewReader(views ports.ViewReader, changes ports.ViewChanges, wait time.Duration) *Reader {
	if wait <= 0 {
		wait = 2 * time.Second
	}
	return &Reader{views: views, changes: changes, wait: wait, draining: make(chan struct{})}
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
func (r *Reader) Get(ctx context.Context, id string, minVersion int64) (post.State, error) {
	if minVersion <= 0 {
		s, err := r.views.Get(ctx, id)
		return settled(id, s, err)
	}
	var (
		s   post.State
		err error
	)
	werr := r.until(ctx, id, func() bool {
		s, err = r.views.Get(ctx, id)
		return (err != nil && !errors.Is(err, ports.ErrNotFound)) || (err == nil && s.Version >= minVersion)
	})
	if werr != nil {
		return post.State{}, werr
	}
	return settled(id, s, err)
}

// History returns a page of the post's history: up to q.Limit entries, one per version from
// q.After+1 on, oldest first. The read model may hold a later version before an earlier one —
// query servers of one group apply a post's consecutive changes side by side, and a change may
// wait for a retry while the next is applied — so a page with a gap is read again, like a
// waiting Get, until the gap is filled or the wait ends (or Drain). Then the entries before
// the gap are the answer, or ErrNotCaughtUp when even version q.After+1 is missing: a page
// never skips a version. A page past the last version is empty; an unknown post is
// ports.ErrNotFound at once.
func (r *Reader) History(ctx context.Context, id string, q ports.HistoryQuery) ([]ports.HistoryEntry, error) {
	q.After = max(q.After, 0)
	var (
		entries []ports.HistoryEntry
		err     error
		n       int
	)
	werr := r.until(ctx, id, func() bool {
		entries, err = r.views.History(ctx, id, q)
		n = unbroken(entries, q.After)
		return err != nil || n == len(entries)
	})
	switch {
	case werr == nil:
		return entries, err
	case errors.Is(werr, ErrNotCaughtUp) && n > 0:
		return entries[:n], nil
	case errors.Is(werr, ErrNotCaughtUp):
		return nil, fmt.Errorf("%w: version %d of post %s is not in the history yet", werr, q.After+1, id)
	}
	return nil, werr
}

// until calls read, and again each time the post's view may have changed, until it reports
// that it is done (nil), the wait ends or Drain was called (ErrNotCaughtUp, after one last
// read), or ctx ends (its error).
func (r *Reader) until(ctx context.Context, id string, read func() (done bool)) error {
	deadline := time.NewTimer(r.wait)
	defer deadline.Stop()
	for {
		changed, stop := r.changes.Watch(id) // before reading, so no change is missed
		done := read()
		if done {
			stop()
			return nil
		}
		select {
		case <-r.draining:
			stop()
			return ErrNotCaughtUp // the last read was taken
		default:
		}
		var err error
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-deadline.C:
			err = ErrNotCaughtUp
		case <-r.draining: // one last read
		case <-changed:
		}
		stop()
		if err != nil {
			return err
		}
	}
}

// unbroken returns how many of the entries, oldest first, are versions after+1, after+2, …
// without a gap.
func unbroken(entries []ports.HistoryEntry, after int64) int {
	for i, e := range entries {
		if e.State.Version != after+int64(i)+1 {
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
	case s.Erased:
		return s, fmt.Errorf("%s: %w", id, post.ErrErased)
	case s.Deleted:
		return s, fmt.Errorf("%s: %w", id, post.ErrDeleted)
	}
	return s, nil
}

// Recheck is the plain ports.ViewChanges: it hears of no change, so it tells a waiting reader
// to read again every Every. Correct whoever writes the read model, at the cost of up to Every
// of delay and a read per interval for each waiting reader.
type Recheck struct {
	Every time.Duration
}

var _ ports.ViewChanges = Recheck{}

// Watch returns a channel closed after Every.
func (r Recheck) Watch(string) (<-chan struct{}, func()) {
	changed := make(chan struct{})
	t := time.AfterFunc(r.Every, func() { close(changed) })
	return changed, func() { t.Stop() }
}
