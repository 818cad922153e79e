package query_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"hexapost/core/post"
	"hexapost/core/query"
	"hexapost/ports"
)

// fakeFeed is a bus's feed in a slice: entry i has position i+1; entries before first are gone.
type fakeFeed struct {
	mu      sync.Mutex
	entries []ports.Change
	first   uint64 // the first position still held
	more    chan struct{}
}

func newFakeFeed() *fakeFeed { return &fakeFeed{first: 1, more: make(chan struct{})} }

func (f *fakeFeed) publish(cs ...ports.Change) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries = append(f.entries, cs...)
	close(f.more)
	f.more = make(chan struct{})
}

// trim forgets every entry up to position upTo.
func (f *fakeFeed) trim(upTo uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.first = upTo + 1
}

func (f *fakeFeed) Head(context.Context) (ports.Position, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return ports.Position{Major: uint64(len(f.entries))}, nil
}

func (f *fakeFeed) Tail(ctx context.Context, after ports.Position, fn func([]ports.FeedEntry) error) error {
	next := after.Major + 1
	for {
		f.mu.Lock()
		if next < f.first || next > uint64(len(f.entries))+1 {
			f.mu.Unlock()
			return fmt.Errorf("fake: %d: %w", next, ports.ErrPositionGone)
		}
		var batch []ports.FeedEntry
		for ; next <= uint64(len(f.entries)); next++ {
			batch = append(batch, ports.FeedEntry{Position: ports.Position{Major: next}, Change: f.entries[next-1]})
		}
		more := f.more
		f.mu.Unlock()
		if len(batch) > 0 {
			if err := fn(batch); err != nil {
				return err
			}
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-more:
		}
	}
}

func change(id string, version int64, author string) ports.Change {
	return ports.Change{
		Event: post.Event{ID: fmt.Sprintf("%s-%d", id, version), PostID: id, Version: version, Type: post.EventUpdated},
		State: post.State{ID: id, Version: version, AuthorName: author},
	}
}

func startHub(t *testing.T, f *fakeFeed, buffer int) *query.Changes {
	t.Helper()
	h := query.NewChanges(f, query.ChangesConfig{Buffer: buffer, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return h
}

func subscribe(t *testing.T, h *query.Changes, after ports.Position, f query.Filter) *query.Subscription {
	t.Helper()
	s, err := h.Subscribe(t.Context(), after, f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// take returns the next n items, failing after 5s.
func take(t *testing.T, s *query.Subscription, n int) []query.Item {
	t.Helper()
	var got []query.Item
	timeout := time.After(5 * time.Second)
	for len(got) < n {
		select {
		case it := <-s.Items():
			got = append(got, it)
		case <-timeout:
			t.Fatalf("%d items of %d in 5s: %v", len(got), n, got)
		}
	}
	return got
}

// ids returns "post-version" of each item's change, or "reset@position".
func ids(items []query.Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		if it.Reset {
			out[i] = "reset@" + it.Entry.Position.String()
		} else {
			out[i] = it.Entry.Change.Event.ID
		}
	}
	return out
}

func assertItems(t *testing.T, got []query.Item, want ...string) {
	t.Helper()
	if fmt.Sprint(ids(got)) != fmt.Sprint(want) {
		t.Errorf("items %v, want %v", ids(got), want)
	}
}

func TestChangesFanOutFiltersAndOrder(t *testing.T) {
	t.Parallel()
	f := newFakeFeed()
	h := startHub(t, f, 16)
	all := subscribe(t, h, ports.Position{}, query.Filter{})
	onlyB := subscribe(t, h, ports.Position{}, query.Filter{PostID: "b"})
	onlyAnn := subscribe(t, h, ports.Position{}, query.Filter{AuthorName: "ann"})
	f.publish(change("a", 1, "ann"), change("b", 1, "bob"), change("a", 2, "ann"))
	// A duplicate and a stale version of a: neither reaches anyone.
	f.publish(change("a", 2, "ann"), change("a", 1, "ann"), change("b", 2, "ann"))
	assertItems(t, take(t, all, 4), "a-1", "b-1", "a-2", "b-2")
	assertItems(t, take(t, onlyB, 2), "b-1", "b-2")
	assertItems(t, take(t, onlyAnn, 3), "a-1", "a-2", "b-2")
	f.publish(change("c", 1, "cy"))
	assertItems(t, take(t, all, 1), "c-1") // nothing else came between
}

func TestChangesResumeAfterPosition(t *testing.T) {
	t.Parallel()
	f := newFakeFeed()
	f.publish(change("a", 1, "ann"), change("a", 2, "ann"), change("b", 1, "bob"))
	h := startHub(t, f, 16)
	f.publish(change("a", 3, "ann"), change("b", 2, "bob"))
	// Positions 1…5 exist; resuming after 1 catches up 2…5 from the feed, then follows live.
	s := subscribe(t, h, ports.Position{Major: 1}, query.Filter{})
	f.publish(change("c", 1, "cy"))
	got := take(t, s, 5)
	assertItems(t, got, "a-2", "b-1", "a-3", "b-2", "c-1")
	for i, it := range got {
		if want := uint64(i + 2); it.Entry.Position.Major != want {
			t.Errorf("item %d at %s, want %d", i, it.Entry.Position, want)
		}
	}
}

func TestChangesResetWhenPositionGone(t *testing.T) {
	t.Parallel()
	f := newFakeFeed()
	f.publish(change("a", 1, "ann"), change("a", 2, "ann"), change("a", 3, "ann"))
	h := startHub(t, f, 16)
	f.trim(2)
	s := subscribe(t, h, ports.Position{Major: 1}, query.Filter{})
	f.publish(change("a", 4, "ann"))
	assertItems(t, take(t, s, 2), "reset@3", "a-4")

	beyond := subscribe(t, h, ports.Position{Major: 99}, query.Filter{})
	f.publish(change("a", 5, "ann"))
	assertItems(t, take(t, beyond, 2), "reset@4", "a-5")
}

func TestChangesCutsOffASubscriberThatDoesNotRead(t *testing.T) {
	t.Parallel()
	f := newFakeFeed()
	h := startHub(t, f, 4)
	stuck := subscribe(t, h, ports.Position{}, query.Filter{})
	reader := subscribe(t, h, ports.Position{}, query.Filter{})
	var want []string
	for v := range int64(20) {
		f.publish(change("a", v+1, "ann"))
		want = append(want, fmt.Sprintf("a-%d", v+1))
		assertItems(t, take(t, reader, 1), want[v])
	}
	select {
	case <-stuck.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the subscriber that does not read was not cut off")
	}
	if subscribers, cutOff := h.Stats(); subscribers != 1 || cutOff != 1 {
		t.Errorf("Stats() = %d subscribers, %d cut off; want the reader, and the one cut off", subscribers, cutOff)
	}
	at, reset := stuck.Ended()
	if !reset || at.Major != 5 {
		t.Errorf("Ended() = %s, %v; want a reset at 5, the change that did not fit", at, reset)
	}
	assertItems(t, take(t, stuck, 4), want[:4]...) // what fitted is still there, nothing more
}

func TestChangesDrain(t *testing.T) {
	t.Parallel()
	f := newFakeFeed()
	h := startHub(t, f, 4)
	s := subscribe(t, h, ports.Position{}, query.Filter{})
	h.Drain()
	<-s.Done()
	if _, reset := s.Ended(); reset {
		t.Error("a drained subscriber is told to reset; it should resume from its position")
	}
	if _, err := h.Subscribe(t.Context(), ports.Position{}, query.Filter{}); err == nil {
		t.Error("Subscribe after Drain succeeded")
	}
}
