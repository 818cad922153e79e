package contract

import (
	"fmt"
	"testing"

	"hexapost/core/post"
	"hexapost/ports"
)

// BenchmarkAppend measures appending one change to a stream at its next version, from
// GOMAXPROCS goroutines each growing a stream of its own, on the store newStore returns. Run it
// per adapter and compare runs with benchstat.
func BenchmarkAppend(b *testing.B, newStore func(b *testing.B) ports.EventStore) {
	s := newStore(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		id := newID()
		for v := int64(0); pb.Next(); v++ {
			a := ports.Append{PostID: id, ExpectedVersion: v, Changes: []ports.Change{benchChange(id, v+1)}}
			if err := s.Append(b.Context(), a); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkApply measures the projector applying one change (history entry and version-guarded
// view), from GOMAXPROCS goroutines each projecting a post of its own, on the read model
// newViews returns.
func BenchmarkApply(b *testing.B, newViews func(b *testing.B) ViewsStore) {
	p := newProjector(newViews(b))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		id := newID()
		for v := int64(1); pb.Next(); v++ {
			if err := p.Apply(b.Context(), benchChange(id, v)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// benchChange is version v of post id: its creation for 1, a new title after that.
func benchChange(id string, v int64) ports.Change {
	title := fmt.Sprintf("title %d", v)
	e := post.Event{ID: newID(), PostID: id, Version: v, Type: post.EventUpdated, OccurredAt: epoch, Title: &title}
	if v == 1 {
		content, author := "body", "bench"
		e.Type, e.Content, e.AuthorName = post.EventCreated, &content, &author
	}
	return ports.Change{Event: e, State: post.State{ID: id, Version: v, Title: title, Content: "body",
		AuthorName: "bench", CreatedAt: epoch, UpdatedAt: epoch}}
}
