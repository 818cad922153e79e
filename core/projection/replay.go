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
		f     folder
		n     int
	)
	for {
		page, err := events.ReadStreams(ctx, after, ReplayBatch)
		if err != nil {
			return n, fmt.Errorf("replay after %s v%d: %w", after.PostID, after.Version, err)
		}
		changes, err := f.fold(page)
		if err != nil {
			return n, fmt.Errorf("replay: %w", err)
		}
		m, err := applyAll(ctx, p, changes)
		n += m
		if err != nil {
			return n, fmt.Errorf("replay: %w", err)
		}
		if len(page) < ReplayBatch {
			return n, nil
		}
		last := page[len(page)-1]
		after = ports.StreamPosition{PostID: last.PostID, Version: last.Version}
	}
}

// folder folds events in stream order (by post, then by version) into changes, carrying the
// post being folded from one call to the next, so that a stream may span several pages.
type folder struct {
	agg *post.Post
}

func (f *folder) fold(events []post.Event) ([]ports.Change, error) {
	changes := make([]ports.Change, len(events))
	for i, e := range events {
		if f.agg == nil || e.PostID != f.agg.ID() {
			agg, err := post.FromHistory(e.PostID, nil)
			if err != nil {
				return nil, err
			}
			f.agg = agg
		}
		if err := f.agg.Apply(e); err != nil {
			return nil, fmt.Errorf("%s v%d: %w", e.PostID, e.Version, err)
		}
		changes[i] = ports.Change{Event: e, State: f.agg.State()}
	}
	return changes, nil
}

// applyAll applies changes in order, telling each of the last later change of its post among
// them, as the buses do, so that a post's view is written once. It returns how many it applied.
func applyAll(ctx context.Context, p *Projector, changes []ports.Change) (int, error) {
	last := map[string]int{} // post id → its last change
	for i, c := range changes {
		last[c.Event.PostID] = i
	}
	for i, c := range changes {
		var later *ports.Change
		if j := last[c.Event.PostID]; j > i {
			later = &changes[j]
		}
		if err := p.ApplyWaiting(ctx, c, later); err != nil {
			return i, fmt.Errorf("%s v%d: %w", c.Event.PostID, c.Event.Version, err)
		}
	}
	return len(changes), nil
}
