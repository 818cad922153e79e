package projection_test

import (
	"testing"

	"hexapost/core/post"
	"hexapost/core/projection"
	"hexapost/ports"
)

// erasure is the erasure of post id at version: its event carries no fields, its state none.
func erasure(id string, version int64) ports.Change {
	c := change(id, version, post.EventErased)
	c.Event = c.Event.Redacted()
	c.State = c.State.Redacted()
	c.State.Deleted = true
	return c
}

func TestProjectorErasesTheHistoryAndKeepsItErased(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		giveChanges []ports.Change
	}{
		{"an erasure redacts the versions before it",
			[]ports.Change{change("p1", 1, post.EventCreated), change("p1", 2, post.EventUpdated), erasure("p1", 3)}},
		{"a version arriving after the erasure is stored redacted",
			[]ports.Change{change("p1", 1, post.EventCreated), erasure("p1", 3), change("p1", 2, post.EventUpdated)}},
		{"a duplicate of an old version after the erasure is stored redacted",
			[]ports.Change{erasure("p1", 3), change("p1", 1, post.EventCreated), change("p1", 2, post.EventUpdated)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := newViews()
			p := newProjector(v)
			for _, c := range tt.giveChanges {
				if err := p.Apply(t.Context(), c); err != nil {
					t.Fatalf("apply v%d: %v", c.Event.Version, err)
				}
			}
			got, err := v.Get(t.Context(), "p1")
			if err != nil || !got.Erased || got.Version != 3 || got.Title != "" || got.AuthorName != "" {
				t.Errorf("current = %+v, %v; want the erased tombstone at v3", got, err)
			}
			history, err := v.History(t.Context(), "p1", ports.HistoryQuery{Limit: wholeHistory})
			if err != nil || len(history) != 3 {
				t.Fatalf("history = %d entries, %v; want 3", len(history), err)
			}
			for _, h := range history {
				s := h.State
				if !s.Erased || s.Title != "" || s.Content != "" || s.AuthorName != "" {
					t.Errorf("history v%d = %+v, want it redacted", s.Version, s)
				}
			}
		})
	}
}

// A replay of the store after an erasure — a rebuild, or a repair, which folds a post's stream
// the same way — reproduces the post erased, also over a read model that holds its versions
// from before the erasure.
func TestReplayKeepsAnErasedPostErased(t *testing.T) {
	t.Parallel()
	v := newViews()
	p := newProjector(v)
	before := []ports.Change{change("p1", 1, post.EventCreated), change("p1", 2, post.EventUpdated)}
	for _, c := range before {
		if err := p.Apply(t.Context(), c); err != nil {
			t.Fatal(err)
		}
	}
	// The store holds the redacted events and the erasure.
	events := allEvents{
		{Position: 1, Event: before[0].Event.Redacted()},
		{Position: 2, Event: before[1].Event.Redacted()},
		{Position: 3, Event: erasure("p1", 3).Event},
	}
	if _, err := projection.Replay(t.Context(), events, p); err != nil {
		t.Fatal(err)
	}
	got, err := v.Get(t.Context(), "p1")
	if err != nil || !got.Erased || got.Version != 3 || got.Title != "" {
		t.Errorf("view after the replay = %+v, %v; want erased at v3", got, err)
	}
	history, err := v.History(t.Context(), "p1", ports.HistoryQuery{Limit: wholeHistory})
	if err != nil || len(history) != 3 {
		t.Fatalf("history = %d entries, %v; want 3", len(history), err)
	}
	for _, h := range history {
		if s := h.State; !s.Erased || s.Title != "" || s.Content != "" || s.AuthorName != "" {
			t.Errorf("history v%d after the replay = %+v, want it redacted", s.Version, s)
		}
	}
}
