package contract

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"hexapost/core/post"
	"hexapost/ports"
)

// Posts is what the post store suite tests: a PostStore and the event store it appends to,
// which the suite also writes to directly, as another process would.
type Posts struct {
	Posts  ports.PostStore
	Events ports.EventStore
}

// PostStore holds a post store, plain or decorated, to the promises of ports.PostStore.
// newPosts must return a fresh, isolated pair on every call; the cases run in parallel.
func PostStore(t *testing.T, newPosts func(t *testing.T) Posts) {
	cases := []struct {
		name string
		run  func(*testing.T, Posts)
	}{
		{"an unknown post loads at version 0", postsUnknown},
		{"a post loads as its appended changes left it", postsRoundTrip},
		{"a load sees what another writer appended", postsOtherWriter},
		{"an append at a version that is not current is a conflict", postsConflict},
		{"loaded posts are the caller's own", postsOwned},
		{"concurrent commands each load the current post", postsConcurrent},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, newPosts(t))
		})
	}
}

// loadPost loads the post and releases it at once.
func loadPost(t *testing.T, s ports.PostStore, id string) *post.Post {
	t.Helper()
	p, release, err := s.Load(t.Context(), id, true)
	if err != nil {
		t.Fatalf("Load(%s): %v", id, err)
	}
	release()
	return p
}

func postsUnknown(t *testing.T, s Posts) {
	id := newID()
	p := loadPost(t, s.Posts, id)
	if p.ID() != id || p.Version() != 0 || p.Exists() {
		t.Errorf("Load(unknown) = %s at version %d, want %s at version 0", p.ID(), p.Version(), id)
	}
}

func postsRoundTrip(t *testing.T, s Posts) {
	st := newStory(t, epoch)
	id := st.create("first", "body", "ada")
	st.update(id, post.Update{Title: ptr("second")})
	st.update(id, post.Update{Content: ptr("more")})
	c := st.of(id)
	for i := range c {
		if err := s.Posts.Append(t.Context(), ports.Append{PostID: id, ExpectedVersion: int64(i), Changes: c[i : i+1]}); err != nil {
			t.Fatalf("Append v%d: %v", i+1, err)
		}
		if got, want := utcState(loadPost(t, s.Posts, id).State()), utcState(c[i].State); got != want {
			t.Errorf("after v%d Load = %+v, want %+v", i+1, got, want)
		}
	}
}

func postsOtherWriter(t *testing.T, s Posts) {
	st := newStory(t, epoch)
	id := st.create("first", "body", "ada")
	st.update(id, post.Update{Title: ptr("second")})
	st.delete(id)
	c := st.of(id)
	if err := s.Posts.Append(t.Context(), ports.Append{PostID: id, Changes: c[:1]}); err != nil {
		t.Fatal(err)
	}
	loadPost(t, s.Posts, id)
	if err := s.Events.Append(t.Context(), ports.Append{PostID: id, ExpectedVersion: 1, Changes: c[1:]}); err != nil {
		t.Fatal(err)
	}

	if got, want := utcState(loadPost(t, s.Posts, id).State()), utcState(c[2].State); got != want {
		t.Errorf("after another writer appended, Load = %+v, want %+v", got, want)
	}
}

func postsConflict(t *testing.T, s Posts) {
	st := newStory(t, epoch)
	id := st.create("first", "body", "ada")
	st.update(id, post.Update{Title: ptr("second")})
	c := st.of(id)
	if err := s.Posts.Append(t.Context(), ports.Append{PostID: id, Changes: c}); err != nil {
		t.Fatal(err)
	}
	stale := nextChange(t, id, c[:1], "stale")

	err := s.Posts.Append(t.Context(), ports.Append{PostID: id, ExpectedVersion: 1, Changes: []ports.Change{stale}})

	if !errors.Is(err, ports.ErrConflict) {
		t.Errorf("Append at version 1 of a post at 2: error = %v, want %v", err, ports.ErrConflict)
	}
	if got, want := utcState(loadPost(t, s.Posts, id).State()), utcState(c[1].State); got != want {
		t.Errorf("after the conflict Load = %+v, want the stored %+v", got, want)
	}
}

func postsOwned(t *testing.T, s Posts) {
	st := newStory(t, epoch)
	id := st.create("first", "body", "ada")
	c := st.of(id)
	if err := s.Posts.Append(t.Context(), ports.Append{PostID: id, Changes: c}); err != nil {
		t.Fatal(err)
	}
	mine := loadPost(t, s.Posts, id)
	next := nextChange(t, id, c, "only mine")
	if err := mine.Apply(next.Event); err != nil {
		t.Fatal(err)
	}

	if got, want := utcState(loadPost(t, s.Posts, id).State()), utcState(c[0].State); got != want {
		t.Errorf("after a caller changed its loaded post, Load = %+v, want the stored %+v", got, want)
	}
}

// postsConcurrent runs writers that each load a post, decide an update on it and append it,
// again after a conflict, on a few posts at once: every update lands once, and the posts load
// as their streams fold.
func postsConcurrent(t *testing.T, s Posts) {
	const writers, updates = 8, 10
	ids := make([]string, 3)
	for i := range ids {
		st := newStory(t, epoch)
		ids[i] = st.create("first", "body", "ada")
		if err := s.Posts.Append(t.Context(), ports.Append{PostID: ids[i], Changes: st.of(ids[i])}); err != nil {
			t.Fatal(err)
		}
	}
	update := func(id, content string) error {
		for {
			p, release, err := s.Posts.Load(t.Context(), id, true)
			if err != nil {
				return err
			}
			events, err := p.Update(post.Update{Content: &content}, post.Stamp{EventID: newID(), At: epoch})
			if err != nil {
				release()
				return err
			}
			expected := p.Version()
			if err := p.Apply(events...); err != nil {
				release()
				return err
			}
			err = s.Posts.Append(t.Context(), ports.Append{PostID: id, ExpectedVersion: expected,
				Changes: []ports.Change{{Event: events[0], State: p.State()}}})
			release()
			if !errors.Is(err, ports.ErrConflict) {
				return err
			}
		}
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range updates {
				if err := update(ids[(w+i)%len(ids)], fmt.Sprintf("writer %d, update %d", w, i)); err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		})
	}
	wg.Wait()

	versions := int64(0)
	for _, id := range ids {
		events, err := s.Events.Load(t.Context(), id, 0)
		if err != nil {
			t.Fatal(err)
		}
		folded, err := post.FromHistory(id, events)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := utcState(loadPost(t, s.Posts, id).State()), utcState(folded.State()); got != want {
			t.Errorf("post %s loads as %+v, want its stream's fold %+v", id, got, want)
		}
		versions += folded.Version()
	}
	if want := int64(len(ids) + writers*updates); versions != want {
		t.Errorf("the posts are at %d versions together, want %d", versions, want)
	}
}
