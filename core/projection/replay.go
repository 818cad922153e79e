package projection

import (
	"context"
	"fmt"

	"hexapost/core/post"
	"hexapost/ports"
)

// ReplayBatch is how many events Replay reads per round trip.
const ReplayBatch = 500

// Replay rebuilds the read model from the whole event store: it reads the store one post's
// stream after another, folds each post's events into its state and applies each change
// exactly as if it had come from the bus, a page at a time, telling each change of the last
// later change of its post in the page (the later of ports.Handler) as the buses do: a post's view is
// written once per page. It holds one page and one post's state at a time, so its memory does
// not grow with the store. It is safe while the projector runs, because applying is idempotent
// and keeps the highest version. While the read model is unavailable it waits and applies again
// (Projector.ApplyWaiting), so an outage delays a replay, bounded by ctx, instead of ending it
// half done. It returns how many events it applied.
//
// A post whose history in the store is not a valid sequence is an error: the store is the
// source of truth, and a read model built from a corrupt one would hide the problem.
func Replay(ctx context.Context, events ports.StreamReader, p *Projector) (int, error) {
	var (
		after ports.StreamPosition
		agg   *post.Post // the post being folded, carried from one page to the next
		n     int
	)
	for {
		page, err := events.ReadStreams(ctx, after, ReplayBatch)
		if err != nil {
			return n, fmt.Errorf("replay after %s v%d: %w", after.PostID, after.Version, err)
		}
		changes := make([]ports.Change, len(page))
		last := map[string]int{} // post id → its last change in the page
		for i, e := range page {
			if agg == nil || e.PostID != after.PostID {
				if agg, err = post.FromHistory(e.PostID, nil); err != nil {
					return n, err
				}
			}
			if err := agg.Apply(e); err != nil {
				return n, fmt.Errorf("replay %s v%d: %w", e.PostID, e.Version, err)
			}
			changes[i], last[e.PostID] = ports.Change{Event: e, State: agg.State()}, i
			after = ports.StreamPosition{PostID: e.PostID, Version: e.Version}
		}
		for i, c := range changes {
			var later *ports.Change
			if j := last[c.Event.PostID]; j > i {
				later = &changes[j]
			}
			if err := p.ApplyWaiting(ctx, c, later); err != nil {
				return n, fmt.Errorf("replay %s v%d: %w", c.Event.PostID, c.Event.Version, err)
			}
			n++
		}
		if len(page) < ReplayBatch {
			return n, nil
		}
	}
}
