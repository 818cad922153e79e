package command_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hexapost/core/command"
	"hexapost/core/post"
	"hexapost/ports"
)

// store is a map-backed test double of the write side's ports. It keeps the promises the ports
// document (atomic appends checked against the expected version, idempotency keys taken once,
// an outbox relayed in position order), and nothing more.
type store struct {
	mu       sync.Mutex
	streams  map[string][]post.Event
	outbox   []ports.Change // every appended change, in position order
	sent     int            // how many outbox entries are marked published
	keys     map[string]ports.IdempotencyRecord
	appended chan struct{}

	relaying sync.Mutex // one relay round at a time
}

var (
	_ ports.EventStore       = (*store)(nil)
	_ ports.IdempotencyStore = (*store)(nil)
	_ ports.Outbox           = (*store)(nil)
)

func newStore() *store {
	return &store{
		streams:  map[string][]post.Event{},
		keys:     map[string]ports.IdempotencyRecord{},
		appended: make(chan struct{}, 1),
	}
}

func (s *store) Load(_ context.Context, postID string, after int64) ([]post.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	stream := s.streams[postID]
	return append([]post.Event(nil), stream[min(after, int64(len(stream))):]...), nil
}

func (s *store) Append(_ context.Context, a ports.Append) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a.Idempotency != nil {
		if _, taken := s.keys[a.Idempotency.Key]; taken {
			return ports.ErrDuplicate
		}
	}
	if len(a.Changes) > 0 && int64(len(s.streams[a.PostID])) != a.ExpectedVersion {
		return ports.ErrConflict
	}
	for _, c := range a.Changes {
		s.streams[a.PostID] = append(s.streams[a.PostID], c.Event)
		s.outbox = append(s.outbox, c)
	}
	if a.Idempotency != nil {
		s.keys[a.Idempotency.Key] = *a.Idempotency
	}
	select {
	case s.appended <- struct{}{}:
	default:
	}
	return nil
}

func (s *store) ReadAll(_ context.Context, after int64, limit int) ([]ports.Recorded, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ports.Recorded
	for i := after; i < int64(len(s.outbox)) && len(out) < limit; i++ {
		out = append(out, ports.Recorded{Position: i + 1, Event: s.outbox[i].Event})
	}
	return out, nil
}

func (s *store) Lookup(_ context.Context, key string) (ports.IdempotencyRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.keys[key]
	if !ok {
		return ports.IdempotencyRecord{}, ports.ErrNotFound
	}
	return rec, nil
}

func (s *store) Relay(ctx context.Context, maxChanges int,
	publish func(context.Context, []ports.Change) error) (int, error) {
	s.relaying.Lock()
	defer s.relaying.Unlock()
	s.mu.Lock()
	batch := append([]ports.Change(nil), s.outbox[s.sent:min(s.sent+maxChanges, len(s.outbox))]...)
	s.mu.Unlock()
	if len(batch) == 0 {
		return 0, nil
	}
	if err := publish(ctx, batch); err != nil {
		return 0, err
	}
	s.mu.Lock()
	s.sent += len(batch)
	s.mu.Unlock()
	return len(batch), nil
}

func (s *store) Appended() <-chan struct{} { return s.appended }

// changes returns every change appended so far, in position order.
func (s *store) changes() []ports.Change {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]ports.Change(nil), s.outbox...)
}

// drainAppended forgets a pending append signal, so a test controls when the relay is woken.
func (s *store) drainAppended() {
	select {
	case <-s.appended:
	default:
	}
}

// pendingSignal reports whether an append signal is waiting to be taken.
func (s *store) pendingSignal() bool { return len(s.appended) > 0 }

// otherProcess is a store that another process writes to as well: before each of the first
// races appends it slips in an update of its own, so the append finds the stream moved on.
type otherProcess struct {
	*store
	races   int64
	appends atomic.Int64
}

func (o *otherProcess) Append(ctx context.Context, a ports.Append) error {
	if n := o.appends.Add(1); n <= o.races {
		events, err := o.Load(ctx, a.PostID, 0)
		if err != nil {
			return err
		}
		p, err := post.FromHistory(a.PostID, events)
		if err != nil {
			return err
		}
		e, err := p.Update(post.Update{Content: ptr(fmt.Sprintf("written elsewhere %d", n))},
			post.Stamp{EventID: fmt.Sprintf("other-%d", n), At: now()})
		if err != nil {
			return err
		}
		_ = p.Apply(e...)
		err = o.store.Append(ctx, ports.Append{
			PostID: a.PostID, ExpectedVersion: p.Version() - 1,
			Changes: []ports.Change{{Event: e[0], State: p.State()}},
		})
		if err != nil {
			return err
		}
	}
	return o.store.Append(ctx, a)
}

// staleOnce is otherProcess behind a replica that lags once: its first read of a stream misses
// the last event.
type staleOnce struct {
	*otherProcess
	loads atomic.Int64
}

func (s *staleOnce) Load(ctx context.Context, postID string, after int64) ([]post.Event, error) {
	events, err := s.otherProcess.Load(ctx, postID, after)
	if s.loads.Add(1) == 1 && len(events) > 0 {
		events = events[:len(events)-1]
	}
	return events, err
}

// alwaysConflicting is a store whose appends never win, as if another process always got there
// first. onAppend, when set, runs on every attempt.
type alwaysConflicting struct {
	*store
	appends  atomic.Int64
	onAppend func()
}

func (c *alwaysConflicting) Append(context.Context, ports.Append) error {
	c.appends.Add(1)
	if c.onAppend != nil {
		c.onAppend()
	}
	return ports.ErrConflict
}

// publisher records what it was given; its first failFirst calls fail.
type publisher struct {
	mu        sync.Mutex
	calls     int
	failFirst int
	published []ports.Change
}

var _ ports.Publisher = (*publisher)(nil)

var errBusDown = errors.New("bus down")

func (p *publisher) Publish(_ context.Context, changes []ports.Change) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	if p.calls <= p.failFirst {
		return errBusDown
	}
	p.published = append(p.published, changes...)
	return nil
}

func (p *publisher) got() (calls int, published []ports.Change) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls, append([]ports.Change(nil), p.published...)
}

// stuckPublisher never returns before its context ends, like a bus that does not answer.
type stuckPublisher struct{ calls atomic.Int64 }

func (p *stuckPublisher) Publish(ctx context.Context, _ []ports.Change) error {
	p.calls.Add(1)
	<-ctx.Done()
	return ctx.Err()
}

// now is the service's clock: a fixed instant off UTC with nanoseconds, so tests can see that
// stored times are UTC with microsecond precision.
func now() time.Time {
	return time.Date(2025, 3, 1, 12, 30, 0, 123456789, time.FixedZone("CEST", 2*60*60))
}

// stored is what now() becomes in a post's state.
var stored = time.Date(2025, 3, 1, 10, 30, 0, 123456000, time.UTC)

func newService(store ports.EventStore, keys ports.IdempotencyStore, cfg command.Config) *command.Service {
	var n atomic.Int64
	newID := func() string { return fmt.Sprintf("id-%04d", n.Add(1)) }
	return command.NewService(command.NewStreams(store), keys, newID, now, slog.New(slog.DiscardHandler), cfg)
}

func ptr[T any](v T) *T { return &v }

// eventually waits until cond holds, failing the test if it does not within a few seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		<-tick.C
	}
}

// returnsWithin fails the test if done is not closed within d.
func returnsWithin(t *testing.T, d time.Duration, what string, done <-chan struct{}) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		t.Fatalf("%s did not return within %v", what, d)
	}
}
