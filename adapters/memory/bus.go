package memory

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"hexapost/adapters/wire"
	"hexapost/ports"
	"hexapost/ports/delivery"
)

// BusConfig configures a Bus. The zero value is ready to use; zero fields take the defaults of
// delivery.Policy.
type BusConfig struct {
	// MaxAttempts, Backoff and MaxBackoff set the delivery.Policy of the bus.
	MaxAttempts         int
	Backoff, MaxBackoff time.Duration
	// Now returns the current time, stamped on dead letters (default time.Now).
	Now func() time.Time
	// Log receives one line per retry and per dead letter (default slog.Default()).
	Log *slog.Logger
	// Observer hears every retry and dead letter (default: nobody).
	Observer ports.DeliveryObserver
}

// Bus is an event bus in process memory: one shared queue that every Subscribe call of the bus
// consumes from, so the subscribers compete for messages as the members of one consumer group
// do on Redis or NATS. Messages travel encoded in the wire format, so a message that cannot be
// decoded takes the same path as on a real bus.
type Bus struct {
	policy delivery.Policy

	mu    sync.Mutex
	queue []*message
	// ready is closed, and replaced, when a message is queued, waking every idle subscriber.
	ready chan struct{}
	// dead holds the dead letters, oldest first.
	dead []ports.DeadLetter
}

// message is a queued change. Changes published in this process travel as values, as a
// decoded copy would arrive; payload is set for raw messages, and a change is encoded only when
// it moves to the dead letters, which show messages as they were on the bus.
type message struct {
	bus     *Bus
	change  ports.Change // unless raw
	raw     bool         // published with PublishRaw or redriven: payload is the message
	payload []byte
	// failures counts the deliveries whose handler failed.
	failures int
}

var (
	_ ports.Publisher   = (*Bus)(nil)
	_ ports.Subscriber  = (*Bus)(nil)
	_ ports.DeadLetters = (*Bus)(nil)
	_ ports.Pinger      = (*Bus)(nil)
	_ delivery.Message  = (*message)(nil)
)

// NewBus returns an empty Bus. Every zero or negative field of cfg takes its default, so no
// configuration is invalid and there is no error to return.
func NewBus(cfg BusConfig) *Bus {
	p := delivery.Policy{MaxAttempts: cfg.MaxAttempts, Backoff: cfg.Backoff, MaxBackoff: cfg.MaxBackoff,
		Log: cfg.Log, Observer: cfg.Observer, Now: cfg.Now}
	return &Bus{policy: p.WithDefaults(), ready: make(chan struct{})}
}

// Publish queues the changes in order, all of them at once.
func (b *Bus) Publish(ctx context.Context, changes []ports.Change) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	batch := make([]message, len(changes)) // one allocation for the messages of a publish
	msgs := make([]*message, len(changes))
	for i, c := range changes {
		batch[i].bus, batch[i].change = b, c
		msgs[i] = &batch[i]
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.enqueue(false, msgs...)
	return nil
}

// PublishRaw queues a copy of payload as it is, without encoding it. It exists for tests and
// fault drills: a payload that is not a valid message must end in the dead letters and block
// nothing behind it.
func (b *Bus) PublishRaw(ctx context.Context, payload []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.enqueue(false, &message{bus: b, raw: true, payload: slices.Clone(payload)})
	return nil
}

// Subscribe delivers queued changes to h until ctx ends, then returns nil once the change in
// hand is finished. h receives ctx, so a slow handler can give up at shutdown: a change whose
// handler failed after ctx ended was not acknowledged and goes back to the head of the queue,
// without counting as an attempt, for another subscriber or a later Subscribe call.
//
// The bus's delivery.Policy settles each delivery. A message scheduled again waits on a timer,
// not in the queue, so the messages behind it keep flowing; when the timer fires it joins the
// back of the queue.
func (b *Bus) Subscribe(ctx context.Context, h ports.Handler) error {
	for {
		m := b.take(ctx)
		if m == nil {
			return nil
		}
		d := delivery.Delivery{Msg: m, Change: m.change, Attempt: m.failures + 1}
		if m.raw {
			d.Payload = m.payload
			d.Change, d.Undecodable = wire.Decode(m.payload)
		}
		b.policy.Deliver(ctx, h, d)
	}
}

// take removes the message at the head of the queue, waiting for one; nil once ctx ended.
func (b *Bus) take(ctx context.Context) *message {
	for ctx.Err() == nil {
		b.mu.Lock()
		if len(b.queue) > 0 {
			m := b.queue[0]
			b.queue[0] = nil
			b.queue = b.queue[1:]
			b.mu.Unlock()
			return m
		}
		ready := b.ready
		b.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-ready:
		}
	}
	return nil
}

// Ack does nothing: a message taken from the queue is gone from it.
func (m *message) Ack(context.Context) (time.Duration, error) { return 0, nil }

// Retry puts the message back at the end of the queue after wait.
func (m *message) Retry(_ context.Context, wait time.Duration) (time.Duration, error) {
	m.failures++
	time.AfterFunc(wait, func() {
		m.bus.mu.Lock()
		defer m.bus.mu.Unlock()
		m.bus.enqueue(false, m)
	})
	return 0, nil
}

// Release puts the message back at the head of the queue.
func (m *message) Release(context.Context) {
	m.bus.mu.Lock()
	defer m.bus.mu.Unlock()
	m.bus.enqueue(true, m)
}

// DeadLetter adds d to the dead letters, with the message encoded in the wire format.
func (m *message) DeadLetter(_ context.Context, d *ports.DeadLetter) (time.Duration, error) {
	if d.Payload == nil {
		if p, err := wire.Encode(m.change); err == nil {
			d.Payload = p
		}
	}
	d.ID = rand.Text()
	m.bus.mu.Lock()
	defer m.bus.mu.Unlock()
	m.bus.dead = append(m.bus.dead, *d)
	return 0, nil
}

// enqueue adds msgs at the head or the tail of the queue and wakes the idle subscribers. The
// caller holds b.mu.
func (b *Bus) enqueue(head bool, msgs ...*message) {
	if len(msgs) == 0 {
		return
	}
	if head {
		b.queue = slices.Insert(b.queue, 0, msgs...)
	} else {
		b.queue = append(b.queue, msgs...)
	}
	close(b.ready)
	b.ready = make(chan struct{})
}

// List returns copies of the dead letters, oldest first.
func (b *Bus) List(context.Context) ([]ports.DeadLetter, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]ports.DeadLetter, len(b.dead))
	for i, d := range b.dead {
		d.Payload = slices.Clone(d.Payload)
		if d.Change != nil {
			c := copyChange(*d.Change)
			d.Change = &c
		}
		out[i] = d
	}
	return out, nil
}

// Redrive queues the dead letter's payload again, as a new message with no failures, and
// removes the dead letter; ports.ErrNotFound if there is no such id.
func (b *Bus) Redrive(_ context.Context, id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	d, err := b.remove(id)
	if err != nil {
		return err
	}
	b.enqueue(false, &message{bus: b, raw: true, payload: d.Payload})
	return nil
}

// Discard removes the dead letter for good; ports.ErrNotFound if there is no such id.
func (b *Bus) Discard(_ context.Context, id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, err := b.remove(id)
	return err
}

// remove takes the dead letter with the id out of the list. The caller holds b.mu.
func (b *Bus) remove(id string) (ports.DeadLetter, error) {
	i := slices.IndexFunc(b.dead, func(d ports.DeadLetter) bool { return d.ID == id })
	if i < 0 {
		return ports.DeadLetter{}, fmt.Errorf("memory: dead letter %q: %w", id, ports.ErrNotFound)
	}
	d := b.dead[i]
	b.dead = slices.Delete(b.dead, i, i+1)
	return d, nil
}

// Ping always succeeds: memory is always reachable.
func (b *Bus) Ping(context.Context) error { return nil }
