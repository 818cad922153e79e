package statecache

import (
	"fmt"
	"testing"

	"hexapost/core/post"
)

// TestKeepsAtMostSizeStates checks the bound and what goes first: the cache never holds more
// than Size states, keeps the latest state of each post, and keeps a post commanded again and
// again however many others come through.
func TestKeepsAtMostSizeStates(t *testing.T) {
	t.Parallel()
	const size = 256
	s := New(nil, nil, Config{Size: size})
	version := func(id string) int64 {
		st, _ := s.get(id)
		return st.Version
	}
	for i := range 10 * size {
		s.put(post.State{ID: fmt.Sprintf("post-%d", i), Version: 1})
		s.put(post.State{ID: "hot", Version: int64(i + 1)})
		if n := len(s.recent) + len(s.older); n > size {
			t.Fatalf("after %d posts the cache holds %d states, want at most %d", i+2, n, size)
		}
		if got := version("hot"); got != int64(i+1) {
			t.Fatalf("after %d commands the hot post is kept at version %d, want %d", i+1, got, i+1)
		}
	}
	last := fmt.Sprintf("post-%d", 10*size-1)
	if version(last) != 1 || version("post-0") != 0 {
		t.Errorf("the cache keeps the last post at version %d and the first at %d, want 1 and 0 (evicted)",
			version(last), version("post-0"))
	}
	s.put(post.State{ID: "hot", Version: 3})
	if got := version("hot"); got != 10*size {
		t.Errorf("an earlier state replaced a later one: the hot post is kept at version %d, want %d", got, 10*size)
	}
}
