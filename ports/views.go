package ports

import (
	"context"
	"time"

	"hexapost/core/post"
)

// HistoryEntry is one version of a post as the read side shows it.
type HistoryEntry struct {
	EventID    string
	Type       post.EventType
	OccurredAt time.Time
	State      post.State
}

// ViewWriter is the projector's access to the read model.
type ViewWriter interface {
	// PutCurrent stores s as the post's current view if its version is higher than the stored
	// one, atomically; otherwise it changes nothing. It reports whether it stored s. Both outcomes
	// are success: the read side converges under duplicates and reordering. When it does not
	// store s because the stored view is an erased post's, it redacts the post's history as
	// EraseHistory does: the caller may have stored an older version's entry just before.
	PutCurrent(ctx context.Context, s post.State) (bool, error)
	// PutHistory stores the entry under (post id, version); storing the same key again changes
	// nothing.
	PutHistory(ctx context.Context, h HistoryEntry) error
	// EraseHistory replaces the state of every stored history entry of the post with its
	// post.State.Redacted, and any view of the post the read model keeps besides the live one
	// (a rebuild's) with its redacted view. The projector calls it when it applies the post's
	// erasure, before it stores the erased view and again after. Calling it again changes
	// nothing more.
	EraseHistory(ctx context.Context, postID string) error
}

// Cursor is a position in the list order: newest first by creation time, then by id.
type Cursor struct {
	CreatedAt time.Time
	ID        string
}

// ListQuery selects a page of posts.
type ListQuery struct {
	// AuthorName, when not empty, keeps only that author's posts.
	AuthorName string
	Limit      int
	// After, when not nil, starts the page after this position.
	After *Cursor
}

// HistoryQuery selects a page of a post's history.
type HistoryQuery struct {
	// After starts the page after this version; 0 starts at the first.
	After int64
	Limit int
}

// ViewReader answers queries from the read model.
type ViewReader interface {
	// Get returns the current view of a post, deleted or not; ErrNotFound if there is none.
	Get(ctx context.Context, id string) (post.State, error)
	// List returns up to q.Limit posts that are not deleted, newest first (created_at, then id,
	// both descending), strictly after q.After. Pages are stable under concurrent inserts.
	List(ctx context.Context, q ListQuery) ([]post.State, error)
	// History returns up to q.Limit stored versions of a post above q.After, oldest first, as
	// they are stored: a version not stored yet is skipped, not waited for. A page past the last
	// version is empty; ErrNotFound when the post has no history at all.
	History(ctx context.Context, id string, q HistoryQuery) ([]HistoryEntry, error)
}

// ViewChanges tells a reader waiting for a post's view to change when to read it again.
type ViewChanges interface {
	// Watch returns a channel that is closed once the post's view may have changed since the
	// call — a view written after it, or just time to look again — and stop, to be called once
	// the channel is no longer waited on. A reader calls Watch before it reads the view, so a
	// change made between its read and its wait still closes the channel. It is safe for
	// concurrent use.
	Watch(postID string) (changed <-chan struct{}, stop func())
}

// Pinger is a backend that can prove it is reachable with a real round trip.
type Pinger interface {
	Ping(ctx context.Context) error
}

// ViewRebuilder builds a read model beside the live one and switches to it, so a rebuild never
// shows readers an empty or half-built read model.
type ViewRebuilder interface {
	// Fresh returns an empty read model beside the live one, replacing any unfinished one.
	Fresh(ctx context.Context) (ViewWriter, error)
	// Swap makes the read model Fresh returned the live one, for every process.
	Swap(ctx context.Context) error
}
