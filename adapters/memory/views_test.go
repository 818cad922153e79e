package memory_test

import (
	"fmt"
	"testing"
	"time"

	"hexapost/adapters/memory"
	"hexapost/core/post"
	"hexapost/ports"
)

// TestListMovesAPostWhoseAuthorChanged pins the bookkeeping of the per-author index, which the
// contract suite sees only through List.
func TestListMovesAPostWhoseAuthorChanged(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	v := memory.NewViews()
	s := post.State{ID: "p1", Version: 1, AuthorName: "ada", CreatedAt: t0}
	moved := s
	moved.Version, moved.AuthorName = 2, "bob"

	for _, give := range []post.State{s, moved} {
		if _, err := v.PutCurrent(ctx, give); err != nil {
			t.Fatal(err)
		}
	}

	for author, want := range map[string]int{"ada": 0, "bob": 1, "": 1} {
		got, err := v.List(ctx, ports.ListQuery{AuthorName: author, Limit: 10})
		if err != nil || len(got) != want {
			t.Errorf("List(%q) = %d posts, %v; want %d", author, len(got), err, want)
		}
	}
}

// BenchmarkList measures a page deep in a read model of 50 000 posts.
func BenchmarkList(b *testing.B) {
	ctx := b.Context()
	v := memory.NewViews()
	for i := range 50_000 {
		s := post.State{ID: fmt.Sprintf("p%06d", i), Version: 1, AuthorName: fmt.Sprintf("author %d", i%10),
			CreatedAt: t0.Add(time.Duration(i) * time.Millisecond)}
		if _, err := v.PutCurrent(ctx, s); err != nil {
			b.Fatal(err)
		}
	}
	after := &ports.Cursor{CreatedAt: t0.Add(25_000 * time.Millisecond), ID: "p025000"}
	for b.Loop() {
		if _, err := v.List(ctx, ports.ListQuery{AuthorName: "author 3", Limit: 20, After: after}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkProjectCreate measures what the projector stores for a new post — its history entry,
// then its view — in a read model that keeps growing, as under a load of creates.
func BenchmarkProjectCreate(b *testing.B) {
	ctx := b.Context()
	v := memory.NewViews()
	ids := make([]string, 0, 1<<20)
	for i := range cap(ids) {
		ids = append(ids, fmt.Sprintf("%08d-0000-7000-8000-000000000000", i))
	}
	i := 0
	for b.Loop() {
		s := post.State{ID: ids[i%len(ids)], Version: 1, Title: "t", Content: "c", AuthorName: "a", CreatedAt: t0.Add(time.Duration(i))}
		i++
		if err := v.PutHistory(ctx, ports.HistoryEntry{EventID: s.ID, Type: post.EventCreated, OccurredAt: t0, State: s}); err != nil {
			b.Fatal(err)
		}
		if _, err := v.PutCurrent(ctx, s); err != nil {
			b.Fatal(err)
		}
	}
}
