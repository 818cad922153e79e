package wakeup_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hexapost/adapters/memory"
	"hexapost/adapters/wakeup"
	"hexapost/core/post"
	"hexapost/core/projection"
	"hexapost/core/query"
	"hexapost/ports"
)

// never is a recheck that does not come within a test: only a signalled write wakes a reader.
var never = query.Recheck{Every: time.Hour}

// countedViews counts the reads of the current views.
type countedViews struct {
	*memory.Views
	reads atomic.Int64
}

func (v *countedViews) Get(ctx context.Context, id string) (post.State, error) {
	v.reads.Add(1)
	return v.Views.Get(ctx, id)
}

func state(id string, version int64) post.State {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return post.State{ID: id, Version: version, Title: fmt.Sprint("v", version), Content: "c", AuthorName: "a",
		CreatedAt: at, UpdatedAt: at.Add(time.Duration(version) * time.Second)}
}

func change(id string, version int64) ports.Change {
	s := state(id, version)
	typ := post.EventUpdated
	if version == 1 {
		typ = post.EventCreated
	}
	return ports.Change{
		Event: post.Event{ID: fmt.Sprintf("%s-e%d", id, version), PostID: id, Version: version, Type: typ, OccurredAt: s.UpdatedAt},
		State: s,
	}
}

// wired returns the read model, a projector writing it through the signal and a reader woken
// by the signal that waits at most a minute.
func wired(t *testing.T, inner ports.ViewChanges) (*countedViews, *projection.Projector, *query.Reader) {
	t.Helper()
	s := wakeup.New()
	v := &countedViews{Views: memory.NewViews()}
	p := projection.NewProjector(s.Writer(v), slog.New(slog.NewTextHandler(io.Discard, nil)))
	return v, p, query.NewReader(v, s.Changes(inner), time.Minute)
}

func get(ctx context.Context, r *query.Reader, id string, minVersion int64) <-chan error {
	out := make(chan error, 1)
	go func() {
		s, err := r.Get(ctx, id, minVersion)
		if err == nil && s.Version < minVersion {
			err = fmt.Errorf("read v%d, want v%d", s.Version, minVersion)
		}
		out <- err
	}()
	return out
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func answered(t *testing.T, results <-chan error) {
	t.Helper()
	select {
	case err := <-results:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the read was not woken by the write")
	}
}

func TestAWriteWakesTheReadersOfItsPost(t *testing.T) {
	t.Parallel()
	v, p, r := wired(t, never)
	if err := p.Apply(t.Context(), change("p1", 1)); err != nil {
		t.Fatal(err)
	}

	results := get(t.Context(), r, "p1", 2)
	eventually(t, "the reader is waiting", func() bool { return v.reads.Load() > 0 })
	for i := range 20 { // writes of other posts wake no one
		if err := p.Apply(t.Context(), change(fmt.Sprint("other", i), 1)); err != nil {
			t.Fatal(err)
		}
	}
	if n := v.reads.Load(); n != 1 {
		t.Errorf("writes of other posts made the reader read %d times, want once", n)
	}
	if err := p.Apply(t.Context(), change("p1", 2)); err != nil {
		t.Fatal(err)
	}

	answered(t, results)
}

// A reader woken by one write of a post that goes on waiting must not miss a write made
// between its wake-up and its next wait: it waits for v3, v2 wakes it, v3 follows at once.
// Many posts at a time, so the write lands in that window in some of them. (Such a write was
// once lost, and the read waited for its next poll.)
func TestAReaderWokenByAnEarlierVersionGetsTheOneAfterIt(t *testing.T) {
	t.Parallel()
	v, p, r := wired(t, never)
	const posts = 200
	var reads []<-chan error
	for i := range posts {
		id := fmt.Sprint("p", i)
		if err := p.Apply(t.Context(), change(id, 1)); err != nil {
			t.Fatal(err)
		}
		reads = append(reads, get(t.Context(), r, id, 3))
	}
	eventually(t, "every reader is waiting", func() bool { return v.reads.Load() >= posts })
	var wg sync.WaitGroup
	for i := range posts {
		wg.Go(func() {
			for _, version := range []int64{2, 3} {
				if err := p.Apply(context.Background(), change(fmt.Sprint("p", i), version)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()

	for _, res := range reads {
		answered(t, res)
	}
}

// A change written by another process (straight into the read model, past this process's
// signal) reaches the reader through the decorated ViewChanges.
func TestAChangeOfAnotherProcessIsFoundAtARecheck(t *testing.T) {
	t.Parallel()
	v, p, r := wired(t, query.Recheck{Every: 5 * time.Millisecond})
	if err := p.Apply(t.Context(), change("p1", 1)); err != nil {
		t.Fatal(err)
	}

	results := get(t.Context(), r, "p1", 2)
	eventually(t, "the reader is waiting", func() bool { return v.reads.Load() > 0 })
	if _, err := v.PutCurrent(t.Context(), state("p1", 2)); err != nil {
		t.Fatal(err)
	}

	answered(t, results)
}

func TestAWatchIsClosedOnlyByItsPostsWriteAfterIt(t *testing.T) {
	t.Parallel()
	s := wakeup.New()
	w := s.Writer(memory.NewViews())
	c := s.Changes(never)

	if _, err := w.PutCurrent(t.Context(), state("p1", 1)); err != nil {
		t.Fatal(err)
	}
	changed, stop := c.Watch("p1")
	defer stop()
	other, stopOther := c.Watch("p2")
	defer stopOther()
	if closed(changed) {
		t.Fatal("a watch is closed by a write made before it")
	}
	if _, err := w.PutCurrent(t.Context(), state("p1", 1)); err != nil { // not stored: not newer
		t.Fatal(err)
	}
	eventually(t, "the watch is closed by the write", func() bool { return closed(changed) })
	if closed(other) {
		t.Error("a write of p1 closed the watch of p2")
	}
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
