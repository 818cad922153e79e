package memory

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"hexapost/core/post"
	"hexapost/ports"
)

// Views is the read model in process memory: the current view of every post, its history, and
// the list order kept as sorted indexes so that a page costs a binary search and the page
// itself, not a sort of every post.
//
// The indexes are sorted slices, oldest first, read backwards for a page: a new post (ids and
// creation times grow) is appended at the end, and only deleting a post moves the entries
// after it.
type Views struct {
	mu    sync.RWMutex
	posts map[string]*postViews
	// live lists the posts that are not deleted, oldest first; byAuthor the same per author.
	live     []listKey
	byAuthor map[string][]listKey
}

// postViews is what the read model holds of one post. One map entry per post, pointing here,
// keeps the map's slots small: a read model that grows under a load of creates copies them
// each time a table of the map splits.
type postViews struct {
	current post.State // Version 0 until the first view is stored
	// history holds the post's entries sorted by version.
	history []ports.HistoryEntry
}

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

var (
	_ ports.ViewWriter = (*Views)(nil)
	_ ports.ViewReader = (*Views)(nil)
	_ ports.Pinger     = (*Views)(nil)
)

// NewViews returns an empty read model. It has nothing to configure.
func NewViews() *Views {
	return &Views{
		posts:    map[string]*postViews{},
		byAuthor: map[string][]listKey{},
	}
}

// PutCurrent stores s if its version is higher than the stored one and reports whether it did.
// The check and the write happen under one lock, so concurrent projectors cannot go backwards.
func (v *Views) PutCurrent(_ context.Context, s post.State) (bool, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	p := v.post(s.ID)
	old, ok := p.current, p.current.Version > 0
	if s.Version <= old.Version {
		return false, nil
	}
	p.current = s
	if ok && !old.Deleted && !s.Deleted && old.AuthorName == s.AuthorName {
		return true, nil // same place in every index
	}
	if ok && !old.Deleted {
		v.unindex(old)
	}
	if !s.Deleted {
		v.index(s)
	}
	return true, nil
}

func (v *Views) index(s post.State) {
	k := listKey{createdAt: s.CreatedAt, id: s.ID}
	v.live = insertKey(v.live, k)
	v.byAuthor[s.AuthorName] = insertKey(v.byAuthor[s.AuthorName], k)
}

func (v *Views) unindex(s post.State) {
	k := listKey{createdAt: s.CreatedAt, id: s.ID}
	v.live = removeKey(v.live, k)
	if keys := removeKey(v.byAuthor[s.AuthorName], k); len(keys) > 0 {
		v.byAuthor[s.AuthorName] = keys
	} else {
		delete(v.byAuthor, s.AuthorName)
	}
}

func insertKey(keys []listKey, k listKey) []listKey {
	if n := len(keys); n == 0 || compareKeys(keys[n-1], k) < 0 {
		return append(keys, k) // the usual case: the newest post
	}
	i, found := slices.BinarySearchFunc(keys, k, compareKeys)
	if found {
		return keys
	}
	return slices.Insert(keys, i, k)
}

func removeKey(keys []listKey, k listKey) []listKey {
	i, found := slices.BinarySearchFunc(keys, k, compareKeys)
	if !found {
		return keys
	}
	return slices.Delete(keys, i, i+1)
}

// PutHistory stores h under (post id, version) unless that version is stored already.
func (v *Views) PutHistory(_ context.Context, h ports.HistoryEntry) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	p := v.post(h.State.ID)
	i, found := slices.BinarySearchFunc(p.history, h.State.Version, func(e ports.HistoryEntry, version int64) int {
		return cmp.Compare(e.State.Version, version)
	})
	if !found {
		p.history = slices.Insert(p.history, i, h)
	}
	return nil
}

// post returns what the read model holds of the post, adding it if it holds nothing yet. The
// caller holds v.mu for writing.
func (v *Views) post(id string) *postViews {
	p := v.posts[id]
	if p == nil {
		p = &postViews{}
		v.posts[id] = p
	}
	return p
}

// Get returns the post's current view, deleted or not; ports.ErrNotFound if there is none.
func (v *Views) Get(_ context.Context, id string) (post.State, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	p := v.posts[id]
	if p == nil || p.current.Version == 0 {
		return post.State{}, fmt.Errorf("memory: view of post %s: %w", id, ports.ErrNotFound)
	}
	return p.current, nil
}

// List returns up to q.Limit live posts in list order, strictly after q.After, of q.AuthorName
// when it is given. A page starts where the cursor's key would sort, whether or not that post
// still exists, so posts inserted before the cursor never shift later pages.
func (v *Views) List(_ context.Context, q ports.ListQuery) ([]post.State, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	keys := v.live
	if q.AuthorName != "" {
		keys = v.byAuthor[q.AuthorName]
	}
	// The page is keys[start:end] read backwards: the newest ones older than the cursor.
	end := len(keys)
	if q.After != nil {
		end, _ = slices.BinarySearchFunc(keys, listKey{createdAt: q.After.CreatedAt, id: q.After.ID}, compareKeys)
	}
	start := end - min(max(q.Limit, 0), end)
	out := make([]post.State, 0, end-start)
	for i := end - 1; i >= start; i-- {
		out = append(out, v.posts[keys[i].id].current)
	}
	return out, nil
}

// History returns the post's stored versions, oldest first; ports.ErrNotFound if there are none.
func (v *Views) History(_ context.Context, id string) ([]ports.HistoryEntry, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	var entries []ports.HistoryEntry
	if p := v.posts[id]; p != nil {
		entries = p.history
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("memory: history of post %s: %w", id, ports.ErrNotFound)
	}
	return slices.Clone(entries), nil
}

// Ping always succeeds: memory is always reachable.
func (v *Views) Ping(context.Context) error { return nil }
