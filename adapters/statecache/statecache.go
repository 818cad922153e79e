// Package statecache keeps the latest state of the posts commanded recently in front of a
// ports.PostStore, so that loading a post with a long history reads only the events appended
// since its state was kept (usually none) instead of its whole stream.
//
// A kept state is a state the post really had, and events are never changed or removed, so a
// kept state is never wrong, only perhaps behind. A Load that need not be current answers from
// it without reading anything: an append at its version confirms it, and a state another
// process overtook costs a conflict. A current Load brings it up to date from the event store,
// reading only the events that followed it.
package statecache

import (
	"context"
	"sync"

	"hexapost/core/post"
	"hexapost/ports"
)

// Config tunes the cache; zero values take the defaults.
type Config struct {
	// Size bounds how many posts' states are kept (default 65 536).
	Size int
}

// Store is a ports.PostStore that answers Loads from the states it keeps, brought up to date
// from the event store, and learns each post's new state from the appends made through it.
// A post it does not know is loaded through the PostStore it decorates. Answered from a kept
// state, a Load does not pass through that PostStore: a decorator that must see every Load
// (one that holds Loads back) goes in front of this one.
type Store struct {
	next   ports.PostStore
	events ports.EventLoader
	half   int

	// The states are kept in two generations of at most half each: a state is put in recent,
	// and when recent is full, older is dropped and recent becomes older. So the posts
	// commanded least recently go first, and a full map is cleared and reused, never left to
	// rehash the tombstones of one eviction at a time.
	mu            sync.Mutex
	recent, older map[string]post.State
}

var _ ports.PostStore = (*Store)(nil)

// New returns a Store in front of next that reads the events that followed a kept state from
// events, which must be the store next appends to.
func New(next ports.PostStore, events ports.EventLoader, cfg Config) *Store {
	if cfg.Size <= 0 {
		cfg.Size = 1 << 16
	}
	half := max(cfg.Size/2, 1)
	return &Store{
		next: next, events: events, half: half,
		recent: map[string]post.State{}, older: map[string]post.State{},
	}
}

// Load returns the post's kept state, without reading anything, or, when current, the kept
// state with the events that followed it applied; for a post it does not know, the post as
// next loads it.
func (s *Store) Load(ctx context.Context, id string, current bool) (*post.Post, func(), error) {
	kept, ok := s.get(id)
	if !ok {
		return s.loadWhole(ctx, id)
	}
	if !current {
		return post.FromState(kept), func() {}, nil
	}
	since, err := s.events.Load(ctx, id, kept.Version)
	if err != nil {
		return nil, nil, err
	}
	p := post.FromState(kept)
	if err := p.Apply(since...); err != nil {
		// The events do not follow the kept state: trust the stream alone.
		s.forget(id)
		return s.loadWhole(ctx, id)
	}
	if len(since) > 0 {
		s.put(p.State())
	}
	return p, func() {}, nil
}

func (s *Store) loadWhole(ctx context.Context, id string) (*post.Post, func(), error) {
	p, release, err := s.next.Load(ctx, id, true)
	if err != nil {
		return nil, nil, err
	}
	if p.Exists() {
		s.put(p.State())
	}
	return p, release, nil
}

// Append appends through next and, once it succeeded, keeps the state after its last change.
// A failed append changes nothing kept: whatever it left in the store, the next Load reads.
func (s *Store) Append(ctx context.Context, a ports.Append) error {
	if err := s.next.Append(ctx, a); err != nil {
		return err
	}
	if n := len(a.Changes); n > 0 {
		s.put(a.Changes[n-1].State)
	}
	return nil
}

func (s *Store) get(id string) (post.State, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.recent[id]; ok {
		return st, true
	}
	st, ok := s.older[id]
	return st, ok
}

// put keeps st unless a later state of the post is kept already: concurrent commands may
// report their states out of order.
func (s *Store) put(st post.State) {
	s.mu.Lock()
	defer s.mu.Unlock()
	kept, inRecent := s.recent[st.ID]
	if !inRecent {
		kept = s.older[st.ID]
	}
	if kept.Version >= st.Version {
		return
	}
	if !inRecent && len(s.recent) >= s.half {
		s.recent, s.older = s.older, s.recent
		clear(s.recent)
	}
	delete(s.older, st.ID)
	s.recent[st.ID] = st
}

func (s *Store) forget(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.recent, id)
	delete(s.older, id)
}
