// Package batch groups concurrent calls into batches, for implementations of a port whose
// backend does many operations in one round trip or one transaction much faster than one at a
// time (group commit). Under low load a call runs alone at once; under load, calls that arrive
// while earlier batches run are gathered into the next one. It lives beside the ports, not
// under adapters/, because it adapts nothing: it is a mechanism the adapters share.
package batch

import (
	"context"
	"slices"
	"sync"
)

// Group runs the calls made through Do in batches of at most Max, with at most Slots batches
// running at once. It is safe for concurrent use; its zero value is not usable.
type Group[In, Out any] struct {
	run   func(in []In) []Out
	max   int
	slots int

	mu      sync.Mutex
	queue   []*call[In, Out]
	running int
}

type call[In, Out any] struct {
	in   In
	out  Out
	done chan struct{}
}

// New returns a Group that runs batches with run, which must return one result per input, in
// the same order. size is the largest batch, slots the number of batches run at once (each at
// least 1). run is not given a context: a batch serves many callers, so it bounds its own
// work in time.
func New[In, Out any](size, slots int, run func(in []In) []Out) *Group[In, Out] {
	return &Group[In, Out]{run: run, max: max(size, 1), slots: max(slots, 1)}
}

// Do runs in as part of a batch and returns its result. A call whose ctx has ended, or ends
// before its batch began, is withdrawn (never run) and Do returns ctx.Err(); once its batch
// has begun Do waits for the result, so the caller always learns the outcome of an operation
// that ran.
func (g *Group[In, Out]) Do(ctx context.Context, in In) (Out, error) {
	if err := ctx.Err(); err != nil {
		// Queued, it could be taken by a batch before the select below saw ctx end.
		var zero Out
		return zero, err
	}
	c := &call[In, Out]{in: in, done: make(chan struct{})}
	g.mu.Lock()
	g.queue = append(g.queue, c)
	if g.running < g.slots {
		g.running++
		go g.loop()
	}
	g.mu.Unlock()
	select {
	case <-c.done:
		return c.out, nil
	case <-ctx.Done():
	}
	g.mu.Lock()
	if i := slices.Index(g.queue, c); i >= 0 {
		g.queue = slices.Delete(g.queue, i, i+1)
		g.mu.Unlock()
		var zero Out
		return zero, ctx.Err()
	}
	g.mu.Unlock()
	<-c.done
	return c.out, nil
}

// Queued returns how many calls wait for a batch.
func (g *Group[In, Out]) Queued() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.queue)
}

// loop runs batches until the queue is empty.
func (g *Group[In, Out]) loop() {
	for {
		g.mu.Lock()
		n := min(len(g.queue), g.max)
		if n == 0 {
			g.running--
			g.mu.Unlock()
			return
		}
		calls := slices.Clone(g.queue[:n])
		g.queue = slices.Delete(g.queue, 0, n)
		g.mu.Unlock()

		in := make([]In, n)
		for i, c := range calls {
			in[i] = c.in
		}
		out := g.run(in)
		for i, c := range calls {
			c.out = out[i]
			close(c.done)
		}
	}
}
