package memory

import (
	"context"
	"slices"

	"hexapost/adapters/wire"
	"hexapost/core/post"
	"hexapost/ports"
)

var _ ports.BusEraser = (*Bus)(nil)

// EraseFromBus removes the queued messages and the dead letters of the posts that are not their
// erasure. A message waiting out a retry delay is not in the queue: it is delivered once more.
func (b *Bus) EraseFromBus(_ context.Context, postIDs []string) (int, error) {
	erased := wire.PostSet(postIDs)
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(b.queue) + len(b.dead)
	b.queue = slices.DeleteFunc(b.queue, func(m *message) bool {
		if m.raw {
			return wire.Erasable(m.payload, erased)
		}
		return erased[m.change.Event.PostID] && m.change.Event.Type != post.EventErased
	})
	b.dead = slices.DeleteFunc(b.dead, func(d ports.DeadLetter) bool { return wire.Erasable(d.Payload, erased) })
	return n - len(b.queue) - len(b.dead), nil
}
