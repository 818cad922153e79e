// Package wakeup wakes reads waiting for a post's view the moment this process writes that
// view, instead of at their next recheck: a decorator of ports.ViewWriter that signals each
// write, and of ports.ViewChanges that hears the signal. Changes written by other processes
// still reach the readers through the decorated ViewChanges.
package wakeup

import (
	"context"
	"sync"

	"hexapost/core/post"
	"hexapost/ports"
)

// Signal connects the view writes of one process to the readers waiting in it.
type Signal struct {
	mu sync.Mutex
	// waiting holds, by post id, the watches of the readers waiting for the post's next write;
	// an entry exists while some reader watches the post.
	waiting map[string]map[*watch]struct{}
}

// watch is one reader's wait for the next write of a post: changed is closed at it.
type watch struct {
	changed chan struct{}
	closed  bool
}

// New returns a Signal that no writer has signalled yet.
func New() *Signal {
	return &Signal{waiting: map[string]map[*watch]struct{}{}}
}

// Writer returns w, decorated to wake the readers watching a post once a write of its current
// view has returned, whatever its outcome: a view that was not stored, or a write that failed,
// may still have left the view newer than they last read. History entries are not signalled:
// the projector writes a change's entry before its view, so the view's signal covers both.
func (s *Signal) Writer(w ports.ViewWriter) ports.ViewWriter {
	return writer{ViewWriter: w, s: s}
}

type writer struct {
	ports.ViewWriter
	s *Signal
}

func (w writer) PutCurrent(ctx context.Context, st post.State) (bool, error) {
	stored, err := w.ViewWriter.PutCurrent(ctx, st)
	w.s.wake(st.ID)
	return stored, err
}

// Changes returns c, decorated so that its watches are closed also by this process's writes of
// the post (through Writer). c keeps telling readers of what other processes write.
func (s *Signal) Changes(c ports.ViewChanges) ports.ViewChanges {
	return changes{inner: c, s: s}
}

type changes struct {
	inner ports.ViewChanges
	s     *Signal
}

// Watch returns a channel that a write of the post closes directly, so a woken reader is one
// goroutine away from its write; a goroutine of its own forwards the inner watch.
func (c changes) Watch(postID string) (<-chan struct{}, func()) {
	w := &watch{changed: make(chan struct{})}
	c.s.mu.Lock()
	readers := c.s.waiting[postID]
	if readers == nil {
		readers = map[*watch]struct{}{}
		c.s.waiting[postID] = readers
	}
	readers[w] = struct{}{}
	c.s.mu.Unlock()
	other, stopOther := c.inner.Watch(postID)
	quit := make(chan struct{})
	go func() {
		select {
		case <-other:
			c.s.close(postID, w)
		case <-quit:
		}
	}()
	return w.changed, sync.OnceFunc(func() {
		close(quit)
		stopOther()
		c.s.close(postID, w)
	})
}

// close closes one reader's watch, if a write has not, and forgets it.
func (s *Signal) close(postID string, w *watch) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !w.closed {
		w.closed = true
		close(w.changed)
	}
	if readers := s.waiting[postID]; readers != nil {
		delete(readers, w)
		if len(readers) == 0 {
			delete(s.waiting, postID)
		}
	}
}

// wake closes the watches of the post's readers: they read again, and whoever watches from now
// on waits for the write after this one.
func (s *Signal) wake(postID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for w := range s.waiting[postID] {
		w.closed = true
		close(w.changed)
	}
	delete(s.waiting, postID)
}
