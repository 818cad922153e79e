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
