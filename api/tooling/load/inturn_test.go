package load

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

func TestInTurnCallsEveryIndexOnceWithinTheBound(t *testing.T) {
	t.Parallel()
	const n, workers = 200, 4
	var (
		mu              sync.Mutex
		calls           = map[int]int{}
		running, maxRun atomic.Int64
	)
	err := inTurn(n, workers, func(i int) error {
		now := running.Add(1)
		defer running.Add(-1)
		for {
			old := maxRun.Load()
			if now <= old || maxRun.CompareAndSwap(old, now) {
				break
			}
		}
		mu.Lock()
		defer mu.Unlock()
		calls[i]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if calls[i] != 1 {
			t.Errorf("index %d called %d times, want once", i, calls[i])
		}
	}
	if len(calls) != n {
		t.Errorf("%d indexes called, want %d", len(calls), n)
	}
	if m := maxRun.Load(); m > workers {
		t.Errorf("%d calls ran at once, want at most %d", m, workers)
	}
}

func TestInTurnReturnsTheFirstErrorAndBeginsNoIndexAfterIt(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	var calls atomic.Int64
	// One worker, so the order is the indexes' order.
	err := inTurn(10, 1, func(i int) error {
		calls.Add(1)
		if i == 3 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) {
		t.Errorf("inTurn returned %v, want %v", err, boom)
	}
	if c := calls.Load(); c != 4 {
		t.Errorf("f called %d times, want 4: indexes 0-3, none after the error", c)
	}
	if err := inTurn(0, 4, func(int) error { return boom }); err != nil {
		t.Errorf("inTurn over no index returned %v, want nil", err)
	}
}
