package command

import (
	"fmt"
	"testing"

	"hexapost/core/post"
)

// TestStripeKeepsTheRecentlyCommandedPosts checks the cache's bound and what it evicts: a
// stripe never holds more than statesPerStripe posts, keeps the latest state of each, and
// keeps a post commanded again and again however many others come through.
func TestStripeKeepsTheRecentlyCommandedPosts(t *testing.T) {
	t.Parallel()
	var st stripe
	version := func(id string) int64 {
		if p := st.get(id); p != nil {
			return p.Version()
		}
		return 0
	}
	for i := range 10 * statesPerStripe {
		st.put(post.State{ID: fmt.Sprintf("post-%d", i), Version: 1})
		st.put(post.State{ID: "hot", Version: int64(i + 1)})
		if n := len(st.recent) + len(st.older); n > statesPerStripe {
			t.Fatalf("after %d posts the stripe holds %d states, want at most %d", i+2, n, statesPerStripe)
		}
		if got := version("hot"); got != int64(i+1) {
			t.Fatalf("after %d commands the hot post is at version %d in the cache, want %d", i+1, got, i+1)
		}
	}
	last := fmt.Sprintf("post-%d", 10*statesPerStripe-1)
	if version(last) != 1 || version("post-0") != 0 {
		t.Errorf("cache holds the last post at version %d and the first at %d, want 1 and 0 (evicted)",
			version(last), version("post-0"))
	}
	st.forget("hot")
	if got := version("hot"); got != 0 {
		t.Errorf("a forgotten post is still cached at version %d", got)
	}
}
