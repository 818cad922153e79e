package projection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"hexapost/ports"
)

// ErrInvalidChange is returned for a change whose event and state disagree. Retrying cannot
// help; the subscriber dead-letters it after its attempts.
var ErrInvalidChange = errors.New("invalid change")

// Projector applies changes to the read model.
type Projector struct {
	views  ports.ViewWriter
	log    *slog.Logger
	notify *Notifier
}

// NewProjector returns a Projector that signals n after every applied change.
func NewProjector(views ports.ViewWriter, n *Notifier, log *slog.Logger) *Projector {
	return &Projector{views: views, log: log, notify: n}
}

// Quiet returns a projector that applies like p but logs nothing per change, for bulk replays
// where one line per event would drown the log.
func (p *Projector) Quiet() *Projector {
	q := *p
	q.log = slog.New(slog.DiscardHandler)
	return &q
}

// Apply records the change in the history, then offers its state as the current view. The order
// matters: once a reader sees version N as current, version N is in the history too.
//
// When the subscriber says that a valid later change of the same post follows in its batch
// (ports.Following), the current view is left to that change: it would replace this one at
// once. Under a backlog a post's changes then cost one view write per batch, which on a read
// model whose guarded writes are dear is most of the cost of catching up. Readers waiting for
// this version are answered when the later one is stored. (Should the later change fail for
// good, the view stays below this version until it is redriven from the dead letters.)
func (p *Projector) Apply(ctx context.Context, c ports.Change) error {
	if err := validate(c); err != nil {
		return err
	}
	e := c.Event
	h := ports.HistoryEntry{EventID: e.ID, Type: e.Type, OccurredAt: e.OccurredAt, State: c.State}
	if err := p.views.PutHistory(ctx, h); err != nil {
		return fmt.Errorf("history %s v%d: %w", e.PostID, e.Version, err)
	}
	if later, ok := ports.Following(ctx); ok && supersedes(later, c) {
		p.log.Info("event projected", "post_id", e.PostID, "version", e.Version, "event_id", e.ID,
			"event_type", string(e.Type), "current", false, "view_left_to_version", later.Event.Version)
		return nil
	}
	stored, err := p.views.PutCurrent(ctx, c.State)
	if err != nil {
		return fmt.Errorf("view %s v%d: %w", e.PostID, e.Version, err)
	}
	p.notify.Broadcast(e.PostID)
	p.log.Info("event projected", "post_id", e.PostID, "version", e.Version, "event_id", e.ID,
		"event_type", string(e.Type), "current", stored)
	return nil
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

// Notifier wakes readers waiting for a post to change, without polling: a change wakes only the
// readers of its own post, so a read model that is costly to read is not read again by every
// waiting reader on every change.
type Notifier struct {
	mu      sync.Mutex
	waiting map[string]*watch // by post id; present while some reader waits for that post
}

// watch is the next change of one post, as the readers waiting for it see it.
type watch struct {
	changed chan struct{} // closed at the change
	readers int
}

// NewNotifier returns a Notifier.
func NewNotifier() *Notifier { return &Notifier{waiting: map[string]*watch{}} }

// Watch returns a channel that is closed at the next Broadcast of postID, and a function to call
// once the channel is no longer waited on (it forgets the watch when no reader is left).
func (n *Notifier) Watch(postID string) (<-chan struct{}, func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	w := n.waiting[postID]
	if w == nil {
		w = &watch{changed: make(chan struct{})}
		n.waiting[postID] = w
	}
	w.readers++
	return w.changed, func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		w.readers--
		if w.readers == 0 && n.waiting[postID] == w {
			delete(n.waiting, postID)
		}
	}
}

// Broadcast wakes everyone watching postID.
func (n *Notifier) Broadcast(postID string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if w := n.waiting[postID]; w != nil {
		close(w.changed)
		delete(n.waiting, postID)
	}
}

// Outage bounds how ApplyWaiting waits for a read model that is down.
const (
	outageFirstWait = 100 * time.Millisecond
	outageMaxWait   = 5 * time.Second
)

// ApplyWaiting is Apply for a subscriber: while the read model is unavailable
// (ports.ErrUnavailable) it waits and tries again, with a growing delay, instead of returning
// the error — an outage is not the change's fault and must not use up its attempts and send it
// to the dead letters. Any other error is returned for the subscriber to retry or dead-letter.
func (p *Projector) ApplyWaiting(ctx context.Context, c ports.Change) error {
	wait := outageFirstWait
	for {
		err := p.Apply(ctx, c)
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
