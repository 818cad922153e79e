package projection

import (
	"context"
	"fmt"
	"log/slog"

	"hexapost/ports"
)

// Rebuild recreates the read model from the event store without a moment of empty reads: it
// replays every event into a fresh read model beside the live one, swaps it in, then replays
// once more into the now-live model. The second pass catches what running projectors applied
// to the old model meanwhile (the store has every such event) and changes nothing else, because
// applying is idempotent. It returns the events applied by the first pass and by the second.
func Rebuild(ctx context.Context, events ports.StreamReader, r ports.ViewRebuilder, live ports.ViewWriter,
	log *slog.Logger) (int, int, error) {
	fresh, err := r.Fresh(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("rebuild: fresh read model: %w", err)
	}
	n, err := Replay(ctx, events, NewProjector(fresh, log).Quiet())
	if err != nil {
		return n, 0, fmt.Errorf("rebuild: %w", err)
	}
	log.Info("fresh read model built; switching to it", "events", n)
	if err := r.Swap(ctx); err != nil {
		return n, 0, fmt.Errorf("rebuild: swap: %w", err)
	}
	m, err := Replay(ctx, events, NewProjector(live, log).Quiet())
	if err != nil {
		return n, m, fmt.Errorf("rebuild: catch-up after the swap: %w", err)
	}
	return n, m, nil
}
