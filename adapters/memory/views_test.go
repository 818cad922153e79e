package memory_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
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

// TestListPagesThroughThousandsOfPosts pages through more posts than one chunk of an index
// holds, for everyone and per author, before and after deleting every third post, and checks
// that the pages together are every live post once, newest first.
func TestListPagesThroughThousandsOfPosts(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	v := memory.NewViews()
	const n = 3000
	states := make([]post.State, n)
	for i := range states {
		// Two posts share each creation time, so pages also break ties by id.
		states[i] = post.State{ID: fmt.Sprintf("p%05d", i), Version: 1, AuthorName: fmt.Sprintf("author %d", i%3),
			CreatedAt: t0.Add(time.Duration(i/2) * time.Millisecond)}
	}
	// Out of order, as concurrent creates are projected.
	for _, i := range rand.New(rand.NewPCG(7, 7)).Perm(n) {
		if _, err := v.PutCurrent(ctx, states[i]); err != nil {
			t.Fatal(err)
		}
	}
	check := func(author string, live func(i int) bool) {
		t.Helper()
		var want []string
		for i := n - 1; i >= 0; i-- {
			if live(i) && (author == "" || states[i].AuthorName == author) {
				want = append(want, states[i].ID)
			}
		}
		var got []string
		q := ports.ListQuery{AuthorName: author, Limit: 97}
		for {
			page, err := v.List(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range page {
				got = append(got, s.ID)
			}
			if len(page) < q.Limit {
				break
			}
			last := page[len(page)-1]
			q.After = &ports.Cursor{CreatedAt: last.CreatedAt, ID: last.ID}
		}
		if !slices.Equal(got, want) {
			t.Errorf("author %q: the pages list %d posts, want %d newest first", author, len(got), len(want))
		}
	}
	all := func(int) bool { return true }
	for _, author := range []string{"", "author 1"} {
		check(author, all)
	}
	for i := 0; i < n; i += 3 {
		deleted := states[i]
		deleted.Version, deleted.Deleted = 2, true
		if _, err := v.PutCurrent(ctx, deleted); err != nil {
			t.Fatal(err)
		}
	}
	for _, author := range []string{"", "author 0", "author 2"} {
		check(author, func(i int) bool { return i%3 != 0 })
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
