package projection_test

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"hexapost/core/post"
	"hexapost/core/projection"
	"hexapost/ports"
)

// allEvents is a StreamReader over a fixed list of events, served in stream order.
type allEvents []ports.Recorded

func (a allEvents) ReadStreams(_ context.Context, after ports.StreamPosition, limit int) ([]post.Event, error) {
	sorted := make([]post.Event, 0, len(a))
	for _, r := range a {
		sorted = append(sorted, r.Event)
	}
	slices.SortFunc(sorted, func(x, y post.Event) int {
		return cmp.Or(cmp.Compare(x.PostID, y.PostID), cmp.Compare(x.Version, y.Version))
	})
	var out []post.Event
	for _, e := range sorted {
		if (e.PostID > after.PostID || (e.PostID == after.PostID && e.Version > after.Version)) && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}

// currentViews keeps the highest version of each post and every history entry.
type currentViews struct {
	mu      sync.Mutex
	current map[string]post.State
	history map[string]int
	puts    map[string]int // view writes asked for, by post
}

func (v *currentViews) PutCurrent(_ context.Context, s post.State) (bool, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.puts != nil {
		v.puts[s.ID]++
	}
	if have, ok := v.current[s.ID]; ok && have.Version >= s.Version {
		return false, nil
	}
	v.current[s.ID] = s
	return true, nil
}

func (v *currentViews) PutHistory(_ context.Context, h ports.HistoryEntry) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.history[h.State.ID]++
	return nil
}

func (v *currentViews) EraseHistory(context.Context, string) error { return nil }

func TestReplayRebuildsEveryPost(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	var events allEvents
	pos := int64(0)
	record := func(e post.Event) {
		pos += 3 // positions may have gaps
		events = append(events, ports.Recorded{Position: pos, Event: e})
	}
	// 700 posts (more than one page), every other one updated, every fifth deleted.
	const n = 700
	want := map[string]post.State{}
	for i := range n {
		id := fmt.Sprintf("post-%03d", i)
		p, err := post.FromHistory(id, nil)
		if err != nil {
			t.Fatal(err)
		}
		e, err := p.Create(post.Create{Title: "t", Content: "c", AuthorName: "a"}, post.Stamp{EventID: id + "-1", At: at})
		if err != nil {
			t.Fatal(err)
		}
		record(e)
		if err := p.Apply(e); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			title := "changed"
			es, err := p.Update(post.Update{Title: &title}, post.Stamp{EventID: id + "-2", At: at})
			if err != nil {
				t.Fatal(err)
			}
			record(es[0])
			if err := p.Apply(es...); err != nil {
				t.Fatal(err)
			}
		}
		if i%5 == 0 {
			e, err := p.Delete(post.Delete{}, post.Stamp{EventID: id + "-3", At: at})
			if err != nil {
				t.Fatal(err)
			}
			record(e)
			if err := p.Apply(e); err != nil {
				t.Fatal(err)
			}
		}
		want[id] = p.State()
	}

	views := &currentViews{current: map[string]post.State{}, history: map[string]int{}}
	proj := projection.NewProjector(views, slog.New(slog.NewTextHandler(io.Discard, nil)))
	got, err := projection.Replay(context.Background(), events, proj)
	if err != nil {
		t.Fatal(err)
	}
	if got != len(events) {
		t.Fatalf("replayed %d events, want %d", got, len(events))
	}
	for id, w := range want {
		if views.current[id] != w {
			t.Fatalf("%s: view %+v, want %+v", id, views.current[id], w)
		}
		if views.history[id] != int(w.Version) {
			t.Fatalf("%s: %d history entries, want %d", id, views.history[id], w.Version)
		}
	}
}

func TestReplayRefusesACorruptStore(t *testing.T) {
	t.Parallel()
	at := time.Now()
	events := allEvents{
		{Position: 1, Event: post.Event{ID: "e1", PostID: "p", Version: 1, Type: post.EventCreated, OccurredAt: at}},
		{Position: 2, Event: post.Event{ID: "e3", PostID: "p", Version: 3, Type: post.EventUpdated, OccurredAt: at}},
	}
	views := &currentViews{current: map[string]post.State{}, history: map[string]int{}}
	proj := projection.NewProjector(views, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if _, err := projection.Replay(context.Background(), events, proj); err == nil {
		t.Fatal("replay of a history with a gap succeeded, want an error")
	}
}

// A post's changes within one page of the store write its view once, with the last of them;
// its history gets every version.
func TestReplayWritesAPostsViewOncePerPage(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	var events allEvents
	aggs := map[string]*post.Post{}
	for i := range 30 { // two posts' changes interleaved: a created, b created, a updated, …
		id := []string{"a", "b"}[i%2]
		p := aggs[id]
		var es []post.Event
		if p == nil {
			var err error
			if p, err = post.FromHistory(id, nil); err != nil {
				t.Fatal(err)
			}
			aggs[id] = p
			e, err := p.Create(post.Create{Title: "t", Content: "c", AuthorName: "a"}, post.Stamp{EventID: fmt.Sprint(id, i), At: at})
			if err != nil {
				t.Fatal(err)
			}
			es = []post.Event{e}
		} else {
			title := fmt.Sprint("title ", i)
			var err error
			if es, err = p.Update(post.Update{Title: &title}, post.Stamp{EventID: fmt.Sprint(id, i), At: at}); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.Apply(es...); err != nil {
			t.Fatal(err)
		}
		events = append(events, ports.Recorded{Position: int64(i + 1), Event: es[0]})
	}
	views := &currentViews{current: map[string]post.State{}, history: map[string]int{}, puts: map[string]int{}}
	proj := projection.NewProjector(views, slog.New(slog.DiscardHandler))

	if _, err := projection.Replay(t.Context(), events, proj); err != nil {
		t.Fatal(err)
	}

	for id, p := range aggs {
		if views.current[id] != p.State() {
			t.Errorf("%s: view %+v, want %+v", id, views.current[id], p.State())
		}
		if views.history[id] != 15 || views.puts[id] != 1 {
			t.Errorf("%s: %d history entries and %d view writes, want 15 and 1", id, views.history[id], views.puts[id])
		}
	}
}

// A post whose stream is longer than a page is folded across the pages: Replay carries its
// state from one page to the next, and writes its view once per page.
func TestReplayFoldsAPostAcrossPages(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	const updates = 2*projection.ReplayBatch + 10
	p, err := post.FromHistory("long", nil)
	if err != nil {
		t.Fatal(err)
	}
	var events allEvents
	record := func(es []post.Event, err error) {
		t.Helper()
		if err == nil {
			err = p.Apply(es...)
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			events = append(events, ports.Recorded{Position: int64(len(events) + 1), Event: e})
		}
	}
	e, err := p.Create(post.Create{Title: "t", Content: "c", AuthorName: "a"}, post.Stamp{EventID: "long-0", At: at})
	record([]post.Event{e}, err)
	for i := range updates {
		title := fmt.Sprint("title ", i)
		record(p.Update(post.Update{Title: &title}, post.Stamp{EventID: fmt.Sprint("long-", i+1), At: at}))
	}
	// A post before it and one after it in stream order, so the long one starts and ends
	// inside a page.
	for _, id := range []string{"a", "z"} {
		q, err := post.FromHistory(id, nil)
		if err != nil {
			t.Fatal(err)
		}
		e, err := q.Create(post.Create{Title: "t", Content: "c", AuthorName: "a"}, post.Stamp{EventID: id, At: at})
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, ports.Recorded{Position: int64(len(events) + 1), Event: e})
	}
	views := &currentViews{current: map[string]post.State{}, history: map[string]int{}, puts: map[string]int{}}

	n, err := projection.Replay(t.Context(), events, projection.NewProjector(views, slog.New(slog.DiscardHandler)))

	if err != nil || n != len(events) {
		t.Fatalf("Replay = %d, %v; want %d events", n, err, len(events))
	}
	if views.current["long"] != p.State() {
		t.Errorf("view %+v, want %+v", views.current["long"], p.State())
	}
	if views.history["long"] != updates+1 || views.puts["long"] != 3 {
		t.Errorf("%d history entries and %d view writes, want %d and 3 (one per page)",
			views.history["long"], views.puts["long"], updates+1)
	}
	if views.current["a"].Version != 1 || views.current["z"].Version != 1 {
		t.Errorf("views of the posts around it: %+v, %+v", views.current["a"], views.current["z"])
	}
}
