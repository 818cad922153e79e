package contract

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

// BenchmarkBusConsume measures how fast one subscriber drains a backlog of b.N changes of about
// 450 bytes on the wire, each of a post of its own, published before it subscribes, on the
// bus newBus returns. It reports the changes handled a second.
func BenchmarkBusConsume(b *testing.B, newBus func(b *testing.B) BusClient) {
	bus := newBus(b)
	changes := make([]ports.Change, b.N)
	for i := range changes {
		changes[i] = benchChange(newID(), 1)
	}
	for batch := range slices.Chunk(changes, 100) {
		if err := bus.Publish(b.Context(), batch); err != nil {
			b.Fatal(err)
		}
	}
	var handled atomic.Int64
	all := make(chan struct{})
	ctx, cancel := context.WithCancel(b.Context())
	defer cancel()
	b.ResetTimer()
	begin := time.Now()
	go func() {
		_ = bus.Subscribe(ctx, func(context.Context, ports.Change, *ports.Change) error {
			if handled.Add(1) == int64(b.N) {
				close(all)
			}
			return nil
		})
	}()
	select {
	case <-all:
	case <-time.After(time.Minute + time.Duration(b.N)*time.Millisecond):
		b.Fatalf("%d of %d changes handled", handled.Load(), b.N)
	}
	b.ReportMetric(float64(b.N)/time.Since(begin).Seconds(), "msgs/s")
}

// BenchmarkBusLatency measures how long a change takes from the start of its Publish to its
// handler, with b.N changes published one at a time at rate a second while one subscriber
// runs, on the bus newBus returns. It reports the p50 and p99 in milliseconds.
func BenchmarkBusLatency(b *testing.B, rate int, newBus func(b *testing.B) BusClient) {
	bus := newBus(b)
	var mu sync.Mutex
	sent := map[string]time.Time{}
	took := make([]time.Duration, 0, b.N)
	all := make(chan struct{})
	ctx, cancel := context.WithCancel(b.Context())
	defer cancel()
	go func() {
		_ = bus.Subscribe(ctx, func(_ context.Context, c ports.Change, _ *ports.Change) error {
			mu.Lock()
			defer mu.Unlock()
			if at, ok := sent[c.Event.ID]; ok {
				delete(sent, c.Event.ID)
				took = append(took, time.Since(at))
				if len(took) == b.N {
					close(all)
				}
			}
			return nil
		})
	}()
	b.ResetTimer()
	begin := time.Now()
	for i := range b.N {
		time.Sleep(time.Until(begin.Add(time.Duration(i) * time.Second / time.Duration(rate))))
		c := benchChange(newID(), 1)
		mu.Lock()
		sent[c.Event.ID] = time.Now()
		mu.Unlock()
		if err := bus.Publish(b.Context(), []ports.Change{c}); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-all:
	case <-time.After(time.Minute):
		b.Fatalf("%d of %d changes handled", len(took), b.N)
	}
	b.StopTimer()
	slices.Sort(took)
	at := func(q float64) float64 { return float64(took[int(q*float64(len(took)-1))].Microseconds()) / 1000 }
	b.ReportMetric(at(.50), "p50-ms")
	b.ReportMetric(at(.99), "p99-ms")
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
