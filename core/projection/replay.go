package projection

import (
	"context"
	"fmt"

	"hexapost/core/post"
	"hexapost/ports"
)

// ReplayBatch is how many events Replay reads per round trip.
const ReplayBatch = 500

// Replay rebuilds the read model from the whole event store: it reads every event in position
// order, folds each post's events into its state and applies each change exactly as if it had
// come from the bus, a batch at a time, telling each change of the last later change of its
// post in the batch (the later of ports.Handler) as the buses do: a post's view is written once
// per batch. It is safe while the projector runs, because applying is idempotent and keeps the
// highest version. While the read model is unavailable it waits and applies again
// (Projector.ApplyWaiting), so an outage delays a replay, bounded by ctx, instead of ending it
// half done. It returns how many events it applied.
//
// A post whose history in the store is not a valid sequence is an error: the store is the
// source of truth, and a read model built from a corrupt one would hide the problem.
func Replay(ctx context.Context, events ports.EventReader, p *Projector) (int, error) {
	posts := map[string]*post.Post{}
	var after int64
	n := 0
	for {
		batch, err := events.ReadAll(ctx, after, ReplayBatch)
		if err != nil {
			return n, fmt.Errorf("replay after position %d: %w", after, err)
		}
		changes := make([]ports.Change, len(batch))
		last := map[string]int{} // post id → its last change in the batch
		for i, r := range batch {
			e := r.Event
			agg := posts[e.PostID]
			if agg == nil {
				if agg, err = post.FromHistory(e.PostID, nil); err != nil {
					return n, err
				}
				posts[e.PostID] = agg
			}
			if err := agg.Apply(e); err != nil {
				return n, fmt.Errorf("replay position %d: %w", r.Position, err)
			}
			changes[i], last[e.PostID] = ports.Change{Event: e, State: agg.State()}, i
		}
		for i, c := range changes {
			var later *ports.Change
			if j := last[c.Event.PostID]; j > i {
				later = &changes[j]
			}
			if err := p.ApplyWaiting(ctx, c, later); err != nil {
				return n, fmt.Errorf("replay position %d: %w", batch[i].Position, err)
			}
			after = batch[i].Position
			n++
		}
		if len(batch) < ReplayBatch {
			return n, nil
		}
	}
}
