package delivery

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type item struct {
	key string
	n   int
}

// handedUnlessX hands every item over but those of key "x".
func handedUnlessX(it item) (string, bool) { return it.key, it.key != "x" }

func TestLanesKeepEachKeysOrderAndBoundConcurrency(t *testing.T) {
	t.Parallel()
	var (
		mu              sync.Mutex
		seen            = map[string][]int{}
		running, maxRun atomic.Int64
	)
	lanes := newLanes(4, handedUnlessX, func(it item, _ *item) {
		now := running.Add(1)
		for {
			old := maxRun.Load()
			if now <= old || maxRun.CompareAndSwap(old, now) {
				break
			}
		}
		time.Sleep(time.Millisecond) // long enough for the others to overlap, if they may
		mu.Lock()
		seen[it.key] = append(seen[it.key], it.n)
		mu.Unlock()
		running.Add(-1)
	})
	// Added in three parts, as a subscriber adds what each read brings.
	for part := range 3 {
		var items []item
		for n := part * 20; n < (part+1)*20; n++ {
			items = append(items, item{key: string(rune('a' + n%6)), n: n})
		}
		lanes.Add(items...)
	}
	lanes.Wait()

	total := 0
	for k, ns := range seen {
		total += len(ns)
		if !slices.IsSorted(ns) {
			t.Errorf("key %s handled in the order %v, want the order added", k, ns)
		}
	}
	if total != 60 {
		t.Errorf("handled %d items, want 60", total)
	}
	if m := maxRun.Load(); m < 2 || m > 4 {
		t.Errorf("at most %d ran at once, want between 2 and the limit 4", m)
	}
	if held := lanes.Held(); held != 0 {
		t.Errorf("Held() = %d after Wait, want 0", held)
	}
}

func TestLanesASlowItemHoldsUpOnlyItsOwnKey(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	handled := make(chan item, 10)
	lanes := newLanes(4, handedUnlessX, func(it item, _ *item) {
		if it.key == "slow" {
			<-release
		}
		handled <- it
	})
	lanes.Add(item{"slow", 0}, item{"b", 1}, item{"slow", 2})
	// Added after the first ones, as the next read's changes are, while "slow" is still at work
	// (from another goroutine, so that an Add that waited for the slow item would fail the test
	// rather than hang it).
	go lanes.Add(item{"c", 3}, item{"b", 4})
	var got []int
	for range 3 {
		select {
		case it := <-handled:
			got = append(got, it.n)
		case <-time.After(10 * time.Second):
			t.Fatalf("handled %v while the slow item was at work, want items 1, 3 and 4 as well", got)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, []int{1, 3, 4}) {
		t.Errorf("handled %v while the slow item was at work, want [1 3 4]", got)
	}
	// A lane lets go of an item just after its handler returned, so the count is waited for.
	for deadline := time.Now().Add(10 * time.Second); lanes.Held() != 2 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if held := lanes.Held(); held != 2 {
		t.Errorf("Held() = %d, want the 2 items of the slow key", held)
	}
	close(release)
	lanes.Wait()
	if first, second := <-handled, <-handled; first.n != 0 || second.n != 2 {
		t.Errorf("the slow key's items were handled as %d, %d; want 0, 2", first.n, second.n)
	}
}

func TestLanesTellTheLastHandedItemWaitingBehindOfTheSameKey(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var (
		mu    sync.Mutex
		later = map[int]int{} // item → the item said to follow it, -1 for none
	)
	lanes := newLanes(1, func(it item) (string, bool) { return it.key, it.n != 5 }, func(it item, l *item) {
		if it.n == 0 {
			<-release // the others wait behind it, so each sees those added after it
		}
		mu.Lock()
		defer mu.Unlock()
		later[it.n] = -1
		if l != nil {
			later[it.n] = l.n
		}
	})
	lanes.Add(item{"first", 0})
	// Item 5 is not handed over: it is never said to follow.
	lanes.Add(item{"a", 1}, item{"b", 2}, item{"a", 3}, item{"a", 4})
	lanes.Add(item{"b", 6}, item{"a", 5}, item{"c", 7})
	close(release)
	lanes.Wait()
	want := map[int]int{0: -1, 1: 4, 2: 6, 3: 4, 4: -1, 5: -1, 6: -1, 7: -1}
	for n, w := range want {
		if got, ok := later[n]; !ok || got != w {
			t.Errorf("item %d: told that item %d follows (handled %t), want %d (-1: none)", n, got, ok, w)
		}
	}
}

func TestLanesWaitBelowReturnsOnceFewerAreHeld(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	lanes := newLanes(1, handedUnlessX, func(item, *item) { <-release })
	lanes.Add(item{"a", 0}, item{"b", 1}, item{"c", 2})
	returned := make(chan struct{})
	go func() {
		lanes.WaitBelow(3)
		close(returned)
	}()
	select {
	case <-returned:
		t.Fatal("WaitBelow(3) returned while 3 items were held")
	case <-time.After(50 * time.Millisecond):
	}
	release <- struct{}{}
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatal("WaitBelow(3) did not return once an item was finished")
	}
	if held := lanes.Held(); held != 2 {
		t.Errorf("Held() = %d, want 2", held)
	}
	close(release)
	lanes.Wait()
}
