package memory

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"hexapost/core/post"
	"hexapost/ports"
)

// KeyTTL is how long an idempotency record is kept after it was stored: the 24 hours the HTTP
// contract promises to clients that retry with the same Idempotency-Key.
const KeyTTL = 24 * time.Hour

// EventStoreConfig configures an EventStore. The zero value is ready to use.
type EventStoreConfig struct {
	// Now returns the current time. It decides when idempotency records expire, so a test can
	// move the clock instead of waiting a day (default time.Now).
	Now func() time.Time
}

// EventStore is the event store, its outbox and the idempotency records in one value. One
// mutex guards all three, which is what makes "events + outbox entries + idempotency record"
// one atomic write, as the MySQL store does with one transaction.
type EventStore struct {
	now      func() time.Time
	appended chan struct{}

	mu sync.Mutex
	// streams lists each post's events in version order as their indexes in all: an event is
	// held once, and a stream holds no pointers for the garbage collector to follow.
	streams map[string][]int64
	// ids lists the posts in id order, for the reads that go through the streams in that order.
	ids keyIndex
	// all holds every event in position order: the event at index i has position i+1.
	all eventLog
	// pending holds the outbox entries not yet published, in position order.
	pending []*outboxEntry
	keys    map[string]storedKey
	// expiry lists stored keys oldest first, so expired ones are dropped without a full scan.
	expiry []keyStamp

	// locks holds the named locks taken, by name.
	locksMu sync.Mutex
	locks   map[string]*namedLock
}

type outboxEntry struct {
	change ports.Change
	// claimed marks an entry handed to a Relay call that has not finished yet.
	claimed   bool
	published bool
}

type storedKey struct {
	rec ports.IdempotencyRecord
	at  time.Time
}

type keyStamp struct {
	key string
	at  time.Time
}

var (
	_ ports.EventStore       = (*EventStore)(nil)
	_ ports.StreamReader     = (*EventStore)(nil)
	_ ports.Outbox           = (*EventStore)(nil)
	_ ports.OutboxStats      = (*EventStore)(nil)
	_ ports.IdempotencyStore = (*EventStore)(nil)
	_ ports.Pinger           = (*EventStore)(nil)
	_ ports.StreamHeads      = (*EventStore)(nil)
	_ ports.Locker           = (*EventStore)(nil)
	_ ports.AuthorPosts      = (*EventStore)(nil)
)

// NewEventStore returns an empty EventStore. Every zero field of cfg takes its default, so no
// configuration is invalid and there is no error to return.
func NewEventStore(cfg EventStoreConfig) *EventStore {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &EventStore{
		now:      cfg.Now,
		appended: make(chan struct{}, 1),
		streams:  map[string][]int64{},
		keys:     map[string]storedKey{},
		locks:    map[string]*namedLock{},
	}
}

// Load returns copies of the post's events above version after, in version order; none for an
// unknown post.
func (s *EventStore) Load(_ context.Context, postID string, after int64) ([]post.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	stream := s.streams[postID]
	stream = stream[min(max(after, 0), int64(len(stream))):] // versions are 1, 2, 3, …
	out := make([]post.Event, len(stream))
	for i, at := range stream {
		out[i] = copyEvent(s.all.at(at))
	}
	return out, nil
}

// Append stores the events, their outbox entries and the idempotency record at once, or
// nothing. It keeps copies, so the caller may reuse what it passed.
func (s *EventStore) Append(_ context.Context, a ports.Append) error {
	if err := a.Check(); err != nil {
		return fmt.Errorf("memory: append %s: %w", a.PostID, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.expire(now)
	if a.Idempotency != nil {
		if _, taken := s.keys[a.Idempotency.Key]; taken {
			return fmt.Errorf("memory: append %s: idempotency key %q: %w", a.PostID, a.Idempotency.Key,
				ports.ErrDuplicate)
		}
	}
	if len(a.Changes) > 0 {
		stream := s.streams[a.PostID]
		if v := int64(len(stream)); v != a.ExpectedVersion {
			return fmt.Errorf("memory: append %s: expected version %d, stream is at %d: %w",
				a.PostID, a.ExpectedVersion, v, ports.ErrConflict)
		}
		if len(stream) == 0 {
			s.ids.insert(listKey{id: a.PostID})
		}
		for _, c := range a.Changes {
			c = copyChange(c)
			stream = append(stream, s.all.len())
			s.all.append(c.Event)
			s.pending = append(s.pending, &outboxEntry{change: c})
		}
		s.streams[a.PostID] = stream
		if a.Erases() {
			s.erase(a.PostID)
		}
	}
	if a.Idempotency != nil {
		s.keys[a.Idempotency.Key] = storedKey{rec: *a.Idempotency, at: now}
		s.expiry = append(s.expiry, keyStamp{key: a.Idempotency.Key, at: now})
	}
	if len(a.Changes) > 0 {
		select {
		case s.appended <- struct{}{}:
		default: // a signal is pending already; the relay will see this append too
		}
	}
	return nil
}

// logChunk is how many events one chunk of an eventLog holds.
const logChunk = 1 << 12

// eventLog is a list of events that grows by chunks: appending never copies the events already
// there, so a long-lived store does not stall its appends, under its lock, to copy the whole
// log into a twice larger array, nor leave the old one to the garbage collector.
type eventLog struct {
	chunks [][]post.Event
	n      int64
}

func (l *eventLog) append(e post.Event) {
	if l.n%logChunk == 0 {
		l.chunks = append(l.chunks, make([]post.Event, 0, logChunk))
	}
	last := &l.chunks[len(l.chunks)-1]
	*last = append(*last, e)
	l.n++
}

func (l *eventLog) len() int64 { return l.n }

// at returns the event at index i, 0 ≤ i < len.
func (l *eventLog) at(i int64) post.Event { return l.chunks[i/logChunk][i%logChunk] }

// ReadAll returns copies of up to limit events after the position after, in position order.
// Positions in this store have no gaps.
func (s *EventStore) ReadAll(_ context.Context, after int64, limit int) ([]ports.Recorded, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	start := max(after, 0)
	if limit <= 0 || start >= s.all.len() {
		return nil, nil
	}
	end := min(start+int64(limit), s.all.len())
	out := make([]ports.Recorded, 0, end-start)
	for i := start; i < end; i++ {
		out = append(out, ports.Recorded{Position: i + 1, Event: copyEvent(s.all.at(i))})
	}
	return out, nil
}

// ReadStreams returns copies of up to limit events after the position after in stream order.
func (s *EventStore) ReadStreams(_ context.Context, after ports.StreamPosition, limit int) ([]post.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if limit <= 0 {
		return nil, nil
	}
	out := make([]post.Event, 0, limit)
	// The rest of the stream the position is in, then the streams after it.
	stream := s.streams[after.PostID]
	stream = stream[min(max(after.Version, 0), int64(len(stream))):] // versions are 1, 2, 3, …
	for _, at := range stream {
		if len(out) == limit {
			return out, nil
		}
		out = append(out, copyEvent(s.all.at(at)))
	}
	for k := range s.ids.after(&listKey{id: after.PostID}) {
		for _, at := range s.streams[k.id] {
			if len(out) == limit {
				return out, nil
			}
			out = append(out, copyEvent(s.all.at(at)))
		}
	}
	return out, nil
}

// Heads returns up to limit posts whose id comes after the id after, in id order, each with
// the version of its last event.
func (s *EventStore) Heads(_ context.Context, after string, limit int) ([]ports.StreamHead, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if limit <= 0 {
		return nil, nil
	}
	var from *listKey
	if after != "" {
		from = &listKey{id: after}
	}
	out := make([]ports.StreamHead, 0, min(limit, s.ids.len()))
	for k := range s.ids.after(from) {
		out = append(out, ports.StreamHead{PostID: k.id, Version: int64(len(s.streams[k.id]))})
		if len(out) == limit {
			break
		}
	}
	return out, nil
}

// Lookup returns the record of key, or ports.ErrNotFound if there is none or it expired.
func (s *EventStore) Lookup(_ context.Context, key string) (ports.IdempotencyRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire(s.now())
	k, ok := s.keys[key]
	if !ok {
		return ports.IdempotencyRecord{}, fmt.Errorf("memory: idempotency key %q: %w", key, ports.ErrNotFound)
	}
	return k.rec, nil
}

// expire drops the records older than KeyTTL. Keys are listed in the order they were stored,
// so it stops at the first live one. The caller holds s.mu.
func (s *EventStore) expire(now time.Time) {
	n := 0
	for _, k := range s.expiry {
		if now.Sub(k.at) <= KeyTTL {
			break
		}
		if s.keys[k.key].at.Equal(k.at) {
			delete(s.keys, k.key)
		}
		n++
	}
	if n > 0 {
		s.expiry = slices.Delete(s.expiry, 0, n)
	}
}

// Relay hands up to maxChanges unpublished changes to publish, in position order, and marks them
// published when publish returns nil. The entries are claimed while publish runs, so a
// concurrent Relay call skips them; it also skips every later entry of the same post, so the
// changes of one post are handed out in version order even across concurrent calls. When
// publish fails (or panics) the claims are released and the entries are handed out again later.
func (s *EventStore) Relay(ctx context.Context, maxChanges int,
	publish func(context.Context, []ports.Change) error) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	batch := s.claim(maxChanges)
	if len(batch) == 0 {
		return 0, nil
	}
	published := false
	defer func() { s.finish(batch, published) }() // also when publish panics
	changes := make([]ports.Change, len(batch))
	for i, e := range batch {
		changes[i] = copyChange(e.change)
	}
	if err := publish(ctx, changes); err != nil {
		return 0, fmt.Errorf("memory: relay %d changes: %w", len(batch), err)
	}
	published = true
	return len(batch), nil
}

// claim marks and returns up to maxChanges pending entries that no other Relay call holds and
// that no held entry of the same post precedes.
func (s *EventStore) claim(maxChanges int) []*outboxEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	var batch []*outboxEntry
	held := map[string]bool{} // posts with an entry claimed by another call
	for _, e := range s.pending {
		if len(batch) >= maxChanges {
			break
		}
		id := e.change.Event.PostID
		switch {
		case held[id]:
		case e.claimed:
			held[id] = true
		default:
			e.claimed = true
			batch = append(batch, e)
		}
	}
	return batch
}

// finish marks the batch published, or releases it for another round.
func (s *EventStore) finish(batch []*outboxEntry, published bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range batch {
		e.claimed = false
		e.published = published
	}
	if published {
		s.pending = slices.DeleteFunc(s.pending, func(e *outboxEntry) bool { return e.published })
	}
}

// Appended is signalled after every append that added outbox entries. The channel holds one
// signal: appends made before the relay takes it are coalesced into it.
func (s *EventStore) Appended() <-chan struct{} { return s.appended }

// Backlog returns how many changes are not yet published and when the first in line occurred.
func (s *EventStore) Backlog(context.Context) (ports.Backlog, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := ports.Backlog{Count: len(s.pending)}
	if len(s.pending) > 0 {
		b.Oldest = s.pending[0].change.Event.OccurredAt
	}
	return b, nil
}

// TryLock takes the lock called name if it is free. The locks live in the store's process, as
// the store does: a deployment on the memory store is that one process.
func (s *EventStore) TryLock(_ context.Context, name string) (ports.Lock, bool, error) {
	s.locksMu.Lock()
	defer s.locksMu.Unlock()
	if s.locks[name] != nil {
		return nil, false, nil
	}
	l := &namedLock{s: s, name: name}
	s.locks[name] = l
	return l, true, nil
}

// namedLock is a lock that TryLock handed out.
type namedLock struct {
	s    *EventStore
	name string
}

// Held reports whether the lock is still this one's: it is until Release.
func (l *namedLock) Held(context.Context) bool {
	l.s.locksMu.Lock()
	defer l.s.locksMu.Unlock()
	return l.s.locks[l.name] == l
}

// Release frees the lock, if it still holds it.
func (l *namedLock) Release() {
	l.s.locksMu.Lock()
	defer l.s.locksMu.Unlock()
	if l.s.locks[l.name] == l {
		delete(l.s.locks, l.name)
	}
}

// Ping always succeeds: memory is always reachable.
func (s *EventStore) Ping(context.Context) error { return nil }

func copyChange(c ports.Change) ports.Change {
	c.Event = copyEvent(c.Event)
	return c
}

// copyEvent returns e with its own copies of the optional fields, so that neither the caller
// nor the store can change the other's event through a shared pointer.
func copyEvent(e post.Event) post.Event {
	e.Title, e.Content, e.AuthorName = copyString(e.Title), copyString(e.Content), copyString(e.AuthorName)
	return e
}

func copyString(p *string) *string {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
