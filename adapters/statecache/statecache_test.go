package statecache_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hexapost/adapters/memory"
	"hexapost/adapters/statecache"
	"hexapost/core/command"
	"hexapost/core/post"
	"hexapost/ports"
)

// counted is an event store that counts the reads made of it and the events they loaded.
type counted struct {
	*memory.EventStore
	reads, loaded atomic.Int64
}

func (c *counted) Load(ctx context.Context, postID string, after int64) ([]post.Event, error) {
	events, err := c.EventStore.Load(ctx, postID, after)
	c.reads.Add(1)
	c.loaded.Add(int64(len(events)))
	return events, err
}

var _ ports.EventStore = (*counted)(nil)

func newCounted() *counted {
	return &counted{EventStore: memory.NewEventStore(memory.EventStoreConfig{})}
}

// cached returns a cache over the plain PostStore of store.
func cached(store ports.EventStore, cfg statecache.Config) *statecache.Store {
	return statecache.New(command.NewStreams(store), store, cfg)
}

func newService(posts ports.PostStore, keys ports.IdempotencyStore) *command.Service {
	var n atomic.Int64
	newID := func() string { return fmt.Sprintf("id-%04d", n.Add(1)) }
	return command.NewService(posts, keys, newID, time.Now, slog.New(slog.DiscardHandler), command.Config{})
}

func ptr[T any](v T) *T { return &v }

var hello = post.Create{Title: "Hello", Content: "Body", AuthorName: "Ann"}

func mustCreate(t *testing.T, svc *command.Service) string {
	t.Helper()
	r, err := svc.Create(t.Context(), hello, command.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return r.State.ID
}

func mustUpdate(t *testing.T, svc *command.Service, id string, u post.Update) post.State {
	t.Helper()
	r, err := svc.Update(t.Context(), id, u, command.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return r.State
}

// stored returns the post folded from its whole stream.
func stored(t *testing.T, store ports.EventStore, id string) post.State {
	t.Helper()
	events, err := store.Load(t.Context(), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	p, err := post.FromHistory(id, events)
	if err != nil {
		t.Fatal(err)
	}
	return p.State()
}

// TestCommandsOnAKnownPostLoadOnlyWhatFollows: the cost of a command does not grow with the
// post's history. The cache keeps each post's state after the commands made through it and
// decides on it without reading; after another process appended, the conflict makes it read
// only the events it has not seen.
func TestCommandsOnAKnownPostLoadOnlyWhatFollows(t *testing.T) {
	t.Parallel()
	store := newCounted()
	svc := newService(cached(store, statecache.Config{}), store)
	id := mustCreate(t, svc)
	for i := range 5 {
		mustUpdate(t, svc, id, post.Update{Content: ptr(fmt.Sprint("mine ", i))})
	}
	if n, reads := store.loaded.Load(), store.reads.Load(); n != 0 || reads != 0 {
		t.Fatalf("a create and 5 updates loaded %d events in %d reads, want none: each append confirmed the kept state", n, reads)
	}

	elsewhere := newService(command.NewStreams(store.EventStore), store)
	mustUpdate(t, elsewhere, id, post.Update{Title: ptr("elsewhere 1")})
	mustUpdate(t, elsewhere, id, post.Update{Title: ptr("elsewhere 2")})
	got := mustUpdate(t, svc, id, post.Update{Content: ptr("mine")})

	if got.Version != 9 || got.Title != "elsewhere 2" || got.Content != "mine" {
		t.Errorf("state = %+v, want version 9 with the other process's title and our content", got)
	}
	if n := store.loaded.Load(); n != 2 {
		t.Errorf("after another process appended 2 events, %d events were loaded, want 2", n)
	}
}

// TestDecisionsOnAnOvertakenState: another process changed the post since this process last
// saw it. Every answer must be the one the stored state gives, never the kept one's.
func TestDecisionsOnAnOvertakenState(t *testing.T) {
	t.Parallel()
	rename := func(t *testing.T, other *command.Service, id string) {
		t.Helper()
		mustUpdate(t, other, id, post.Update{Title: ptr("Renamed")})
	}
	tests := []struct {
		name         string
		giveOther    func(t *testing.T, other *command.Service, id string)
		giveUpdate   post.Update
		giveIfMatch  *int64
		wantErr      error
		wantConflict *command.ConflictError
		wantState    func(s post.State) bool
		wantVersion  int64
	}{
		{
			name:        "setting back what the cache kept is a change",
			giveOther:   rename,
			giveUpdate:  post.Update{Title: ptr("Hello")},
			wantState:   func(s post.State) bool { return s.Version == 3 && s.Title == "Hello" },
			wantVersion: 3,
		},
		{
			name:        "If-Match with the stored version succeeds",
			giveOther:   rename,
			giveUpdate:  post.Update{Content: ptr("new")},
			giveIfMatch: ptr(int64(2)),
			wantState:   func(s post.State) bool { return s.Version == 3 && s.Title == "Renamed" && s.Content == "new" },
			wantVersion: 3,
		},
		{
			name:         "If-Match with the kept version is a conflict naming the stored one",
			giveOther:    rename,
			giveUpdate:   post.Update{Content: ptr("new")},
			giveIfMatch:  ptr(int64(1)),
			wantErr:      ports.ErrConflict,
			wantConflict: &command.ConflictError{Expected: 1, Current: 2},
			wantVersion:  2,
		},
		{
			name: "a post deleted elsewhere is gone",
			giveOther: func(t *testing.T, other *command.Service, id string) {
				t.Helper()
				if _, err := other.Delete(t.Context(), id, command.Options{}); err != nil {
					t.Fatal(err)
				}
			},
			giveUpdate:  post.Update{Content: ptr("new")},
			wantErr:     post.ErrDeleted,
			wantVersion: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			store := memory.NewEventStore(memory.EventStoreConfig{})
			svc := newService(cached(store, statecache.Config{}), store)
			id := mustCreate(t, svc) // the cache now keeps the post at version 1
			tt.giveOther(t, newService(command.NewStreams(store), store), id)

			got, err := svc.Update(t.Context(), id, tt.giveUpdate, command.Options{IfMatch: tt.giveIfMatch})

			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			var conflict *command.ConflictError
			errors.As(err, &conflict)
			if !reflect.DeepEqual(conflict, tt.wantConflict) {
				t.Errorf("conflict = %+v, want %+v", conflict, tt.wantConflict)
			}
			if tt.wantState != nil && !tt.wantState(got.State) {
				t.Errorf("state = %+v", got.State)
			}
			if v := stored(t, store, id).Version; v != tt.wantVersion {
				t.Errorf("stored version = %d, want %d", v, tt.wantVersion)
			}
		})
	}
}

// loads counts the Loads that reach the PostStore the cache decorates.
type loads struct {
	ports.PostStore
	n atomic.Int64
}

func (l *loads) Load(ctx context.Context, id string, current bool) (*post.Post, func(), error) {
	l.n.Add(1)
	return l.PostStore.Load(ctx, id, current)
}

// TestKeepsTheRecentlyCommandedPosts: the cache keeps at most Size posts, the ones commanded
// most recently; a post it no longer keeps is loaded whole again, and correctly.
func TestKeepsTheRecentlyCommandedPosts(t *testing.T) {
	t.Parallel()
	const size = 8
	store := memory.NewEventStore(memory.EventStoreConfig{})
	next := &loads{PostStore: command.NewStreams(store)}
	svc := newService(statecache.New(next, store, statecache.Config{Size: size}), store)
	ids := make([]string, 4*size)
	for i := range ids {
		ids[i] = mustCreate(t, svc)
	}

	for _, id := range ids[len(ids)-size/2:] {
		mustUpdate(t, svc, id, post.Update{Content: ptr("recent")})
	}
	if n := next.n.Load(); n != 0 {
		t.Errorf("updates of the %d posts created last loaded %d posts whole, want 0", size/2, n)
	}
	for _, id := range ids[:size] {
		if got := mustUpdate(t, svc, id, post.Update{Content: ptr("old")}); got.Version != 2 || got.Title != "Hello" {
			t.Errorf("post %s after an update = %+v, want version 2 of the created post", id, got)
		}
	}
	if n := next.n.Load(); n != size {
		t.Errorf("updates of the %d posts created first loaded %d posts whole, want %d: they were evicted", size, n, size)
	}
}

// stream is an EventLoader that returns what it is given, whatever is asked.
type stream struct{ events []post.Event }

func (s stream) Load(context.Context, string, int64) ([]post.Event, error) { return s.events, nil }

// TestEventsThatDoNotFollowTheKeptStateAreNotApplied: the cache does not patch a kept state
// with events that do not follow it; it loads the post whole instead.
func TestEventsThatDoNotFollowTheKeptStateAreNotApplied(t *testing.T) {
	t.Parallel()
	store := memory.NewEventStore(memory.EventStoreConfig{})
	svc := newService(command.NewStreams(store), store)
	id := mustCreate(t, svc)
	mustUpdate(t, svc, id, post.Update{Title: ptr("two")})
	mustUpdate(t, svc, id, post.Update{Title: ptr("three")})
	whole, err := store.Load(t.Context(), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	next := &loads{PostStore: command.NewStreams(store)}
	c := statecache.New(next, stream{events: whole[2:]}, statecache.Config{})
	p, release, err := c.Load(t.Context(), id, true) // loaded whole: the cache keeps version 3
	if err != nil {
		t.Fatal(err)
	}
	release()
	if p.Version() != 3 || next.n.Load() != 1 {
		t.Fatalf("first load: version %d after %d whole loads, want 3 after 1", p.Version(), next.n.Load())
	}

	p, release, err = c.Load(t.Context(), id, true) // "since 3" gives event 3 again

	if err != nil {
		t.Fatal(err)
	}
	release()
	if p.Version() != 3 || p.State().Title != "three" || next.n.Load() != 2 {
		t.Errorf("second load: %+v after %d whole loads, want version 3 titled three after 2", p.State(), next.n.Load())
	}
}

// TestConcurrentCommandsAndAnotherProcess runs commands through one cache from many goroutines
// while another process appends to the same posts: every Load must give the stored state of
// its moment, so every command succeeds and the kept states end equal to the streams' folds.
func TestConcurrentCommandsAndAnotherProcess(t *testing.T) {
	t.Parallel()
	store := memory.NewEventStore(memory.EventStoreConfig{})
	c := cached(store, statecache.Config{Size: 4})
	svc := command.NewService(c, store, newUUIDs(), time.Now, slog.New(slog.DiscardHandler), command.Config{MaxAttempts: 100})
	other := newService(command.NewStreams(store), store)
	ids := make([]string, 6)
	for i := range ids {
		ids[i] = mustCreate(t, svc)
	}

	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 25 {
				id := ids[(g+i)%len(ids)]
				if _, err := svc.Update(t.Context(), id, post.Update{Content: ptr(fmt.Sprint(g, "/", i))}, command.Options{}); err != nil {
					t.Errorf("update %s: %v", id, err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 50 {
			id := ids[i%len(ids)]
			if _, err := other.Update(t.Context(), id, post.Update{Title: ptr(fmt.Sprint("elsewhere ", i))}, command.Options{}); err != nil {
				t.Errorf("update elsewhere %s: %v", id, err)
				return
			}
		}
	})
	wg.Wait()

	for _, id := range ids {
		p, release, err := c.Load(t.Context(), id, true)
		if err != nil {
			t.Fatal(err)
		}
		release()
		if want := stored(t, store, id); p.State() != want {
			t.Errorf("post %s loads as %+v, want the stored %+v", id, p.State(), want)
		}
	}
}

func newUUIDs() func() string {
	var n atomic.Int64
	return func() string { return fmt.Sprintf("uuid-%06d", n.Add(1)) }
}
