package contract

import (
	"context"
	"errors"
	"testing"
	"time"

	"hexapost/core/post"
	"hexapost/ports"
)

// FeedUnderTest is what a change-feed factory returns: a fresh, isolated bus, its publisher
// and its feed.
type FeedUnderTest struct {
	Publisher ports.Publisher
	Feed      ports.ChangeFeed
	// PublishRaw puts payload on the bus as it is; nil when the bus's feed cannot carry a
	// message that is not a change.
	PublishRaw func(ctx context.Context, payload []byte) error
}

// FeedFeatures declares how the factory configured its bus.
type FeedFeatures struct {
	// Bound is how many changes the bus keeps at least and not many more than (the suite
	// publishes three times as many to push the first ones out).
	Bound int
}

// Feed holds a ports.ChangeFeed to its promises: every reader sees every change after its
// position in the bus's order, with growing positions; a reader can resume after any position
// it was given; and a position the bus no longer holds, or one beyond its last change, is
// ErrPositionGone, never a silent gap.
func Feed(t *testing.T, factory func(t *testing.T) FeedUnderTest, f FeedFeatures) {
	t.Run("every reader gets every change in order", func(t *testing.T) {
		t.Parallel()
		u := factory(t)
		head := feedHead(t, u.Feed)
		want := feedStory(t, 20)
		publish(t, u.Publisher, want[:10]...)
		publish(t, u.Publisher, want[10:]...)
		for range 2 {
			got := tailN(t, u.Feed, head, len(want))
			assertFeedEntries(t, got, want, head)
		}
	})

	t.Run("a reader resumes after a position it was given", func(t *testing.T) {
		t.Parallel()
		u := factory(t)
		head := feedHead(t, u.Feed)
		want := feedStory(t, 12)
		publish(t, u.Publisher, want...)
		all := tailN(t, u.Feed, head, len(want))
		rest := tailN(t, u.Feed, all[4].Position, len(want)-5)
		assertFeedEntries(t, rest, want[5:], all[4].Position)
		if got := feedHead(t, u.Feed); got != all[len(all)-1].Position {
			t.Errorf("Head = %s, want the last change's position %s", got, all[len(all)-1].Position)
		}
	})

	t.Run("a reader waits for changes published later", func(t *testing.T) {
		t.Parallel()
		u := factory(t)
		head := feedHead(t, u.Feed)
		want := feedStory(t, 3)
		got := make(chan []ports.FeedEntry, 1)
		go func() { got <- tailN(t, u.Feed, head, len(want)) }()
		time.Sleep(50 * time.Millisecond) // the reader is waiting, or not yet: both must work
		publish(t, u.Publisher, want...)
		assertFeedEntries(t, <-got, want, head)
	})

	t.Run("a position beyond the last change is gone", func(t *testing.T) {
		t.Parallel()
		u := factory(t)
		publish(t, u.Publisher, feedStory(t, 2)...)
		head := feedHead(t, u.Feed)
		beyond := ports.Position{Major: head.Major + 1000}
		assertGone(t, u.Feed, beyond)
	})

	t.Run("a position the bound pushed out is gone", func(t *testing.T) {
		t.Parallel()
		u := factory(t)
		head := feedHead(t, u.Feed)
		changes := feedStory(t, 3*f.Bound)
		for i := 0; i < len(changes); i += 100 {
			publish(t, u.Publisher, changes[i:min(i+100, len(changes))]...)
		}
		assertGone(t, u.Feed, head)
	})

	t.Run("a message that is not a change is left out", func(t *testing.T) {
		t.Parallel()
		u := factory(t)
		if u.PublishRaw == nil {
			t.Skip("the bus's feed carries changes only")
		}
		head := feedHead(t, u.Feed)
		want := feedStory(t, 2)
		publish(t, u.Publisher, want[:1]...)
		if err := u.PublishRaw(t.Context(), []byte("not a change")); err != nil {
			t.Fatal(err)
		}
		publish(t, u.Publisher, want[1:]...)
		assertFeedEntries(t, tailN(t, u.Feed, head, 2), want, head)
	})
}

// feedStory returns n changes: posts created and updated in turn.
func feedStory(t *testing.T, n int) []ports.Change {
	s := newStory(t, epoch)
	var id string
	for i := range n {
		if i%3 == 0 {
			id = s.create("title", "content", "author")
		} else {
			title := "title " + string(rune('a'+i%26))
			s.update(id, post.Update{Title: &title})
		}
	}
	return s.changes
}

func feedHead(t *testing.T, f ports.ChangeFeed) ports.Position {
	t.Helper()
	h, err := f.Head(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// errEnough ends a tail that has what the test wants.
var errEnough = errors.New("enough")

// tailN tails the feed after `after` until it has n entries, failing after 15s.
func tailN(t *testing.T, f ports.ChangeFeed, after ports.Position, n int) []ports.FeedEntry {
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	var got []ports.FeedEntry
	err := f.Tail(ctx, after, func(batch []ports.FeedEntry) error {
		got = append(got, batch...)
		if len(got) >= n {
			return errEnough
		}
		return nil
	})
	if !errors.Is(err, errEnough) {
		t.Errorf("Tail after %s: %v with %d of %d entries", after, err, len(got), n)
	}
	return got
}

func assertFeedEntries(t *testing.T, got []ports.FeedEntry, want []ports.Change, after ports.Position) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d", len(got), len(want))
	}
	last := after
	for i, e := range got {
		if e.Position.Compare(last) <= 0 {
			t.Errorf("entry %d at %s, not after %s", i, e.Position, last)
		}
		last = e.Position
		if e.Change.Event.ID != want[i].Event.ID || e.Change.State != want[i].State {
			t.Errorf("entry %d: %+v, want %+v", i, e.Change, want[i])
		}
	}
}

func assertGone(t *testing.T, f ports.ChangeFeed, after ports.Position) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	var got int
	err := f.Tail(ctx, after, func(batch []ports.FeedEntry) error {
		got += len(batch)
		return nil
	})
	if !errors.Is(err, ports.ErrPositionGone) || got > 0 {
		t.Errorf("Tail after %s: %v after %d entries; want ErrPositionGone before any", after, err, got)
	}
}
