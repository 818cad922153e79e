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
	// waiting holds, by post id, the next write of the post as its readers see it; an entry
	// exists while some reader watches the post.
	waiting map[string]*watch
}

// watch is the next write of one post: changed is closed at it.
type watch struct {
	changed chan struct{}
	readers int
}

// New returns a Signal that no writer has signalled yet.
func New() *Signal {
	return &Signal{waiting: map[string]*watch{}}
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

func (c changes) Watch(postID string) (<-chan struct{}, func()) {
	local := c.s.watch(postID)
	other, stopOther := c.inner.Watch(postID)
	changed, quit := make(chan struct{}), make(chan struct{})
	go func() {
		select {
		case <-local.changed:
		case <-other:
		case <-quit:
		}
		close(changed)
	}()
	return changed, sync.OnceFunc(func() {
		close(quit)
		stopOther()
		c.s.forget(postID, local)
	})
}

// watch returns the post's next write, counting one more reader of it.
func (s *Signal) watch(postID string) *watch {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.waiting[postID]
	if w == nil {
		w = &watch{changed: make(chan struct{})}
		s.waiting[postID] = w
	}
	w.readers++
	return w
}

// forget counts one reader of w fewer, and forgets the post when none is left.
func (s *Signal) forget(postID string, w *watch) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w.readers--
	if w.readers == 0 && s.waiting[postID] == w {
		delete(s.waiting, postID)
	}
}

// wake closes the post's watch: its readers read again, and whoever watches from now on waits
// for the write after this one.
func (s *Signal) wake(postID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w := s.waiting[postID]; w != nil {
		delete(s.waiting, postID)
		close(w.changed)
	}
}
