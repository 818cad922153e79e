package mysql

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"hexapost/core/post"
	"hexapost/ports"
)

// eventRow is one row of the events table. Its position is the event's place in the whole
// store, given by AUTO_INCREMENT.
type eventRow struct {
	bun.BaseModel `bun:"table:events"`

	Position   int64     `bun:"position,pk,autoincrement"`
	EventID    string    `bun:"event_id"`
	StreamID   string    `bun:"stream_id"`
	Version    int64     `bun:"version"`
	Type       string    `bun:"type"`
	Data       string    `bun:"data"`     // JSON: eventData
	Metadata   string    `bun:"metadata"` // JSON: eventMetadata
	OccurredAt time.Time `bun:"occurred_at"`
}

// eventData holds the fields an event carries. A nil field is left out, so "unchanged" (absent)
// and "set to empty" ("") survive the round trip.
type eventData struct {
	Title      *string `json:"title,omitempty"`
	Content    *string `json:"content,omitempty"`
	AuthorName *string `json:"author_name,omitempty"`
}

// eventMetadata is what is known about the request that caused an event, for tracing it
// later: its idempotency key, and the W3C trace context of the append and the request id,
// which the relay hands on to the bus.
type eventMetadata struct {
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	TraceParent    string `json:"traceparent,omitempty"`
	TraceState     string `json:"tracestate,omitempty"`
	RequestID      string `json:"request_id,omitempty"`
	Actor          string `json:"actor,omitempty"`
}

// outboxRow is a change not yet published: the event is the one at the same position in the
// events table; the row adds the post's state after it.
type outboxRow struct {
	bun.BaseModel `bun:"table:outbox"`

	Position int64  `bun:"position,pk"`
	StreamID string `bun:"stream_id"`
	Version  int64  `bun:"version"`
	State    string `bun:"state"` // JSON: stateDoc
}

// keyRow is one idempotency record.
type keyRow struct {
	bun.BaseModel `bun:"table:idempotency_keys"`

	Key         string    `bun:"idempotency_key,pk"`
	Fingerprint string    `bun:"fingerprint"`
	Created     bool      `bun:"created"`
	State       string    `bun:"state"` // JSON: stateDoc
	CreatedAt   time.Time `bun:"created_at"`
	// ExpiresAt is when the record may be forgotten: KeyTTL after it was stored.
	ExpiresAt time.Time `bun:"expires_at"`
}

// stateDoc is post.State as JSON.
type stateDoc struct {
	ID         string    `json:"id"`
	Version    int64     `json:"version"`
	Title      string    `json:"title"`
	Content    string    `json:"content"`
	AuthorName string    `json:"author_name"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	Deleted    bool      `json:"deleted"`
	Erased     bool      `json:"erased,omitempty"`
}

// dbTime is how every time is stored: in UTC, to the microsecond (DATETIME(6)). Times in JSON
// documents are cut the same way, so an event's occurred_at and its state's updated_at stay
// equal.
func dbTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func toEventRow(e post.Event, md ports.Metadata, idempotencyKey string) (eventRow, error) {
	data, err := json.Marshal(eventData{Title: e.Title, Content: e.Content, AuthorName: e.AuthorName})
	if err != nil {
		return eventRow{}, fmt.Errorf("encode data of %s v%d: %w", e.PostID, e.Version, err)
	}
	meta, err := json.Marshal(eventMetadata{
		IdempotencyKey: idempotencyKey, TraceParent: md.TraceParent, TraceState: md.TraceState,
		RequestID: md.RequestID, Actor: md.Actor,
	})
	if err != nil {
		return eventRow{}, fmt.Errorf("encode metadata of %s v%d: %w", e.PostID, e.Version, err)
	}
	return eventRow{
		EventID: e.ID, StreamID: e.PostID, Version: e.Version, Type: string(e.Type),
		Data: string(data), Metadata: string(meta), OccurredAt: dbTime(e.OccurredAt),
	}, nil
}

func fromEventRow(r eventRow) (post.Event, error) {
	var d eventData
	if err := json.Unmarshal([]byte(r.Data), &d); err != nil {
		return post.Event{}, fmt.Errorf("decode data of event at position %d: %w", r.Position, err)
	}
	return post.Event{
		ID: r.EventID, PostID: r.StreamID, Version: r.Version, Type: post.EventType(r.Type),
		OccurredAt: r.OccurredAt.UTC(),
		Title:      d.Title, Content: d.Content, AuthorName: d.AuthorName,
	}, nil
}

// metadataOf returns the metadata of an event row that travels with its change.
func metadataOf(r eventRow) (ports.Metadata, error) {
	var m eventMetadata
	if err := json.Unmarshal([]byte(r.Metadata), &m); err != nil {
		return ports.Metadata{}, fmt.Errorf("decode metadata of event at position %d: %w", r.Position, err)
	}
	return ports.Metadata{TraceParent: m.TraceParent, TraceState: m.TraceState, RequestID: m.RequestID,
		Actor: m.Actor}, nil
}

func toKeyRow(r ports.IdempotencyRecord, storedAt time.Time) (keyRow, error) {
	state, err := encodeState(r.State)
	if err != nil {
		return keyRow{}, err
	}
	return keyRow{
		Key: r.Key, Fingerprint: r.Fingerprint, Created: r.Created, State: state,
		CreatedAt: dbTime(r.CreatedAt), ExpiresAt: dbTime(storedAt.Add(KeyTTL)),
	}, nil
}

func fromKeyRow(r keyRow) (ports.IdempotencyRecord, error) {
	s, err := decodeState(r.State)
	if err != nil {
		return ports.IdempotencyRecord{}, err
	}
	return ports.IdempotencyRecord{
		Key: r.Key, Fingerprint: r.Fingerprint, Created: r.Created, State: s, CreatedAt: r.CreatedAt.UTC(),
	}, nil
}

func encodeState(s post.State) (string, error) {
	b, err := json.Marshal(stateDoc{
		ID: s.ID, Version: s.Version, Title: s.Title, Content: s.Content, AuthorName: s.AuthorName,
		CreatedAt: dbTime(s.CreatedAt), UpdatedAt: dbTime(s.UpdatedAt), Deleted: s.Deleted, Erased: s.Erased,
	})
	if err != nil {
		return "", fmt.Errorf("encode state of %s v%d: %w", s.ID, s.Version, err)
	}
	return string(b), nil
}

func decodeState(doc string) (post.State, error) {
	var d stateDoc
	if err := json.Unmarshal([]byte(doc), &d); err != nil {
		return post.State{}, fmt.Errorf("decode state: %w", err)
	}
	return post.State{
		ID: d.ID, Version: d.Version, Title: d.Title, Content: d.Content, AuthorName: d.AuthorName,
		CreatedAt: d.CreatedAt.UTC(), UpdatedAt: d.UpdatedAt.UTC(), Deleted: d.Deleted, Erased: d.Erased,
	}, nil
}
