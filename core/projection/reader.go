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

// ErrNotCaughtUp is returned when the read model did not reach the asked version in time.
var ErrNotCaughtUp = errors.New("read model has not caught up with the requested version")

// ReaderConfig tunes the reader; zero values take the defaults.
type ReaderConfig struct {
	// Wait bounds how long a read waits for min_version (default 2s).
	Wait time.Duration
	// Poll is how often the read model is checked while waiting, for changes projected by
	// another process of the group, which this process's notifier does not see (default 50ms).
	Poll time.Duration
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
func (r *Reader) Get(ctx context.Context, id string, minVersion int64) (post.State, error) {
	var deadline <-chan time.Time
	for {
		changed := r.notify.Changed() // before reading, so no broadcast is missed
		s, err := r.views.Get(ctx, id)
		switch {
		case err != nil && !errors.Is(err, ports.ErrNotFound):
			return post.State{}, err
		case err == nil && s.Version >= minVersion && s.Deleted:
			return s, fmt.Errorf("%s: %w", id, post.ErrDeleted)
		case err == nil && s.Version >= minVersion:
			return s, nil
		case minVersion <= 0:
			return post.State{}, err
		}
		select {
		case <-r.draining:
			return post.State{}, ErrNotCaughtUp
		default:
		}
		if deadline == nil {
			t := time.NewTimer(r.cfg.Wait)
			defer t.Stop()
			deadline = t.C
		}
		poll := time.NewTimer(r.cfg.Poll)
		select {
		case <-ctx.Done():
			poll.Stop()
			return post.State{}, ctx.Err()
		case <-deadline:
			poll.Stop()
			return post.State{}, ErrNotCaughtUp
		case <-r.draining: // look once more, then answer
		case <-changed:
		case <-poll.C:
		}
		poll.Stop()
	}
}
