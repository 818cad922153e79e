package memory

import (
	"context"

	"hexapost/core/post"
)

// EraseHistory redacts every history entry of the post. A memory read model has no other
// generation.
func (v *Views) EraseHistory(_ context.Context, postID string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.redact(postID)
	return nil
}

// redact redacts every history entry of the post. The caller holds v.mu for writing.
func (v *Views) redact(postID string) {
	if p := v.posts[postID]; p != nil {
		for i := range p.history {
			p.history[i].State = p.history[i].State.Redacted()
		}
	}
}

// erase removes the personal data of the post's events, of its outbox entries and of the
// idempotency records that answer with its state, whose fingerprints are digests of it. The
// caller holds s.mu, which makes this part of the append.
func (s *EventStore) erase(postID string) {
	for _, at := range s.streams[postID] {
		s.all.set(at, s.all.at(at).Redacted())
	}
	for _, e := range s.pending {
		if e.change.Event.PostID == postID {
			e.change.Event, e.change.State = e.change.Event.Redacted(), e.change.State.Redacted()
		}
	}
	for k, r := range s.keys {
		if r.rec.State.ID == postID {
			r.rec.State, r.rec.Fingerprint = r.rec.State.Redacted(), ""
			s.keys[k] = r
		}
	}
}

// set replaces the event at index i, 0 ≤ i < len.
func (l *eventLog) set(i int64, e post.Event) { l.chunks[i/logChunk][i%logChunk] = e }

// PostsOf returns the ids of the posts whose events name authorName, in id order after after.
// It looks at every event after after's stream: a memory store is small.
func (s *EventStore) PostsOf(_ context.Context, authorName, after string, limit int) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	var from *listKey
	if after != "" {
		from = &listKey{id: after}
	}
	for k := range s.ids.after(from) {
		if len(ids) >= limit {
			break
		}
		for _, at := range s.streams[k.id] {
			if a := s.all.at(at).AuthorName; a != nil && *a == authorName {
				ids = append(ids, k.id)
				break
			}
		}
	}
	return ids, nil
}
