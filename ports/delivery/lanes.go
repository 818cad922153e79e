package delivery

import (
	"context"
	"sync"

	"hexapost/ports"
)

// PostsInParallel is how many posts' changes Policy.Lanes apply at once; each post's changes
// keep their order.
const PostsInParallel = 16

// Lanes returns lanes that deliver through p to h, PostsInParallel posts at a time, each post's
// changes in order, telling h of the last later change of its post waiting behind the one in
// hand. A subscriber adds what each read of its broker brings, and reads on meanwhile. A
// delivery not begun when ctx ends is released.
func (p *Policy) Lanes(ctx context.Context, h ports.Handler) *Lanes[Delivery] {
	key := func(d Delivery) (string, bool) { return d.Change.Event.PostID, p.hands(d) }
	return newLanes(PostsInParallel, key, func(d Delivery, later *Delivery) {
		if ctx.Err() != nil {
			d.Msg.Release(context.WithoutCancel(ctx))
			return
		}
		if later != nil {
			d.Later = &later.Change
		}
		p.Deliver(ctx, h, d)
	})
}

// Lanes hands items to a handler as they are added, at most limit keys at a time, the items of
// one key one after the other in the order they were added. It never waits for a group of items
// to finish before it starts the next: a slow item holds up only the items of its own key.
type Lanes[T any] struct {
	limit  int
	key    func(T) (key string, handed bool)
	handle func(it T, later *T)

	mu   sync.Mutex
	done *sync.Cond // broadcast whenever an item is finished
	// queues holds, per key being handled or waiting for a lane, its items not yet begun.
	queues map[string][]T
	// waiting are the keys with items and no lane, in the order they arrived.
	waiting []string
	running int // lanes at work
	held    int // items added and not yet finished
}

// newLanes returns Lanes that call handle for each item added, at most limit keys at a time.
// key names an item's key and tells whether the item will be handed on by handle (an
// undecodable change goes to the dead letters instead). handle is told, as later, the last item
// of the same key waiting behind the one in hand that will be handed on, or nil.
func newLanes[T any](limit int, key func(T) (string, bool), handle func(it T, later *T)) *Lanes[T] {
	l := &Lanes[T]{limit: max(limit, 1), key: key, handle: handle, queues: map[string][]T{}}
	l.done = sync.NewCond(&l.mu)
	return l
}

// Add queues the items and starts a lane for each key that has none, as far as the limit
// allows. It does not wait for them.
func (l *Lanes[T]) Add(items ...T) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, it := range items {
		k, _ := l.key(it)
		q, ok := l.queues[k]
		if !ok {
			l.waiting = append(l.waiting, k)
		}
		l.queues[k] = append(q, it)
		l.held++
	}
	l.start()
}

// start gives waiting keys a lane while the limit allows; l.mu is held.
func (l *Lanes[T]) start() {
	for l.running < l.limit && len(l.waiting) > 0 {
		k := l.waiting[0]
		l.waiting = l.waiting[1:]
		l.running++
		go l.run(k)
	}
}

// run handles the items of key k until it has none left.
func (l *Lanes[T]) run(k string) {
	l.mu.Lock()
	for {
		q := l.queues[k]
		if len(q) == 0 {
			delete(l.queues, k)
			l.running--
			l.start()
			l.mu.Unlock()
			return
		}
		it := q[0]
		l.queues[k] = q[1:]
		var later *T
		for i := len(q) - 1; i > 0 && later == nil; i-- {
			if _, handed := l.key(q[i]); handed {
				v := q[i]
				later = &v
			}
		}
		l.mu.Unlock()
		l.handle(it, later)
		l.mu.Lock()
		l.held--
		l.done.Broadcast()
	}
}

// Held returns how many items were added and are not finished.
func (l *Lanes[T]) Held() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held
}

// WaitBelow returns once fewer than n items are held.
func (l *Lanes[T]) WaitBelow(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.held >= max(n, 1) {
		l.done.Wait()
	}
}

// Wait returns once every item added is finished.
func (l *Lanes[T]) Wait() { l.WaitBelow(1) }
