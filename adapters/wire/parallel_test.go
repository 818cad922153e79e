package wire_test

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hexapost/adapters/wire"
)

type item struct {
	key string
	n   int
}

func TestInParallelKeepsEachKeysOrderAndBoundsConcurrency(t *testing.T) {
	t.Parallel()
	var items []item
	for n := range 60 {
		items = append(items, item{key: string(rune('a' + n%6)), n: n})
	}
	var (
		mu              sync.Mutex
		seen            = map[string][]int{}
		running, maxRun atomic.Int64
	)
	wire.InParallel(items, func(it item) string { return it.key }, 4, func(it item) {
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

	total := 0
	for k, ns := range seen {
		total += len(ns)
		if !slices.IsSorted(ns) {
			t.Errorf("key %s handled in the order %v, want the items' order", k, ns)
		}
	}
	if total != len(items) {
		t.Errorf("handled %d items, want %d", total, len(items))
	}
	if m := maxRun.Load(); m < 2 || m > 4 {
		t.Errorf("at most %d ran at once, want between 2 and the limit 4", m)
	}
}

func TestInParallelWithALimitOfOneRunsInOrder(t *testing.T) {
	t.Parallel()
	items := []item{{"a", 0}, {"b", 1}, {"a", 2}, {"c", 3}}
	var got []int
	wire.InParallel(items, func(it item) string { return it.key }, 1, func(it item) { got = append(got, it.n) })
	if !slices.Equal(got, []int{0, 1, 2, 3}) {
		t.Errorf("handled %v, want every item in order", got)
	}
}

func TestFollowingNamesTheLastLaterItemOfTheSameKey(t *testing.T) {
	t.Parallel()
	// "x" items are not handed over: they neither have nor are a following item.
	items := []item{{"a", 0}, {"b", 1}, {"a", 2}, {"x", 3}, {"a", 4}, {"b", 5}, {"c", 6}, {"a", 7}, {"x", 8}}
	items[7].key = "x" // the last "a" is not handed over: the one before it is the last
	got := wire.Following(items, func(it item) (string, bool) { return it.key, it.key != "x" })
	want := []int{4, 5, 4, -1, -1, -1, -1, -1, -1}
	if !slices.Equal(got, want) {
		t.Fatalf("Following = %v, want %v", got, want)
	}
}
