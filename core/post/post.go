package post

import (
	"fmt"
	"time"
)

// Post is the aggregate. Its fields are unexported: it changes only by applying its own events,
// so the state a decision sees is always a fold of the stream.
type Post struct {
	id         string
	version    int64
	title      string
	content    string
	authorName string
	createdAt  time.Time
	updatedAt  time.Time
	deleted    bool
	erased     bool
}

// State is a read-only snapshot of a post: what the read side stores and clients see.
type State struct {
	ID         string
	Version    int64
	Title      string
	Content    string
	AuthorName string
	CreatedAt  time.Time
	UpdatedAt  time.Time
	Deleted    bool
	// Erased tells that the post's personal data was erased: Title, Content and AuthorName are
	// empty, and Deleted is true.
	Erased bool
}

// Redacted returns s without its personal data, marked erased and deleted: what the stores and
// the read side keep of a version of an erased post. Deleted keeps such a version out of the
// lists wherever it is shown before the erasure itself.
func (s State) Redacted() State {
	s.Title, s.Content, s.AuthorName, s.Deleted, s.Erased = "", "", "", true, true
	return s
}

// FromHistory rebuilds the post with the given id from its events, which must be its complete
// stream in version order (1, 2, 3, …). An empty history gives a post that does not exist yet:
// version 0, on which only Create can be decided.
func FromHistory(id string, events []Event) (*Post, error) {
	p := &Post{id: id}
	for i, e := range events {
		if err := p.check(e); err != nil {
			return nil, fmt.Errorf("%w: event %d of %s: %w", ErrCorruptHistory, i, id, err)
		}
		p.apply(e)
	}
	return p, nil
}

// FromState is how a snapshot rehydrates a post: s is a State the post had (taken with State and
// kept, by a cache of recent states for instance), and the events that followed it are then
// applied with Apply, which checks that they follow. So a long stream need not be replayed from
// its start. s itself is not checked: a snapshot must be one the post really had.
func FromState(s State) *Post {
	return &Post{
		id: s.ID, version: s.Version, title: s.Title, content: s.Content,
		authorName: s.AuthorName, createdAt: s.CreatedAt, updatedAt: s.UpdatedAt, deleted: s.Deleted,
		erased: s.Erased,
	}
}

// Apply folds events that follow the post's current version into it, checking that they do.
func (p *Post) Apply(events ...Event) error {
	for _, e := range events {
		if err := p.check(e); err != nil {
			return fmt.Errorf("%w: %w", ErrCorruptHistory, err)
		}
		p.apply(e)
	}
	return nil
}

// check reports why e cannot be the next event of p.
func (p *Post) check(e Event) error {
	switch {
	case e.PostID != p.id:
		return fmt.Errorf("belongs to post %q", e.PostID)
	case e.Version != p.version+1:
		return fmt.Errorf("version %d follows version %d", e.Version, p.version)
	case !e.Type.Valid():
		return fmt.Errorf("unknown type %q", e.Type)
	case (e.Type == EventCreated) != (p.version == 0):
		return fmt.Errorf("%s at version %d", e.Type, e.Version)
	case p.erased:
		return fmt.Errorf("%s after the erasure", e.Type)
	}
	return nil
}

// apply folds one event into the state. It never fails: events are facts, already decided.
func (p *Post) apply(e Event) {
	p.version = e.Version
	p.updatedAt = e.OccurredAt
	switch e.Type {
	case EventCreated:
		p.createdAt = e.OccurredAt
	case EventDeleted:
		p.deleted = true
	case EventErased:
		p.deleted, p.erased = true, true
		p.title, p.content, p.authorName = "", "", ""
		return
	}
	if e.Title != nil {
		p.title = *e.Title
	}
	if e.Content != nil {
		p.content = *e.Content
	}
	if e.AuthorName != nil {
		p.authorName = *e.AuthorName
	}
}

// ID returns the post's id.
func (p *Post) ID() string { return p.id }

// Version returns the version of the last applied event; 0 for a post that does not exist.
func (p *Post) Version() int64 { return p.version }

// Exists reports whether the post has been created.
func (p *Post) Exists() bool { return p.version > 0 }

// State returns a snapshot of the post.
func (p *Post) State() State {
	return State{
		ID: p.id, Version: p.version, Title: p.title, Content: p.content,
		AuthorName: p.authorName, CreatedAt: p.createdAt, UpdatedAt: p.updatedAt, Deleted: p.deleted,
		Erased: p.erased,
	}
}

// Create decides the creation of the post. It returns the Created event, or ErrExists if the
// post has a history already, or the validation errors of the command.
func (p *Post) Create(c Create, s Stamp) (Event, error) {
	if p.Exists() {
		return Event{}, ErrExists
	}
	c, err := c.Normalize()
	if err != nil {
		return Event{}, err
	}
	return p.event(EventCreated, s, &c.Title, &c.Content, &c.AuthorName), nil
}

// Update decides a change of fields. A command that changes nothing is accepted and returns no
// event, so a retried or redundant PATCH does not grow the history.
func (p *Post) Update(c Update, s Stamp) ([]Event, error) {
	if err := p.mustBeLive(); err != nil {
		return nil, err
	}
	c, err := c.Normalize()
	if err != nil {
		return nil, err
	}
	title, content, author := changed(c.Title, p.title), changed(c.Content, p.content),
		changed(c.AuthorName, p.authorName)
	if title == nil && content == nil && author == nil {
		return nil, nil
	}
	return []Event{p.event(EventUpdated, s, title, content, author)}, nil
}

// Delete decides the deletion of the post. A deleted post stays in the store with its history;
// it only stops accepting changes and leaves the lists.
func (p *Post) Delete(_ Delete, s Stamp) (Event, error) {
	if err := p.mustBeLive(); err != nil {
		return Event{}, err
	}
	return p.event(EventDeleted, s, nil, nil, nil), nil
}

// Erase decides the erasure of the post's personal data, deleted or not. The post keeps its
// versions and their types and times; nothing can change it afterwards. A post erased already
// is ErrErased: the erasure happened once, and the caller may still purge copies of it.
func (p *Post) Erase(_ Erase, s Stamp) (Event, error) {
	switch {
	case !p.Exists():
		return Event{}, ErrNotFound
	case p.erased:
		return Event{}, ErrErased
	}
	return p.event(EventErased, s, nil, nil, nil), nil
}

func (p *Post) mustBeLive() error {
	switch {
	case !p.Exists():
		return ErrNotFound
	case p.erased:
		return ErrErased
	case p.deleted:
		return ErrDeleted
	}
	return nil
}

func (p *Post) event(t EventType, s Stamp, title, content, author *string) Event {
	return Event{
		ID: s.EventID, PostID: p.id, Version: p.version + 1, Type: t, OccurredAt: s.At,
		Title: title, Content: content, AuthorName: author,
	}
}

// changed returns want when it is given and differs from have, else nil.
func changed(want *string, have string) *string {
	if want == nil || *want == have {
		return nil
	}
	return want
}
