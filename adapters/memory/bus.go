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
)

// BusConfig configures a Bus. The zero value is ready to use; zero fields take the defaults.
type BusConfig struct {
	// MaxAttempts is how many times a change is offered to a handler before it is moved to the
	// dead letters (default 3).
	MaxAttempts int
	// Backoff is the delay before the first redelivery; each further one doubles it, so a
	// struggling read model gets room to recover (default 100ms).
	Backoff time.Duration
	// MaxBackoff caps the delay between two deliveries (default 5s).
	MaxBackoff time.Duration
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
	cfg BusConfig

	mu    sync.Mutex
	queue []*message
	// ready is closed, and replaced, when a message is queued, waking every idle subscriber.
	ready chan struct{}
	// dead holds the dead letters, oldest first.
	dead []ports.DeadLetter
}

// message is a queued change. Changes published in this process travel as values, as a
// decoded copy would arrive; payload is set for raw messages, and filled in for a change when
// it moves to the dead letters, which show messages as they were on the bus.
type message struct {
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
)

// NewBus returns an empty Bus. Every zero or negative field of cfg takes its default, so no
// configuration is invalid and there is no error to return.
func NewBus(cfg BusConfig) *Bus {
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Observer == nil {
		cfg.Observer = nobody{}
	}
	return &Bus{cfg: cfg, ready: make(chan struct{})}
}

// Publish queues the changes in order, all of them at once.
func (b *Bus) Publish(ctx context.Context, changes []ports.Change) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	batch := make([]message, len(changes)) // one allocation for the messages of a publish
	msgs := make([]*message, len(changes))
	for i, c := range changes {
		batch[i].change = c
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
	b.enqueue(false, &message{raw: true, payload: slices.Clone(payload)})
	return nil
}

// Subscribe delivers queued changes to h until ctx ends, then returns nil once the change in
// hand is finished. h receives ctx, so a slow handler can give up at shutdown: a change whose
// handler failed after ctx ended was not acknowledged and goes back to the head of the queue,
// without counting as an attempt, for another subscriber or a later Subscribe call.
//
// A handler error schedules a redelivery after Backoff, doubled for each further failure. The
// message waits on a timer, not in the queue, so the messages behind it keep flowing; when the
// timer fires it joins the back of the queue. After MaxAttempts failures, or at once when the
// payload cannot be decoded, the message moves to the dead letters.
func (b *Bus) Subscribe(ctx context.Context, h ports.Handler) error {
	for {
		m := b.take(ctx)
		if m == nil {
			return nil
		}
		b.deliver(ctx, m, h)
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

func (b *Bus) deliver(ctx context.Context, m *message, h ports.Handler) {
	c := m.change
	if m.raw {
		var err error
		if c, err = wire.Decode(m.payload); err != nil {
			b.bury(m, nil, 1, ports.CauseUndecodable, err)
			return
		}
	}
	err := h(ctx, c)
	switch {
	case err == nil:
		return
	case ctx.Err() != nil:
		b.mu.Lock()
		defer b.mu.Unlock()
		b.enqueue(true, m)
		return
	}
	m.failures++
	if m.failures >= b.cfg.MaxAttempts {
		dead := c // only here on the heap: a change delivered is not
		b.bury(m, &dead, m.failures, ports.CauseAttemptsExhausted, err)
		return
	}
	b.cfg.Observer.Retrying()
	wait := b.backoff(m.failures)
	b.cfg.Log.Warn("projection failed; will retry", "post_id", c.Event.PostID, "version", c.Event.Version,
		"event_id", c.Event.ID, "attempt", m.failures, "retry_in", wait, "error", err)
	time.AfterFunc(wait, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.enqueue(false, m)
	})
}

// backoff returns the delay after the given number of failures: Backoff·2^(failures-1), at
// most MaxBackoff.
func (b *Bus) backoff(failures int) time.Duration {
	d := b.cfg.Backoff
	for i := 1; i < failures && d < b.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, b.cfg.MaxBackoff)
}

// bury moves m to the dead letters. c is nil when the payload could not be decoded.
func (b *Bus) bury(m *message, c *ports.Change, attempts int, why ports.DeadLetterCause, cause error) {
	if m.payload == nil {
		if p, err := wire.Encode(m.change); err == nil {
			m.payload = p
		}
	}
	d := ports.DeadLetter{
		ID: rand.Text(), Change: c, Payload: m.payload, Reason: cause.Error(),
		Attempts: attempts, FailedAt: b.cfg.Now(),
	}
	b.mu.Lock()
	b.dead = append(b.dead, d)
	b.mu.Unlock()
	b.cfg.Observer.DeadLettered(why)

	attrs := []any{"dead_letter_id", d.ID, "attempt", attempts, "error", cause, "reason", d.Reason}
	if c != nil {
		attrs = append([]any{"post_id", c.Event.PostID, "version", c.Event.Version, "event_id", c.Event.ID}, attrs...)
	} else {
		attrs = append(attrs, "payload_bytes", len(m.payload))
	}
	b.cfg.Log.Error("message dead-lettered", attrs...)
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
	b.enqueue(false, &message{raw: true, payload: d.Payload})
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

// nobody is the DeliveryObserver of a bus configured without one.
type nobody struct{}

func (nobody) Retrying()                          {}
func (nobody) DeadLettered(ports.DeadLetterCause) {}
