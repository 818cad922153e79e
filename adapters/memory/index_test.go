package memory

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestKeyIndexAgreesWithASortedSlice runs random inserts and removes — in order and out of
// order, repeated and of missing keys, enough to split chunks and to merge them — on a keyIndex and on
// one sorted slice, and checks after each step that both hold the same keys in the same order,
// that a page after any cursor is the same, and that the chunks keep their shape.
func TestKeyIndexAgreesWithASortedSlice(t *testing.T) {
	t.Parallel()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	key := func(n int) listKey {
		return listKey{createdAt: base.Add(time.Duration(n/2) * time.Second), id: fmt.Sprintf("p%05d", n)}
	}
	for _, pattern := range []string{"newest first", "random"} {
		t.Run(pattern, func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(1, uint64(len(pattern))))
			var x keyIndex
			var want []listKey
			next := 0
			for step := range 20_000 {
				// Mostly inserts, then removes of keys the index holds (which empties and
				// merges chunks), then both at random.
				draining := step >= 8_000 && step < 11_000 && len(want) > 0
				var k listKey
				switch {
				case draining:
					k = want[rng.IntN(len(want))]
				case pattern == "newest first" && rng.IntN(10) < 8:
					k = key(next)
					next++
				default:
					k = key(rng.IntN(4 * indexChunk * 3))
				}
				i, found := slices.BinarySearchFunc(want, k, compareKeys)
				if draining || rng.IntN(3) == 0 {
					x.remove(k)
					if found {
						want = slices.Delete(want, i, i+1)
					}
				} else {
					x.insert(k)
					if !found {
						want = slices.Insert(want, i, k)
					}
				}
				if step%97 == 0 || step == 19_999 {
					checkIndex(t, &x, want, key(rng.IntN(4*indexChunk*3)))
				}
			}
			if len(x.chunks) < 3 {
				t.Errorf("the index ended with %d chunks; the test meant to split them", len(x.chunks))
			}
		})
	}
}

func checkIndex(t *testing.T, x *keyIndex, want []listKey, cursor listKey) {
	t.Helper()
	if x.len() != len(want) {
		t.Fatalf("len() = %d, want %d", x.len(), len(want))
	}
	var prev *listKey
	n := 0
	for c, chunk := range x.chunks {
		if len(chunk) == 0 || len(chunk) > indexChunk {
			t.Fatalf("chunk %d holds %d keys", c, len(chunk))
		}
		for i := range chunk {
			if prev != nil && compareKeys(*prev, chunk[i]) >= 0 {
				t.Fatalf("chunk %d key %d (%v) does not sort after the key before it (%v)", c, i, chunk[i], *prev)
			}
			prev = &chunk[i]
			n++
		}
	}
	if n != x.len() {
		t.Fatalf("the chunks hold %d keys, len() says %d", n, x.len())
	}
	all := slices.Collect(x.before(nil))
	if !slices.Equal(all, reversed(want)) {
		t.Fatalf("before(nil) = %d keys not in reverse sorted order", len(all))
	}
	end, found := slices.BinarySearchFunc(want, cursor, compareKeys)
	if got := slices.Collect(x.before(&cursor)); !slices.Equal(got, reversed(want[:end])) {
		t.Fatalf("before(%v) = %d keys, want the %d before it, newest first", cursor, len(got), end)
	}
	if all := slices.Collect(x.after(nil)); !slices.Equal(all, want) {
		t.Fatalf("after(nil) = %d keys not in sorted order", len(all))
	}
	start := end
	if found {
		start++
	}
	if got := slices.Collect(x.after(&cursor)); !slices.Equal(got, want[start:]) {
		t.Fatalf("after(%v) = %d keys, want the %d after it, oldest first", cursor, len(got), len(want)-start)
	}
}

func reversed(keys []listKey) []listKey {
	out := slices.Clone(keys)
	slices.Reverse(out)
	return out
}

// BenchmarkIndexRemoveOldest removes the oldest of about 100 000 keys and puts it back as the
// newest: a delete of an early post, which in one sorted slice moved every key after it.
func BenchmarkIndexRemoveOldest(b *testing.B) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var x keyIndex
	n := 0
	add := func() {
		x.insert(listKey{createdAt: base.Add(time.Duration(n) * time.Millisecond), id: fmt.Sprintf("p%09d", n)})
		n++
	}
	for range 100_000 {
		add()
	}
	for b.Loop() {
		x.remove(x.chunks[0][0])
		add()
	}
}
