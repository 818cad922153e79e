package contract

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"testing"

	"hexapost/core/post"
	"hexapost/core/projection"
	"hexapost/ports"
)

// BenchmarkAppend measures appending one change to a stream at its next version, from
// GOMAXPROCS goroutines each growing a stream of its own, on the store newStore returns. Run it
// per adapter and compare runs with benchstat.
func BenchmarkAppend(b *testing.B, newStore func(b *testing.B) ports.EventStore) {
	s := newStore(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		id := newID()
		for v := int64(0); pb.Next(); v++ {
			a := ports.Append{PostID: id, ExpectedVersion: v, Changes: []ports.Change{benchChange(id, v+1)}}
			if err := s.Append(b.Context(), a); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkApply measures the projector applying one change (history entry and version-guarded
// view), from GOMAXPROCS goroutines each projecting a post of its own, on the read model
// newViews returns.
func BenchmarkApply(b *testing.B, newViews func(b *testing.B) ViewsStore) {
	p := newProjector(newViews(b))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		id := newID()
		for v := int64(1); pb.Next(); v++ {
			if err := p.Apply(b.Context(), benchChange(id, v)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// benchChange is version v of post id: its creation for 1, a new title after that.
func benchChange(id string, v int64) ports.Change {
	title := fmt.Sprintf("title %d", v)
	e := post.Event{ID: newID(), PostID: id, Version: v, Type: post.EventUpdated, OccurredAt: epoch, Title: &title}
	if v == 1 {
		content, author := "body", "bench"
		e.Type, e.Content, e.AuthorName = post.EventCreated, &content, &author
	}
	return ports.Change{Event: e, State: post.State{ID: id, Version: v, Title: title, Content: "body",
		AuthorName: "bench", CreatedAt: epoch, UpdatedAt: epoch}}
}

// ReconcilePostsEnv names the variable that sets how many posts BenchmarkReconcilePass compares
// (default 1000).
const ReconcilePostsEnv = "HEXAPOST_BENCH_RECONCILE_POSTS"

// reconcilePage is how many posts one page of the comparison holds, as in a reconciliation pass.
const reconcilePage = 500

// BenchmarkReconcilePass measures one full comparison of a read model with the event store, as
// a reconciliation pass makes it: the heads of every post in pages of 500, walked alongside what
// the read model holds of every post. The posts (ReconcilePostsEnv, one to three versions
// each) are written to the store and projected to the read model once, before the timer starts,
// so -benchtime=1x measures one pass. Besides the time it reports the posts compared and the
// CPU time of this process per pass (cpu-ns/op); the servers' CPU is not in it.
func BenchmarkReconcilePass(b *testing.B, newStore func(*testing.B) HeadsStore, newViews func(*testing.B) VersionsStore) {
	n := 1000
	if v := os.Getenv(ReconcilePostsEnv); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("%s=%q: want a positive number of posts", ReconcilePostsEnv, v)
		}
	}
	store, views := newStore(b), newViews(b)
	fillForReconcile(b, store, views, n)

	cpu := processCPU()
	b.ResetTimer()
	for b.Loop() {
		posts, drifted := comparePass(b, store, views)
		if posts != n || drifted != 0 {
			b.Fatalf("the pass compared %d posts and found %d drifted, want %d and none", posts, drifted, n)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(n), "posts/op")
}

// fillForReconcile appends n posts of one to three versions each and projects every change,
// several posts at a time.
func fillForReconcile(b *testing.B, store ports.EventStore, views ports.ViewWriter, n int) {
	b.Helper()
	p := newProjector(views)
	inParallel(16, make([]struct{}, n), func(i int, _ struct{}) {
		id := newID()
		changes := make([]ports.Change, 1+i%3)
		for v := range changes {
			changes[v] = benchChange(id, int64(v+1))
		}
		if err := store.Append(b.Context(), ports.Append{PostID: id, Changes: changes}); err != nil {
			b.Errorf("append %s: %v", id, err)
			return
		}
		for _, c := range changes {
			if err := p.Apply(b.Context(), c); err != nil {
				b.Errorf("apply %s v%d: %v", id, c.Event.Version, err)
				return
			}
		}
	})
	if b.Failed() {
		b.FailNow()
	}
}

// inParallel calls f with each item and its index, from workers goroutines at once.
func inParallel[T any](workers int, items []T, f func(int, T)) {
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				f(i, items[i])
			}
		})
	}
	for i := range items {
		next <- i
	}
	close(next)
	wg.Wait()
}

// comparePass is the comparison of a reconciliation pass, the real one: the store's heads
// alongside the read model's versions. It returns the posts compared and those found drifted.
func comparePass(b *testing.B, store HeadsStore, views VersionsStore) (posts, drifted int) {
	b.Helper()
	r := projection.NewReconciler(store, store, views, nil, newProjector(views), slog.New(slog.DiscardHandler), nil,
		projection.ReconcileConfig{Page: reconcilePage, LockName: "bench"})
	posts, drift, err := r.Check(b.Context())
	if err != nil {
		b.Fatalf("comparison: %v", err)
	}
	return posts, len(drift)
}
