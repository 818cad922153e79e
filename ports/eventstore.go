package ports

import (
	"context"
	"fmt"
	"time"

	"hexapost/core/post"
)

// Change is the unit that travels from the write side to the read side: one event and the full
// state of its post right after it. Carrying the state lets the read side converge by keeping
// the highest version it has seen, whatever the order and number of deliveries.
type Change struct {
	Event post.Event
	State post.State
	// Metadata travels with the change from the append to the projection; stores and buses keep
	// it as they were given it.
	Metadata Metadata
}

// Metadata is what is known about the request that caused a change, for following the change
// across processes. Every field is optional.
type Metadata struct {
	// TraceParent and TraceState are the W3C trace context (the traceparent and tracestate
	// headers) of the operation that appended the change; empty when it was not traced.
	TraceParent string
	TraceState  string
	// RequestID is the X-Request-Id of the HTTP request that caused the change, so that the
	// log lines of its projection can be found with those of the request.
	RequestID string
	// Actor names the credential of an operator who asked for the change (an erasure), never
	// the person: it is the change's audit record in the store.
	Actor string
}

// IdempotencyRecord remembers the outcome of a command sent with an Idempotency-Key, so that a
// repeat returns the same answer without deciding again.
type IdempotencyRecord struct {
	Key string
	// Fingerprint identifies the request (operation, target and body); a repeat of the key with
	// another fingerprint is a client error.
	Fingerprint string
	// Created tells whether the first request created the post (HTTP 201 rather than 200).
	Created   bool
	State     post.State
	CreatedAt time.Time
}

// Append is one atomic write to the store.
type Append struct {
	PostID string
	// ExpectedVersion is the version the stream must have now; 0 for a new stream.
	ExpectedVersion int64
	// Changes are the new events, versions ExpectedVersion+1, +2, …, each with its state after.
	Changes []Change
	// Idempotency, when not nil, is stored in the same transaction as the events.
	Idempotency *IdempotencyRecord
}

// Check returns an error when a change cannot follow ExpectedVersion in PostID's stream: of
// another post, or not the next version. Stores call it before writing, so a malformed append
// fails with the reason instead of a key clash.
func (a Append) Check() error {
	for i, c := range a.Changes {
		want := a.ExpectedVersion + int64(i) + 1
		if c.Event.PostID != a.PostID || c.Event.Version != want {
			return fmt.Errorf("change %d is %s v%d, want %s v%d", i, c.Event.PostID, c.Event.Version, a.PostID, want)
		}
	}
	return nil
}

// EventLoader reads one post's stream.
type EventLoader interface {
	// Load returns the events of the post with a version above after, in version order: the
	// whole stream for after = 0, or what followed a state the caller already has. An unknown
	// post has none (no error).
	Load(ctx context.Context, postID string, after int64) ([]post.Event, error)
}

// EventAppender writes to the store.
type EventAppender interface {
	// Append atomically stores the events, one outbox entry per change and the idempotency
	// record, or nothing. If the stream is not at ExpectedVersion it returns ErrConflict, if the
	// idempotency key is taken ErrDuplicate. With no changes only the record is stored (and the
	// version is not checked). It is safe for concurrent use; of N concurrent appends at the same
	// expected version exactly one succeeds.
	//
	// An append whose change is an erasure (post.EventErased) also removes, in the same atomic
	// write, the personal data of the post everywhere the store keeps it: the fields of its
	// earlier events (post.Event.Redacted), the states of its outbox entries and of the
	// idempotency records that answer with it (post.State.Redacted).
	Append(ctx context.Context, a Append) error
}

// Recorded is an event with its position in the whole store.
type Recorded struct {
	Position int64
	Event    post.Event
}

// EventReader reads the whole store, for rebuilding read models.
type EventReader interface {
	// ReadAll returns up to limit events with a position greater than after, in position order.
	// Positions increase but may have gaps.
	ReadAll(ctx context.Context, after int64, limit int) ([]Recorded, error)
}

// StreamPosition is an event's place in stream order: by post id, then by version.
type StreamPosition struct {
	PostID  string
	Version int64
}

// StreamReader reads the whole store one post's stream after another, so that a reader can
// fold each post's events into its state holding one post at a time.
type StreamReader interface {
	// ReadStreams returns up to limit events that come after the position after in stream
	// order: by post id (byte order), then by version. The zero position is before every event.
	ReadStreams(ctx context.Context, after StreamPosition, limit int) ([]post.Event, error)
}

// EventStore is the append-only source of truth.
type EventStore interface {
	EventLoader
	EventAppender
	EventReader
}

// IdempotencyStore looks up remembered outcomes. Records are kept at least 24 hours.
type IdempotencyStore interface {
	// Lookup returns the record of the key, or ErrNotFound.
	Lookup(ctx context.Context, key string) (IdempotencyRecord, error)
}

// Outbox hands appended changes to the relay, which publishes them on the bus.
type Outbox interface {
	// Relay calls publish with up to max unpublished changes in position order and marks them
	// published only when publish returned nil; it returns how many it marked. If publish fails
	// nothing is marked, so a crash or error gives a duplicate later, never a loss. Concurrent
	// callers (in this process or others) never receive the same entries at the same time, and
	// changes of one post are handed out in version order.
	Relay(ctx context.Context, max int, publish func(context.Context, []Change) error) (int, error)
	// Appended is signalled (coalesced) after an append in this process commits, so the relay can
	// wake at once instead of polling.
	Appended() <-chan struct{}
}

// Backlog is the state of the outbox at one moment.
type Backlog struct {
	// Count is how many changes wait to be published, in flight ones included.
	Count int
	// Oldest is when the change first in line for the relay occurred; zero when Count is 0.
	Oldest time.Time
}

// OutboxStats lets an operator see whether the relay keeps up.
type OutboxStats interface {
	// Backlog returns the outbox's size and the age of its head, as committed at one moment; it
	// takes no lock that would hold up an append or a relay. It is safe for concurrent use and
	// cheap enough to call at every metrics scrape. A backend that does not answer gives an
	// error wrapping ErrUnavailable.
	Backlog(ctx context.Context) (Backlog, error)
}
