package postlock_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hexapost/adapters/memory"
	"hexapost/adapters/postlock"
	"hexapost/core/command"
	"hexapost/core/post"
	"hexapost/ports"
)

// refusing is an event store that counts the appends it refused for their expected version.
// Its loads yield the processor before they return, so that commands left to run together
// overlap between their load and their append.
type refusing struct {
	*memory.EventStore
	refused atomic.Int64
}

func (r *refusing) Load(ctx context.Context, postID string, after int64) ([]post.Event, error) {
	events, err := r.EventStore.Load(ctx, postID, after)
	runtime.Gosched()
	return events, err
}

func (r *refusing) Append(ctx context.Context, a ports.Append) error {
	err := r.EventStore.Append(ctx, a)
	if errors.Is(err, ports.ErrConflict) {
		r.refused.Add(1)
	}
	return err
}

var _ ports.EventStore = (*refusing)(nil)

// newService returns a service whose commands take turns, and its store.
func newService(t *testing.T) (*command.Service, *refusing, string) {
	t.Helper()
	store := &refusing{EventStore: memory.NewEventStore(memory.EventStoreConfig{})}
	var n atomic.Int64
	newID := func() string { return fmt.Sprintf("id-%04d", n.Add(1)) }
	svc := command.NewService(postlock.New(command.NewStreams(store)), store, newID, time.Now,
		slog.New(slog.DiscardHandler), command.Config{})
	r, err := svc.Create(t.Context(), post.Create{Title: "Hello", Content: "Body", AuthorName: "Ann"}, command.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return svc, store, r.State.ID
}

func ptr[T any](v T) *T { return &v }

// updateAtOnce sends n updates of the post at once, the i-th titled "title i", and returns
// their errors.
func updateAtOnce(t *testing.T, svc *command.Service, id string, n int, o command.Options) []error {
	t.Helper()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, errs[i] = svc.Update(t.Context(), id, post.Update{Title: ptr(fmt.Sprint("title ", i))}, o)
		})
	}
	wg.Wait()
	return errs
}

// TestUnconditionalCommandsOnOnePostQueue: many more concurrent updates of one post than the
// service has attempts all succeed, and none collides at the append.
func TestUnconditionalCommandsOnOnePostQueue(t *testing.T) {
	t.Parallel()
	const n = 50
	svc, store, id := newService(t)

	errs := updateAtOnce(t, svc, id, n, command.Options{})

	if err := errors.Join(errs...); err != nil {
		t.Fatalf("updates failed: %v", err)
	}
	if got := lastVersion(t, store, id); got != n+1 {
		t.Errorf("stored version = %d, want %d", got, n+1)
	}
	if c := store.refused.Load(); c != 0 {
		t.Errorf("the store refused %d appends; commands on one post in one process should queue, not collide", c)
	}
}

// TestConditionalLosersSeeTheWinner: of conditional updates racing on one version, one wins
// and every other sees the version the winner left before appending anything.
func TestConditionalLosersSeeTheWinner(t *testing.T) {
	t.Parallel()
	const n = 50
	svc, store, id := newService(t)

	errs := updateAtOnce(t, svc, id, n, command.Options{IfMatch: ptr(int64(1))})

	won, conflicts := 0, 0
	for _, err := range errs {
		var conflict *command.ConflictError
		switch {
		case err == nil:
			won++
		case errors.As(err, &conflict) && *conflict == command.ConflictError{Expected: 1, Current: 2}:
			conflicts++
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	if won != 1 || conflicts != n-1 {
		t.Errorf("%d won and %d conflicted with version 2, want 1 and %d", won, conflicts, n-1)
	}
	if got := lastVersion(t, store, id); got != 2 {
		t.Errorf("stored version = %d, want 2", got)
	}
	if c := store.refused.Load(); c != 0 {
		t.Errorf("the store refused %d appends; the losers should see the current version before appending", c)
	}
}

func lastVersion(t *testing.T, store ports.EventLoader, id string) int64 {
	t.Helper()
	events, err := store.Load(t.Context(), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	return int64(len(events))
}

// holders is a PostStore that records how many callers hold a post at once.
type holders struct {
	mu      sync.Mutex
	now     map[string]int
	most    int
	release atomic.Int64
}

func (h *holders) Load(_ context.Context, id string, _ bool) (*post.Post, func(), error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.now[id]++
	h.most = max(h.most, h.now[id])
	p, err := post.FromHistory(id, nil)
	return p, func() {
		h.release.Add(1)
		h.mu.Lock()
		defer h.mu.Unlock()
		h.now[id]--
	}, err
}

func (h *holders) Append(context.Context, ports.Append) error { return nil }

func newHolders() *holders { return &holders{now: map[string]int{}} }

// TestOnePostIsHeldByOneLoaderAtATime: between a Load and its release no other Load of the
// post gets through, and each release reaches the decorated store once, however often it is
// called.
func TestOnePostIsHeldByOneLoaderAtATime(t *testing.T) {
	t.Parallel()
	next := newHolders()
	s := postlock.New(next)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 50 {
				_, release, err := s.Load(t.Context(), "post", true)
				if err != nil {
					t.Error(err)
					return
				}
				runtime.Gosched() // let the others try while the post is held
				release()
				release()
			}
		})
	}
	wg.Wait()

	if next.most != 1 {
		t.Errorf("at most %d loaders held the post at once, want 1", next.most)
	}
	if n := next.release.Load(); n != 16*50 {
		t.Errorf("%d releases reached the decorated store, want %d", n, 16*50)
	}
}

// TestAWaitingLoadEndsWithItsContext: a Load waiting for its turn gives up when its context
// ends, and the post's turn then goes on as if it had never asked.
func TestAWaitingLoadEndsWithItsContext(t *testing.T) {
	t.Parallel()
	s := postlock.New(newHolders())
	_, release, err := s.Load(t.Context(), "post", true)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	waited := make(chan error)
	go func() {
		_, _, err := s.Load(ctx, "post", true)
		waited <- err
	}()
	cancel()
	if err := <-waited; !errors.Is(err, context.Canceled) {
		t.Fatalf("waiting load: error %v, want %v", err, context.Canceled)
	}
	release()

	_, release, err = s.Load(t.Context(), "post", true)
	if err != nil {
		t.Fatalf("load after the holder released: %v", err)
	}
	release()
}
