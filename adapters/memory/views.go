package memory

import (
	"cmp"
	"context"
	"fmt"
	"iter"
	"slices"
	"sort"
	"sync"

	"hexapost/core/post"
	"hexapost/ports"
)

// Views is the read model in process memory: the current view of every post, its history, and
// the list order kept as sorted indexes so that a page costs a binary search and the page
// itself, not a sort of every post.
//
// The indexes are sorted oldest first and read backwards for a page: a new post (ids and
// creation times grow) goes at the end. They are kept in chunks (keyIndex), so neither a delete
// nor growth moves more than a chunk of them.
type Views struct {
	mu    sync.RWMutex
	posts map[string]*postViews
	// live lists the posts that are not deleted, oldest first; byAuthor the same per author.
	live     keyIndex
	byAuthor map[string]*keyIndex
}

// postViews is what the read model holds of one post. One map entry per post, pointing here,
// keeps the map's slots small: a read model that grows under a load of creates copies them
// each time a table of the map splits.
type postViews struct {
	current post.State // Version 0 until the first view is stored
	// history holds the post's entries sorted by version.
	history []ports.HistoryEntry
}

var (
	_ ports.ViewWriter   = (*Views)(nil)
	_ ports.ViewReader   = (*Views)(nil)
	_ ports.Pinger       = (*Views)(nil)
	_ ports.ViewVersions = (*Views)(nil)
)

// NewViews returns an empty read model. It has nothing to configure.
func NewViews() *Views {
	return &Views{
		posts:    map[string]*postViews{},
		byAuthor: map[string]*keyIndex{},
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
		if old.Erased {
			v.redact(s.ID) // the caller may have stored an older version's entry just before
		}
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
	v.live.insert(k)
	author := v.byAuthor[s.AuthorName]
	if author == nil {
		author = &keyIndex{}
		v.byAuthor[s.AuthorName] = author
	}
	author.insert(k)
}

func (v *Views) unindex(s post.State) {
	k := listKey{createdAt: s.CreatedAt, id: s.ID}
	v.live.remove(k)
	if author := v.byAuthor[s.AuthorName]; author != nil {
		author.remove(k)
		if author.len() == 0 {
			delete(v.byAuthor, s.AuthorName)
		}
	}
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
	keys := &v.live
	if q.AuthorName != "" {
		keys = v.byAuthor[q.AuthorName]
	}
	limit := max(q.Limit, 0)
	if keys == nil || limit == 0 {
		return []post.State{}, nil
	}
	// The page: the newest keys older than the cursor.
	var after *listKey
	if q.After != nil {
		after = &listKey{createdAt: q.After.CreatedAt, id: q.After.ID}
	}
	out := make([]post.State, 0, min(limit, keys.len()))
	for k := range keys.before(after) {
		out = append(out, v.posts[k.id].current)
		if len(out) == limit {
			break
		}
	}
	return out, nil
}

// History returns up to q.Limit of the post's stored versions above q.After, oldest first;
// ports.ErrNotFound if it has none at all.
func (v *Views) History(_ context.Context, id string, q ports.HistoryQuery) ([]ports.HistoryEntry, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	var entries []ports.HistoryEntry
	if p := v.posts[id]; p != nil {
		entries = p.history
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("memory: history of post %s: %w", id, ports.ErrNotFound)
	}
	from := sort.Search(len(entries), func(i int) bool { return entries[i].State.Version > q.After })
	to := from + min(max(q.Limit, 0), len(entries)-from)
	return slices.Clone(entries[from:to]), nil
}

// Versions yields what the read model holds of each post, in id order, as it was when the
// walk began.
func (v *Views) Versions(ctx context.Context) iter.Seq2[ports.ViewVersion, error] {
	return func(yield func(ports.ViewVersion, error) bool) {
		v.mu.RLock()
		held := make([]ports.ViewVersion, 0, len(v.posts))
		for id, p := range v.posts {
			if p.current.Version > 0 || len(p.history) > 0 {
				held = append(held, ports.ViewVersion{PostID: id, Current: p.current.Version, History: int64(len(p.history))})
			}
		}
		v.mu.RUnlock()
		slices.SortFunc(held, func(a, b ports.ViewVersion) int { return cmp.Compare(a.PostID, b.PostID) })
		for _, h := range held {
			if err := ctx.Err(); err != nil {
				yield(ports.ViewVersion{}, err)
				return
			}
			if !yield(h, nil) {
				return
			}
		}
	}
}

// Ping always succeeds: memory is always reachable.
func (v *Views) Ping(context.Context) error { return nil }
