package batch_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hexapost/ports/batch"
)

func TestEveryCallGetsItsOwnResult(t *testing.T) {
	var batches atomic.Int64
	g := batch.New(8, 2, func(in []int) []int {
		batches.Add(1)
		out := make([]int, len(in))
		for i, v := range in {
			out[i] = v * 10
		}
		return out
	})
	const n = 500
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			got, err := g.Do(t.Context(), i)
			if err != nil || got != i*10 {
				t.Errorf("Do(%d) = %d, %v; want %d", i, got, err, i*10)
			}
		})
	}
	wg.Wait()
	t.Logf("%d calls in %d batches", n, batches.Load())
}

func TestCallsArrivingDuringABatchShareTheNext(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var sizes []int
	g := batch.New(100, 1, func(in []int) []int {
		mu.Lock()
		sizes = append(sizes, len(in))
		first := len(sizes) == 1
		mu.Unlock()
		if first {
			<-release
		}
		return make([]int, len(in))
	})
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = g.Do(t.Context(), 0) })
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(sizes) == 1 })
	for i := range 5 {
		wg.Go(func() { _, _ = g.Do(t.Context(), i+1) })
	}
	waitFor(t, func() bool { return g.Queued() == 5 })
	close(release)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(sizes) != 2 || sizes[0] != 1 || sizes[1] != 5 {
		t.Errorf("batch sizes %v, want [1 5]: the calls that waited run together", sizes)
	}
}

func TestBatchesAreCappedAndRunUpToSlotsAtOnce(t *testing.T) {
	release := make(chan struct{})
	var running, most atomic.Int64
	var mu sync.Mutex
	largest := 0
	g := batch.New(3, 2, func(in []int) []int {
		now := running.Add(1)
		for {
			m := most.Load()
			if now <= m || most.CompareAndSwap(m, now) {
				break
			}
		}
		mu.Lock()
		largest = max(largest, len(in))
		mu.Unlock()
		<-release
		running.Add(-1)
		return make([]int, len(in))
	})
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() { _, _ = g.Do(t.Context(), i) })
	}
	waitFor(t, func() bool { return running.Load() == 2 })
	close(release)
	wg.Wait()
	if most.Load() != 2 {
		t.Errorf("%d batches ran at once, want 2", most.Load())
	}
	if largest != 3 {
		t.Errorf("largest batch %d, want 3", largest)
	}
}

func TestACallCancelledBeforeItsBatchIsWithdrawn(t *testing.T) {
	release := make(chan struct{})
	var ran sync.Map
	g := batch.New(10, 1, func(in []int) []int {
		for _, v := range in {
			ran.Store(v, true)
		}
		if _, ok := ran.Load(0); ok && len(in) == 1 && in[0] == 0 {
			<-release
		}
		return make([]int, len(in))
	})
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = g.Do(t.Context(), 0) })
	waitFor(t, func() bool { _, ok := ran.Load(0); return ok })
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { _, err := g.Do(ctx, 1); errc <- err }()
	waitFor(t, func() bool { return g.Queued() == 1 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled call returned %v, want context.Canceled", err)
	}
	close(release)
	wg.Wait()
	if _, ok := ran.Load(1); ok {
		t.Error("the withdrawn call ran")
	}
}

func TestACallWhoseContextHasEndedNeverRuns(t *testing.T) {
	var ran atomic.Int64
	g := batch.New(10, 1, func(in []int) []int {
		ran.Add(int64(len(in)))
		return make([]int, len(in))
	})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for i := range 100 {
		if _, err := g.Do(ctx, i); !errors.Is(err, context.Canceled) {
			t.Fatalf("Do with an ended context returned %v, want context.Canceled", err)
		}
	}
	if n := ran.Load(); n != 0 {
		t.Errorf("%d calls with an ended context ran", n)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not reached within 5s")
}
