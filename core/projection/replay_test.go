package projection_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"hexapost/core/post"
	"hexapost/core/projection"
	"hexapost/ports"
)

// allEvents is an EventReader over a fixed list, served in small pages.
type allEvents []ports.Recorded

func (a allEvents) ReadAll(_ context.Context, after int64, limit int) ([]ports.Recorded, error) {
	var out []ports.Recorded
	for _, r := range a {
		if r.Position > after && len(out) < limit {
			out = append(out, r)
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
