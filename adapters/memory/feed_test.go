package memory_test

import (
	"errors"
	"testing"

	"hexapost/adapters/memory"
	"hexapost/core/post"
	"hexapost/ports"
)

// An erasure redacts the erased post's changes that the feed keeps, in place: a reader from
// the start sees every position, the erased post's changes without its data, the others whole.
func TestFeedEraserRedactsTheKeptChanges(t *testing.T) {
	ctx := t.Context()
	f := memory.NewFeed(10)
	bus := memory.NewBus(memory.BusConfig{})
	change := func(id string, v int64, typ post.EventType) ports.Change {
		title := "secret of " + id
		e := post.Event{ID: id + string(rune('0'+v)), PostID: id, Version: v, Type: typ, Title: &title}
		s := post.State{ID: id, Version: v, Title: title, AuthorName: "author of " + id}
		if typ == post.EventErased {
			e.Title, s = nil, s.Redacted()
		}
		return ports.Change{Event: e, State: s}
	}
	changes := []ports.Change{change("a", 1, post.EventCreated), change("b", 1, post.EventCreated),
		change("a", 2, post.EventUpdated), change("a", 3, post.EventErased)}
	if err := f.Publisher(bus).Publish(ctx, changes); err != nil {
		t.Fatal(err)
	}

	if _, err := f.Eraser(bus).EraseFromBus(ctx, []string{"a"}); err != nil {
		t.Fatal(err)
	}

	var got []ports.FeedEntry
	stop := errors.New("read all")
	err := f.Tail(ctx, ports.Position{}, func(batch []ports.FeedEntry) error {
		got = append(got, batch...)
		if len(got) >= len(changes) {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || len(got) != len(changes) {
		t.Fatalf("Tail from the start gave %d entries, %v; want %d", len(got), err, len(changes))
	}
	for i, e := range got {
		c := e.Change
		if e.Position.Major != uint64(i+1) {
			t.Errorf("entry %d at position %s, want %d", i, e.Position, i+1)
		}
		erased := c.Event.PostID == "a"
		if hasData := c.Event.Title != nil || c.State.Title != "" || c.State.AuthorName != ""; hasData == erased {
			t.Errorf("entry %d (%s v%d, %s): title %v, state %+v; personal data kept = %v, want %v",
				i, c.Event.PostID, c.Event.Version, c.Event.Type, c.Event.Title, c.State, hasData, !erased)
		}
	}
}
