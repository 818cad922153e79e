package memory

import (
	"cmp"
	"iter"
	"slices"
	"time"
)

// listKey is a post's place in the list order.
type listKey struct {
	createdAt time.Time
	id        string
}

// compareKeys orders keys oldest first, then by id; lists show them in the reverse order.
func compareKeys(a, b listKey) int {
	if c := a.createdAt.Compare(b.createdAt); c != 0 {
		return c
	}
	return cmp.Compare(a.id, b.id)
}

// indexChunk is the most keys one chunk of a keyIndex holds.
const indexChunk = 512

// keyIndex is a sorted set of list keys, oldest first, kept in chunks of at most indexChunk
// keys, as the event log is: an insert or a delete moves the keys of one chunk, not of the
// whole index, and growing never copies the index into a twice larger array. (One sorted
// slice made deleting an early post cost a move of every later key, and every doubling a copy
// of all of them into fresh memory, under the read model's lock.)
type keyIndex struct {
	// chunks are sorted and none is empty; every key of a chunk sorts before those of the next.
	chunks [][]listKey
	n      int
}

// len returns how many keys the index holds.
func (x *keyIndex) len() int { return x.n }

// locate returns where k is, found, or would be inserted: chunk c at index i, i possibly the
// chunk's length. An empty index has no chunk to point to, and returns c = -1.
func (x *keyIndex) locate(k listKey) (c, i int, found bool) {
	if len(x.chunks) == 0 {
		return -1, 0, false
	}
	if last := x.chunks[len(x.chunks)-1]; compareKeys(last[len(last)-1], k) < 0 {
		return len(x.chunks) - 1, len(last), false // the usual case: the newest post
	}
	// The first chunk whose first key sorts after k; k belongs in the one before it.
	c, _ = slices.BinarySearchFunc(x.chunks, k, func(chunk []listKey, k listKey) int {
		if compareKeys(chunk[0], k) <= 0 {
			return -1
		}
		return 1
	})
	c = max(c-1, 0)
	i, found = slices.BinarySearchFunc(x.chunks[c], k, compareKeys)
	return c, i, found
}

// insert adds k unless the index holds it already.
func (x *keyIndex) insert(k listKey) {
	c, i, found := x.locate(k)
	switch {
	case found:
		return
	case c < 0:
		x.chunks = [][]listKey{{k}}
		x.n++
		return
	}
	chunk := x.chunks[c]
	if len(chunk) == indexChunk {
		if c == len(x.chunks)-1 && i == len(chunk) {
			// A new post starts the next chunk: an index that has filled one gets chunks of
			// full size at once, instead of growing each from one key.
			x.chunks = append(x.chunks, append(make([]listKey, 0, indexChunk), k))
			x.n++
			return
		}
		// Split the full chunk in two halves and insert into the one k belongs to.
		upper := slices.Clone(chunk[indexChunk/2:])
		clear(chunk[indexChunk/2:])
		chunk = chunk[:indexChunk/2]
		x.chunks[c] = chunk
		x.chunks = slices.Insert(x.chunks, c+1, upper)
		if i > len(chunk) {
			c, i, chunk = c+1, i-len(chunk), upper
		}
	}
	x.chunks[c] = slices.Insert(chunk, i, k)
	x.n++
}

// remove deletes k if the index holds it. A chunk left empty goes; one left a quarter full is
// merged into a neighbour with room for it, so deletes do not leave the index a long list of
// nearly empty chunks.
func (x *keyIndex) remove(k listKey) {
	c, i, found := x.locate(k)
	if !found {
		return
	}
	chunk := slices.Delete(x.chunks[c], i, i+1)
	x.chunks[c] = chunk
	x.n--
	switch {
	case len(chunk) == 0:
		x.chunks = slices.Delete(x.chunks, c, c+1)
	case len(chunk) < indexChunk/4 && c > 0 && len(x.chunks[c-1])+len(chunk) <= indexChunk:
		x.chunks[c-1] = append(x.chunks[c-1], chunk...)
		x.chunks = slices.Delete(x.chunks, c, c+1)
	case len(chunk) < indexChunk/4 && c+1 < len(x.chunks) && len(x.chunks[c+1])+len(chunk) <= indexChunk:
		x.chunks[c] = append(chunk, x.chunks[c+1]...)
		x.chunks = slices.Delete(x.chunks, c+1, c+2)
	}
}

// after yields the keys that sort after k, or all of them when k is nil, oldest first.
func (x *keyIndex) after(k *listKey) iter.Seq[listKey] {
	return func(yield func(listKey) bool) {
		c, start := 0, 0
		if k != nil {
			var found bool
			c, start, found = x.locate(*k)
			if found {
				start++
			}
		}
		for ; c >= 0 && c < len(x.chunks); c++ {
			for _, key := range x.chunks[c][start:] {
				if !yield(key) {
					return
				}
			}
			start = 0 // every key of a later chunk
		}
	}
}

// before yields the keys that sort before k, or all of them when k is nil, newest first.
func (x *keyIndex) before(k *listKey) iter.Seq[listKey] {
	return func(yield func(listKey) bool) {
		c := len(x.chunks) - 1
		if c < 0 {
			return
		}
		end := len(x.chunks[c])
		if k != nil {
			c, end, _ = x.locate(*k)
		}
		for ; c >= 0; c-- {
			chunk := x.chunks[c]
			for i := min(end, len(chunk)) - 1; i >= 0; i-- {
				if !yield(chunk[i]) {
					return
				}
			}
			end = indexChunk // every key of an earlier chunk
		}
	}
}
