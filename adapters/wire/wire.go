// Package wire is the message format on the event bus: a Change encoded as versioned JSON.
// Every bus adapter uses it, so a message published through one can be read through another,
// and a change to the format is made in one place. It is the part of the bus adapters that
// their brokers share: it adapts ports.Change to the bytes a broker carries, with the JSON
// tags that stay out of ports and core.
package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"hexapost/core/post"
	"hexapost/ports"
)

// Schema is the version of the format written by Encode. Decode refuses other versions rather
// than guessing at their meaning. Optional fields added later (such as trace) do not change
// it: a reader that does not know them ignores them.
const Schema = 1

// ErrUndecodable is returned for a message that is not a valid Change of a known schema.
var ErrUndecodable = errors.New("undecodable message")

type message struct {
	Schema int    `json:"schema"`
	Event  event  `json:"event"`
	State  state  `json:"state"`
	Trace  *trace `json:"trace,omitempty"`
	// RequestID is the X-Request-Id of the request that caused the change.
	RequestID string `json:"request_id,omitempty"`
	// Actor names the credential of an operator who asked for the change.
	Actor string `json:"actor,omitempty"`
}

// trace is the W3C trace context of the change, named as the HTTP headers are.
type trace struct {
	TraceParent string `json:"traceparent"`
	TraceState  string `json:"tracestate,omitempty"`
}

type event struct {
	ID         string    `json:"id"`
	PostID     string    `json:"post_id"`
	Version    int64     `json:"version"`
	Type       string    `json:"type"`
	OccurredAt time.Time `json:"occurred_at"`
	Title      *string   `json:"title,omitempty"`
	Content    *string   `json:"content,omitempty"`
	AuthorName *string   `json:"author_name,omitempty"`
}

type state struct {
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

// Encode returns the message for c.
func Encode(c ports.Change) ([]byte, error) {
	e, s := c.Event, c.State
	m := message{
		Schema: Schema,
		Event: event{
			ID: e.ID, PostID: e.PostID, Version: e.Version, Type: string(e.Type),
			OccurredAt: e.OccurredAt, Title: e.Title, Content: e.Content, AuthorName: e.AuthorName,
		},
		State: state{
			ID: s.ID, Version: s.Version, Title: s.Title, Content: s.Content, AuthorName: s.AuthorName,
			CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt, Deleted: s.Deleted, Erased: s.Erased,
		},
	}
	if md := c.Metadata; md.TraceParent != "" {
		m.Trace = &trace{TraceParent: md.TraceParent, TraceState: md.TraceState}
	}
	m.RequestID, m.Actor = c.Metadata.RequestID, c.Metadata.Actor
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("wire: encode %s v%d: %w", e.PostID, e.Version, err)
	}
	return b, nil
}

// Decode parses a message. Any failure wraps ErrUndecodable.
func Decode(b []byte) (ports.Change, error) {
	var m message
	if err := json.Unmarshal(b, &m); err != nil {
		return ports.Change{}, fmt.Errorf("%w: %w", ErrUndecodable, err)
	}
	if m.Schema != Schema {
		return ports.Change{}, fmt.Errorf("%w: schema %d, want %d", ErrUndecodable, m.Schema, Schema)
	}
	e, s := m.Event, m.State
	if e.ID == "" || e.PostID == "" || !post.EventType(e.Type).Valid() {
		return ports.Change{}, fmt.Errorf("%w: missing event id, post id or known type", ErrUndecodable)
	}
	var md ports.Metadata
	if m.Trace != nil {
		md = ports.Metadata{TraceParent: m.Trace.TraceParent, TraceState: m.Trace.TraceState}
	}
	md.RequestID, md.Actor = m.RequestID, m.Actor
	return ports.Change{
		Metadata: md,
		Event: post.Event{
			ID: e.ID, PostID: e.PostID, Version: e.Version, Type: post.EventType(e.Type),
			OccurredAt: e.OccurredAt, Title: e.Title, Content: e.Content, AuthorName: e.AuthorName,
		},
		State: post.State{
			ID: s.ID, Version: s.Version, Title: s.Title, Content: s.Content, AuthorName: s.AuthorName,
			CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt, Deleted: s.Deleted, Erased: s.Erased,
		},
	}, nil
}
