package post

import "time"

// EventType names what happened to a post. The values are part of the stored and published
// format, so they never change once released.
type EventType string

// The event types a post can record.
const (
	EventCreated EventType = "post.created"
	EventUpdated EventType = "post.updated"
	EventDeleted EventType = "post.deleted"
	// EventErased records that the post's personal data was erased for good. It carries no
	// fields; the stores remove the fields of every earlier event of the post when they append it.
	EventErased EventType = "post.erased"
)

// Valid reports whether t is one of the known event types.
func (t EventType) Valid() bool {
	switch t {
	case EventCreated, EventUpdated, EventDeleted, EventErased:
		return true
	}
	return false
}

// Event is one recorded fact about one post. Version counts the post's events from 1, so the
// event with version N is the N-th change of its post.
//
// Created events carry every field; Updated events carry only the fields that changed (nil
// means unchanged); Deleted and Erased events carry none, nor does any event of an erased post.
type Event struct {
	ID         string
	PostID     string
	Version    int64
	Type       EventType
	OccurredAt time.Time

	Title      *string
	Content    *string
	AuthorName *string
}

// Stamp is what the caller supplies for a decision: the id of the event it may produce and the
// time it happens. Keeping both outside the aggregate keeps it deterministic.
type Stamp struct {
	EventID string
	At      time.Time
}

// Redacted returns e without its personal data (title, content, author name): what the stores
// keep of an event once its post is erased.
func (e Event) Redacted() Event {
	e.Title, e.Content, e.AuthorName = nil, nil, nil
	return e
}
