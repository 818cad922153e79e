package projection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"hexapost/core/post"
	"hexapost/ports"
)

// ErrInvalidChange is returned for a change whose event and state disagree. Retrying cannot
// help; the subscriber dead-letters it after its attempts.
var ErrInvalidChange = errors.New("invalid change")

// Projector applies changes to the read model.
type Projector struct {
	views ports.ViewWriter
	log   *slog.Logger
	quiet bool // no line per projected change
}

// NewProjector returns a Projector that writes to views.
func NewProjector(views ports.ViewWriter, log *slog.Logger) *Projector {
	return &Projector{views: views, log: log}
}

// Quiet returns a projector that applies like p but logs no line per change, for bulk replays
// where one line per event would drown the log. It still warns while the read model is down.
func (p *Projector) Quiet() *Projector {
	q := *p
	q.quiet = true
	return &q
}

// Apply records the change in the history, then offers its state as the current view. The order
// matters: once a reader sees version N as current, version N is in the history too.
func (p *Projector) Apply(ctx context.Context, c ports.Change) error { return p.apply(ctx, c, nil) }

// apply is Apply, told by the subscriber that later, when not nil, follows c (ports.Handler).
// When later is a valid later change of the same post, the current view is left to it: it would
// replace this one at once. Under a backlog a post's changes then cost one view write per
// batch, which on a read model whose guarded writes are dear is most of the cost of catching
// up. Readers waiting for this version are answered when the later one is stored. (Should the
// later change fail for good, the view stays below this version until it is redriven from the
// dead letters.)
func (p *Projector) apply(ctx context.Context, c ports.Change, later *ports.Change) error {
	if err := validate(c); err != nil {
		return err
	}
	e := c.Event
	h := ports.HistoryEntry{EventID: e.ID, Type: e.Type, OccurredAt: e.OccurredAt, State: c.State}
	if err := p.views.PutHistory(ctx, h); err != nil {
		return fmt.Errorf("history %s v%d: %w", e.PostID, e.Version, err)
	}
	if later != nil && supersedes(*later, c) {
		p.projected(ctx, c, slog.Bool("current", false), slog.Int64("view_left_to_version", later.Event.Version))
		return nil
	}
	// An erasure redacts the history before its view is stored, so that a reader who finds the
	// post erased finds its history so too, and again after: a change of the post stored as the
	// view meanwhile may have stored its history entry after the first pass. A change that comes
	// after the erased view was stored is not stored as the view, and PutCurrent then redacts
	// the history it has just written to.
	erasure := e.Type == post.EventErased
	if erasure {
		if err := p.eraseHistory(ctx, e); err != nil {
			return err
		}
	}
	stored, err := p.views.PutCurrent(ctx, c.State)
	if err != nil {
		return fmt.Errorf("view %s v%d: %w", e.PostID, e.Version, err)
	}
	if erasure {
		if err := p.eraseHistory(ctx, e); err != nil {
			return err
		}
	}
	p.projected(ctx, c, slog.Bool("current", stored))
	return nil
}

func (p *Projector) eraseHistory(ctx context.Context, e post.Event) error {
	if err := p.views.EraseHistory(ctx, e.PostID); err != nil {
		return fmt.Errorf("erase history %s v%d: %w", e.PostID, e.Version, err)
	}
	return nil
}

// projected logs the line of a projected change, with attributes, not key-value pairs, so that
// its values are not boxed, and to the handler, not through Logger.LogAttrs: the line carries
// no source, so it need not pay for the stack trace Logger takes for one (runtime.Callers). It
// names the request that caused the change, when the change knows it.
func (p *Projector) projected(ctx context.Context, c ports.Change, more ...slog.Attr) {
	h := p.log.Handler()
	if p.quiet || !h.Enabled(ctx, slog.LevelInfo) {
		return
	}
	r := slog.NewRecord(time.Now(), slog.LevelInfo, "event projected", 0)
	e := c.Event
	r.AddAttrs(slog.String("post_id", e.PostID), slog.Int64("version", e.Version), slog.String("event_id", e.ID),
		slog.String("event_type", string(e.Type)))
	if c.Metadata.RequestID != "" {
		r.AddAttrs(slog.String("request_id", c.Metadata.RequestID))
	}
	r.AddAttrs(more...)
	_ = h.Handle(ctx, r) // as Logger does: a line that cannot be written is dropped
}

// supersedes reports whether later is a valid change of c's post with a higher version.
func supersedes(later, c ports.Change) bool {
	return later.Event.PostID == c.Event.PostID && later.Event.Version > c.Event.Version && validate(later) == nil
}

func validate(c ports.Change) error {
	e, s := c.Event, c.State
	switch {
	case e.PostID == "" || e.ID == "":
		return fmt.Errorf("%w: missing post or event id", ErrInvalidChange)
	case s.ID != e.PostID:
		return fmt.Errorf("%w: state of %q for event of %q", ErrInvalidChange, s.ID, e.PostID)
	case e.Version < 1 || s.Version != e.Version:
		return fmt.Errorf("%w: state version %d for event version %d", ErrInvalidChange, s.Version, e.Version)
	case !e.Type.Valid():
		return fmt.Errorf("%w: unknown event type %q", ErrInvalidChange, e.Type)
	}
	return nil
}

// Outage bounds how ApplyWaiting waits for a read model that is down.
const (
	outageFirstWait = 100 * time.Millisecond
	outageMaxWait   = 5 * time.Second
)

// ApplyWaiting is Apply for a subscriber (a ports.Handler), which tells it of the later change
// of the post it will hand over next: while the read model is unavailable
// (ports.ErrUnavailable) it waits and tries again, with a growing delay, instead of returning
// the error — an outage is not the change's fault and must not use up its attempts and send it
// to the dead letters. Any other error is returned for the subscriber to retry or dead-letter.
func (p *Projector) ApplyWaiting(ctx context.Context, c ports.Change, later *ports.Change) error {
	wait := outageFirstWait
	for {
		err := p.apply(ctx, c, later)
		if !errors.Is(err, ports.ErrUnavailable) {
			return err
		}
		p.log.Warn("read model unavailable; waiting before applying again", "post_id", c.Event.PostID,
			"version", c.Event.Version, "event_id", c.Event.ID, "retry_in", wait, "error", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, outageMaxWait)
	}
}
