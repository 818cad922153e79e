package post_test

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"hexapost/core/post"
)

// The post every scenario is about, and the moments its events happen.
const postID = "0190a0b1-7c3d-7e4f-8a9b-0c1d2e3f4a5b"

var (
	t1 = time.Date(2025, 3, 1, 10, 0, 0, 123456000, time.UTC)
	t2 = t1.Add(time.Minute)
	t3 = t2.Add(time.Minute)
	t4 = t3.Add(time.Minute)
)

// stamp is the stamp of every decision under test: the next event is "e-next" at t4.
var stamp = post.Stamp{EventID: "e-next", At: t4}

func ptr[T any](v T) *T { return &v }

// Events of the post, for building histories.

// created is the creation of the post as "Hello" by Ann, with content "Body".
func created() post.Event {
	return post.Event{
		ID: "e1", PostID: postID, Version: 1, Type: post.EventCreated, OccurredAt: t1,
		Title: ptr("Hello"), Content: ptr("Body"), AuthorName: ptr("Ann"),
	}
}

func updated(version int64, at time.Time, title, content, author *string) post.Event {
	return post.Event{
		ID: "e-updated", PostID: postID, Version: version, Type: post.EventUpdated, OccurredAt: at,
		Title: title, Content: content, AuthorName: author,
	}
}

func deleted(version int64, at time.Time) post.Event {
	return post.Event{ID: "e-deleted", PostID: postID, Version: version, Type: post.EventDeleted, OccurredAt: at}
}

// A live post at version 1 and the same post deleted at version 2.
var (
	live       = []post.Event{created()}
	tombstoned = []post.Event{created(), deleted(2, t2)}
)

// The events the decisions under test are expected to produce (with stamp).

func wantCreated(title, content, author string) []post.Event {
	return []post.Event{{
		ID: stamp.EventID, PostID: postID, Version: 1, Type: post.EventCreated, OccurredAt: stamp.At,
		Title: &title, Content: &content, AuthorName: &author,
	}}
}

func wantUpdated(version int64, title, content, author *string) []post.Event {
	return []post.Event{{
		ID: stamp.EventID, PostID: postID, Version: version, Type: post.EventUpdated, OccurredAt: stamp.At,
		Title: title, Content: content, AuthorName: author,
	}}
}

func wantDeleted(version int64) []post.Event {
	return []post.Event{{
		ID: stamp.EventID, PostID: postID, Version: version, Type: post.EventDeleted, OccurredAt: stamp.At,
	}}
}

// command is the When of a scenario: one decision on the post rebuilt from the history.
type command func(*post.Post) ([]post.Event, error)

func create(c post.Create) command {
	return func(p *post.Post) ([]post.Event, error) {
		e, err := p.Create(c, stamp)
		if err != nil {
			return nil, err
		}
		return []post.Event{e}, nil
	}
}

func update(c post.Update) command {
	return func(p *post.Post) ([]post.Event, error) { return p.Update(c, stamp) }
}

func remove() command {
	return func(p *post.Post) ([]post.Event, error) {
		e, err := p.Delete(post.Delete{}, stamp)
		if err != nil {
			return nil, err
		}
		return []post.Event{e}, nil
	}
}

// given rebuilds the post from a history that must be valid.
func given(t *testing.T, history []post.Event) *post.Post {
	t.Helper()
	p, err := post.FromHistory(postID, history)
	if err != nil {
		t.Fatalf("given history: %v", err)
	}
	return p
}

// Strings of n multi-byte characters: "é" is two bytes, so they show that limits count
// characters, not bytes.
func chars(n int) string { return strings.Repeat("é", n) }

func TestDecisions(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name        string
		giveHistory []post.Event
		when        command
		wantEvents  []post.Event
		wantErr     error
	}{
		// Create.
		{
			name:        "create on an empty stream records every field, title and author trimmed",
			giveHistory: nil,
			when:        create(post.Create{Title: "  Hello  ", Content: "  Body\n", AuthorName: "\tAnn "}),
			wantEvents:  wantCreated("Hello", "  Body\n", "Ann"),
		},
		{
			name:        "create accepts every field exactly at its limit, counted in characters",
			giveHistory: nil,
			when: create(post.Create{
				Title: chars(post.MaxTitle), Content: chars(post.MaxContent), AuthorName: chars(post.MaxAuthorName),
			}),
			wantEvents: wantCreated(chars(post.MaxTitle), chars(post.MaxContent), chars(post.MaxAuthorName)),
		},
		{
			name:        "surrounding white space does not count towards a limit",
			giveHistory: nil,
			when: create(post.Create{
				Title: "  " + chars(post.MaxTitle) + "  ", Content: "x", AuthorName: " " + chars(post.MaxAuthorName) + " ",
			}),
			wantEvents: wantCreated(chars(post.MaxTitle), "x", chars(post.MaxAuthorName)),
		},
		{
			name:        "create on an existing post is refused",
			giveHistory: live,
			when:        create(post.Create{Title: "Hello", Content: "Body", AuthorName: "Ann"}),
			wantErr:     post.ErrExists,
		},
		{
			name:        "create on a deleted post is refused as existing",
			giveHistory: tombstoned,
			when:        create(post.Create{Title: "Hello", Content: "Body", AuthorName: "Ann"}),
			wantErr:     post.ErrExists,
		},
		{
			name:        "existence is decided before validation",
			giveHistory: live,
			when:        create(post.Create{}),
			wantErr:     post.ErrExists,
		},

		// Update.
		{
			name:        "update records only the fields that change",
			giveHistory: live,
			when:        update(post.Update{Title: ptr("New"), Content: ptr("Body"), AuthorName: ptr("Ann")}),
			wantEvents:  wantUpdated(2, ptr("New"), nil, nil),
		},
		{
			name:        "update of every field records every field",
			giveHistory: live,
			when:        update(post.Update{Title: ptr("T"), Content: ptr("C"), AuthorName: ptr("A")}),
			wantEvents:  wantUpdated(2, ptr("T"), ptr("C"), ptr("A")),
		},
		{
			name:        "update trims title and author name",
			giveHistory: live,
			when:        update(post.Update{Title: ptr("  New  "), AuthorName: ptr(" Bob ")}),
			wantEvents:  wantUpdated(2, ptr("New"), nil, ptr("Bob")),
		},
		{
			name:        "update follows the last version of the history",
			giveHistory: []post.Event{created(), updated(2, t2, ptr("B"), nil, nil), updated(3, t3, nil, ptr("C"), nil)},
			when:        update(post.Update{Content: ptr("D")}),
			wantEvents:  wantUpdated(4, nil, ptr("D"), nil),
		},
		{
			name:        "update to the current values records nothing",
			giveHistory: live,
			when:        update(post.Update{Title: ptr("Hello"), Content: ptr("Body"), AuthorName: ptr("Ann")}),
			wantEvents:  nil,
		},
		{
			name:        "update whose trimmed title is the current one records nothing",
			giveHistory: live,
			when:        update(post.Update{Title: ptr("  Hello ")}),
			wantEvents:  nil,
		},
		{
			name:        "update of a post that does not exist",
			giveHistory: nil,
			when:        update(post.Update{Title: ptr("New")}),
			wantErr:     post.ErrNotFound,
		},
		{
			name:        "update of a deleted post",
			giveHistory: tombstoned,
			when:        update(post.Update{Title: ptr("New")}),
			wantErr:     post.ErrDeleted,
		},
		{
			name:        "a deleted post is gone before the update is validated",
			giveHistory: tombstoned,
			when:        update(post.Update{}),
			wantErr:     post.ErrDeleted,
		},

		// Delete.
		{
			name:        "delete of a live post records a Deleted event without fields",
			giveHistory: live,
			when:        remove(),
			wantEvents:  wantDeleted(2),
		},
		{
			name:        "delete of a post that does not exist",
			giveHistory: nil,
			when:        remove(),
			wantErr:     post.ErrNotFound,
		},
		{
			name:        "delete of a deleted post",
			giveHistory: tombstoned,
			when:        remove(),
			wantErr:     post.ErrDeleted,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := given(t, tt.giveHistory)

			gotEvents, err := tt.when(p)

			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if !reflect.DeepEqual(gotEvents, tt.wantEvents) {
				t.Errorf("events =\n%s\nwant\n%s", show(gotEvents), show(tt.wantEvents))
			}
		})
	}
}

func TestValidation(t *testing.T) {
	t.Parallel()

	const (
		blankReason  = "must not be empty or blank"
		utf8Reason   = "must be valid UTF-8"
		titleLong    = "must be at most 200 characters, got 201"
		contentLong  = "must be at most 100000 characters, got 100001"
		authorLong   = "must be at most 100 characters, got 101"
		bodyRequired = "at least one of title, content, author_name is required"
	)
	ok := post.Create{Title: "Hello", Content: "Body", AuthorName: "Ann"}
	with := func(change func(*post.Create)) post.Create {
		c := ok
		change(&c)
		return c
	}

	tests := []struct {
		name        string
		giveHistory []post.Event
		when        command
		wantErrs    post.ValidationErrors
	}{
		{
			name: "empty title", when: create(with(func(c *post.Create) { c.Title = "" })),
			wantErrs: post.ValidationErrors{{Field: "title", Reason: blankReason}},
		},
		{
			name: "blank title", when: create(with(func(c *post.Create) { c.Title = " \t\n " })),
			wantErrs: post.ValidationErrors{{Field: "title", Reason: blankReason}},
		},
		{
			name: "title one character too long", when: create(with(func(c *post.Create) { c.Title = chars(post.MaxTitle + 1) })),
			wantErrs: post.ValidationErrors{{Field: "title", Reason: titleLong}},
		},
		{
			name: "title that is not UTF-8", when: create(with(func(c *post.Create) { c.Title = "Hel\xfflo" })),
			wantErrs: post.ValidationErrors{{Field: "title", Reason: utf8Reason}},
		},
		{
			name: "empty content", when: create(with(func(c *post.Create) { c.Content = "" })),
			wantErrs: post.ValidationErrors{{Field: "content", Reason: blankReason}},
		},
		{
			name: "blank content", when: create(with(func(c *post.Create) { c.Content = "\n\n  " })),
			wantErrs: post.ValidationErrors{{Field: "content", Reason: blankReason}},
		},
		{
			name: "content one character too long", when: create(with(func(c *post.Create) { c.Content = chars(post.MaxContent + 1) })),
			wantErrs: post.ValidationErrors{{Field: "content", Reason: contentLong}},
		},
		{
			name: "content that is not UTF-8", when: create(with(func(c *post.Create) { c.Content = "\xc3\x28" })),
			wantErrs: post.ValidationErrors{{Field: "content", Reason: utf8Reason}},
		},
		{
			name: "empty author name", when: create(with(func(c *post.Create) { c.AuthorName = "" })),
			wantErrs: post.ValidationErrors{{Field: "author_name", Reason: blankReason}},
		},
		{
			name: "blank author name", when: create(with(func(c *post.Create) { c.AuthorName = "   " })),
			wantErrs: post.ValidationErrors{{Field: "author_name", Reason: blankReason}},
		},
		{
			name: "author name one character too long", when: create(with(func(c *post.Create) { c.AuthorName = chars(post.MaxAuthorName + 1) })),
			wantErrs: post.ValidationErrors{{Field: "author_name", Reason: authorLong}},
		},
		{
			name: "every broken rule of a create is reported at once, in field order",
			when: create(post.Create{Title: chars(post.MaxTitle + 1), Content: " ", AuthorName: ""}),
			wantErrs: post.ValidationErrors{
				{Field: "title", Reason: titleLong},
				{Field: "content", Reason: blankReason},
				{Field: "author_name", Reason: blankReason},
			},
		},
		{
			name: "update without any field", giveHistory: live, when: update(post.Update{}),
			wantErrs: post.ValidationErrors{{Field: "body", Reason: bodyRequired}},
		},
		{
			name: "update to a blank title", giveHistory: live, when: update(post.Update{Title: ptr("  ")}),
			wantErrs: post.ValidationErrors{{Field: "title", Reason: blankReason}},
		},
		{
			name: "update to an empty content", giveHistory: live, when: update(post.Update{Content: ptr("")}),
			wantErrs: post.ValidationErrors{{Field: "content", Reason: blankReason}},
		},
		{
			name: "update to an author name one character too long", giveHistory: live,
			when:     update(post.Update{AuthorName: ptr(chars(post.MaxAuthorName + 1))}),
			wantErrs: post.ValidationErrors{{Field: "author_name", Reason: authorLong}},
		},
		{
			name: "every broken rule of an update is reported at once", giveHistory: live,
			when: update(post.Update{Title: ptr(""), Content: ptr(chars(post.MaxContent + 1)), AuthorName: ptr("\t")}),
			wantErrs: post.ValidationErrors{
				{Field: "title", Reason: blankReason},
				{Field: "content", Reason: contentLong},
				{Field: "author_name", Reason: blankReason},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := given(t, tt.giveHistory)

			gotEvents, err := tt.when(p)

			var gotErrs post.ValidationErrors
			if !errors.As(err, &gotErrs) {
				t.Fatalf("error = %v (%T), want post.ValidationErrors", err, err)
			}
			if !reflect.DeepEqual(gotErrs, tt.wantErrs) {
				t.Errorf("validation errors = %q, want %q", gotErrs.Error(), tt.wantErrs.Error())
			}
			if gotEvents != nil {
				t.Errorf("events = %s, want none", show(gotEvents))
			}
		})
	}
}

func TestValidationErrorsMessageNamesEveryField(t *testing.T) {
	t.Parallel()

	_, err := post.Create{}.Normalize()

	want := "3 invalid fields: title: must not be empty or blank; content: must not be empty or blank; " +
		"author_name: must not be empty or blank"
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}
}

func TestFromHistoryRejectsCorruptHistories(t *testing.T) {
	t.Parallel()

	withType := func(e post.Event, typ post.EventType) post.Event { e.Type = typ; return e }
	withPost := func(e post.Event, id string) post.Event { e.PostID = id; return e }
	first := created()

	tests := []struct {
		name        string
		giveHistory []post.Event
	}{
		{name: "event of another post", giveHistory: []post.Event{withPost(first, "other")}},
		{name: "event without post id", giveHistory: []post.Event{withPost(first, "")}},
		{name: "gap in versions", giveHistory: []post.Event{first, updated(3, t2, ptr("B"), nil, nil)}},
		{name: "repeated version", giveHistory: []post.Event{first, updated(1, t2, ptr("B"), nil, nil)}},
		{name: "first event is not version 1", giveHistory: []post.Event{updated(2, t2, ptr("B"), nil, nil)}},
		{name: "first event is not a creation", giveHistory: []post.Event{withType(first, post.EventUpdated)}},
		{name: "created twice", giveHistory: []post.Event{first, withType(updated(2, t2, ptr("B"), ptr("C"), ptr("D")), post.EventCreated)}},
		{name: "unknown event type", giveHistory: []post.Event{first, withType(updated(2, t2, ptr("B"), nil, nil), "post.renamed")}},
		{name: "empty event type", giveHistory: []post.Event{first, withType(deleted(2, t2), "")}},
		{name: "corrupt event after valid ones", giveHistory: []post.Event{first, deleted(2, t2), deleted(4, t3)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			p, err := post.FromHistory(postID, tt.giveHistory)

			if !errors.Is(err, post.ErrCorruptHistory) {
				t.Errorf("error = %v, want %v", err, post.ErrCorruptHistory)
			}
			if p != nil {
				t.Errorf("post = %+v, want nil", p.State())
			}
		})
	}
}

func TestStateAfterHistory(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name        string
		giveHistory []post.Event
		wantState   post.State
		wantExists  bool
	}{
		{
			name:        "empty history is a post that does not exist yet",
			giveHistory: nil,
			wantState:   post.State{ID: postID},
		},
		{
			name:        "created",
			giveHistory: live,
			wantState: post.State{
				ID: postID, Version: 1, Title: "Hello", Content: "Body", AuthorName: "Ann",
				CreatedAt: t1, UpdatedAt: t1,
			},
			wantExists: true,
		},
		{
			name: "updates change only their fields and the update time",
			giveHistory: []post.Event{
				created(),
				updated(2, t2, ptr("Title 2"), nil, nil),
				updated(3, t3, nil, ptr("Content 3"), ptr("Bob")),
			},
			wantState: post.State{
				ID: postID, Version: 3, Title: "Title 2", Content: "Content 3", AuthorName: "Bob",
				CreatedAt: t1, UpdatedAt: t3,
			},
			wantExists: true,
		},
		{
			name: "deleted keeps its fields",
			giveHistory: []post.Event{
				created(),
				updated(2, t2, ptr("Title 2"), nil, nil),
				deleted(3, t3),
			},
			wantState: post.State{
				ID: postID, Version: 3, Title: "Title 2", Content: "Body", AuthorName: "Ann",
				CreatedAt: t1, UpdatedAt: t3, Deleted: true,
			},
			wantExists: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			p := given(t, tt.giveHistory)

			if got := p.State(); !reflect.DeepEqual(got, tt.wantState) {
				t.Errorf("state = %+v, want %+v", got, tt.wantState)
			}
			if p.ID() != tt.wantState.ID || p.Version() != tt.wantState.Version || p.Exists() != tt.wantExists {
				t.Errorf("id, version, exists = %q, %d, %t; want %q, %d, %t",
					p.ID(), p.Version(), p.Exists(), tt.wantState.ID, tt.wantState.Version, tt.wantExists)
			}
		})
	}
}

func TestFromStateThenApplyEqualsFromHistory(t *testing.T) {
	t.Parallel()

	history := []post.Event{
		created(),
		updated(2, t2, ptr("Title 2"), nil, nil),
		updated(3, t3, nil, ptr("Content 3"), ptr("Bob")),
		deleted(4, t4),
	}
	want := given(t, history).State()

	tests := []struct {
		name         string
		giveSnapshot int // events folded into the snapshot; the rest are applied after it
	}{
		{name: "snapshot of nothing", giveSnapshot: 0},
		{name: "snapshot after creation", giveSnapshot: 1},
		{name: "snapshot in the middle", giveSnapshot: 2},
		{name: "snapshot before deletion", giveSnapshot: 3},
		{name: "snapshot of everything", giveSnapshot: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			snapshot := given(t, history[:tt.giveSnapshot]).State()

			p := post.FromState(snapshot)
			err := p.Apply(history[tt.giveSnapshot:]...)

			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if got := p.State(); !reflect.DeepEqual(got, want) {
				t.Errorf("state = %+v, want %+v", got, want)
			}
		})
	}
}

func TestFromStateDecidesLikeFromHistory(t *testing.T) {
	t.Parallel()
	history := []post.Event{created(), updated(2, t2, ptr("Title 2"), nil, nil)}
	c := post.Update{Title: ptr("Title 3"), Content: ptr("Body")}

	fromHistory, err1 := update(c)(given(t, history))
	fromState, err2 := update(c)(post.FromState(given(t, history).State()))

	if err1 != nil || err2 != nil {
		t.Fatalf("errors = %v, %v", err1, err2)
	}
	if !reflect.DeepEqual(fromState, fromHistory) {
		t.Errorf("from state = %s, from history = %s", show(fromState), show(fromHistory))
	}
}

func TestApplyRejectsEventsThatDoNotFollow(t *testing.T) {
	t.Parallel()
	snapshot := given(t, live).State()

	tests := []struct {
		name      string
		giveEvent post.Event
	}{
		{name: "version already applied", giveEvent: updated(1, t2, ptr("B"), nil, nil)},
		{name: "version skipped", giveEvent: updated(3, t2, ptr("B"), nil, nil)},
		{name: "another post", giveEvent: post.Event{ID: "x", PostID: "other", Version: 2, Type: post.EventDeleted}},
		{name: "second creation", giveEvent: post.Event{ID: "x", PostID: postID, Version: 2, Type: post.EventCreated}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := post.FromState(snapshot)

			err := p.Apply(tt.giveEvent)

			if !errors.Is(err, post.ErrCorruptHistory) {
				t.Errorf("error = %v, want %v", err, post.ErrCorruptHistory)
			}
			if got := p.State(); !reflect.DeepEqual(got, snapshot) {
				t.Errorf("state changed to %+v, want %+v", got, snapshot)
			}
		})
	}
}

// show prints events with their optional fields dereferenced, for readable failures.
func show(events []post.Event) string {
	var b strings.Builder
	deref := func(s *string) string {
		if s == nil {
			return "<nil>"
		}
		if len(*s) > 40 {
			return (*s)[:40] + "…"
		}
		return *s
	}
	for _, e := range events {
		b.WriteString(e.ID + " " + e.PostID + " " + string(e.Type) + " v" + itoa(e.Version) + " " +
			e.OccurredAt.Format(time.RFC3339Nano) + " title=" + deref(e.Title) + " content=" +
			deref(e.Content) + " author=" + deref(e.AuthorName) + "\n")
	}
	if b.Len() == 0 {
		return "(no events)"
	}
	return b.String()
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
