package projection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"hexapost/core/post"
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
	quiet  bool // no line per projected change
}

// NewProjector returns a Projector that signals n after every applied change.
func NewProjector(views ports.ViewWriter, n *Notifier, log *slog.Logger) *Projector {
	return &Projector{views: views, log: log, notify: n}
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
		p.projected(ctx, e, slog.Bool("current", false), slog.Int64("view_left_to_version", later.Event.Version))
		return nil
	}
	done := p.notify.writing(c.State)
	defer done()
	stored, err := p.views.PutCurrent(ctx, c.State)
	if err != nil {
		return fmt.Errorf("view %s v%d: %w", e.PostID, e.Version, err)
	}
	if stored {
		p.notify.Stored(c.State)
	} else {
		p.notify.Broadcast(e.PostID)
	}
	p.projected(ctx, e, slog.Bool("current", stored))
	return nil
}

// projected logs the line of a projected change, with attributes, not key-value pairs, so that
// its values are not boxed, and to the handler, not through Logger.LogAttrs: the line carries
// no source, so it need not pay for the stack trace Logger takes for one (runtime.Callers).
func (p *Projector) projected(ctx context.Context, e post.Event, more ...slog.Attr) {
	h := p.log.Handler()
	if p.quiet || !h.Enabled(ctx, slog.LevelInfo) {
		return
	}
	r := slog.NewRecord(time.Now(), slog.LevelInfo, "event projected", 0)
	r.AddAttrs(slog.String("post_id", e.PostID), slog.Int64("version", e.Version), slog.String("event_id", e.ID),
		slog.String("event_type", string(e.Type)))
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

// Notifier wakes readers waiting for a post to change, without polling: a change wakes only the
// readers of its own post, so a read model that is costly to read is not read again by every
// waiting reader on every change. The projector hands the woken readers the view it stored, so
// they need not read it; and the readers of one post share one look at the read model for the
// changes of other processes (Wait.PollDue), so the reads a lagging read model gets from them
// grow with the posts waited on, not with the readers.
type Notifier struct {
	mu      sync.Mutex
	waiting map[string]*watch // by post id; present while some reader waits for that post
	// found is when a reader's look last found a view newer than the one it had, which this
	// process's projector had not announced: another process projects into the read model too.
	found time.Time
	// inflight is, by post id, the highest version this process's projector is writing: a look
	// that finds it before the projector announces it has not found another process's change.
	inflight map[string]inflight
}

type inflight struct {
	version int64
	writers int
}

// writing records that the projector is writing the view s until the returned function is
// called.
func (n *Notifier) writing(s post.State) (done func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	f := n.inflight[s.ID]
	f.version, f.writers = max(f.version, s.Version), f.writers+1
	n.inflight[s.ID] = f
	return func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		if f := n.inflight[s.ID]; f.writers > 1 {
			f.writers--
			n.inflight[s.ID] = f
		} else {
			delete(n.inflight, s.ID)
		}
	}
}

// watch is the next change of one post, as the readers waiting for it see it.
type watch struct {
	changed chan struct{} // closed at the change
	// readers counts the readers waiting on this watch; at the change they move to next.
	readers int
	// next is the post's watch after this one's change, made at the change with this one's
	// readers, so a reader that goes on waiting (Wait.Next) misses no change made between the
	// change that woke it and its next wait.
	next *watch
	// stored is the post's view as the change left it, when known is set; both are written
	// before changed is closed and read only after.
	stored post.State
	known  bool
	// polled is when a reader of the post last looked at the read model for a change another
	// process projected.
	polled time.Time
}

// NewNotifier returns a Notifier.
func NewNotifier() *Notifier {
	return &Notifier{waiting: map[string]*watch{}, inflight: map[string]inflight{}}
}

// Wait is one reader's wait for the next change of a post. Forget must be called once it is no
// longer waited on.
type Wait struct {
	n  *Notifier
	id string
	w  *watch
}

// Wait starts waiting for the next change of postID.
func (n *Notifier) Wait(postID string) *Wait {
	n.mu.Lock()
	defer n.mu.Unlock()
	w := n.waiting[postID]
	if w == nil {
		w = &watch{changed: make(chan struct{})}
		n.waiting[postID] = w
	}
	w.readers++
	return &Wait{n: n, id: postID, w: w}
}

// Changed is closed at the post's next change.
func (w *Wait) Changed() <-chan struct{} { return w.w.changed }

// Stored returns, once Changed is closed, the post's view as that change stored it, if whoever
// announced the change knew it.
func (w *Wait) Stored() (post.State, bool) {
	select {
	case <-w.w.changed:
		return w.w.stored, w.w.known
	default:
		return post.State{}, false
	}
}

// PollDue reports whether this reader should look at the read model now for a change of
// another process: no reader of the post has looked within every. A reader that looks and
// finds a newer view hands it to the others with Notifier.Stored.
func (w *Wait) PollDue(every time.Duration) bool {
	w.n.mu.Lock()
	defer w.n.mu.Unlock()
	if now := time.Now(); now.Sub(w.w.polled) >= every {
		w.w.polled = now
		return true
	}
	return false
}

// current is the watch that holds the count of a reader of w: w, or, as each change moves the
// readers on to the next watch, the post's latest. Called with the notifier's lock held.
func (w *watch) current() *watch {
	for w.next != nil {
		w = w.next
	}
	return w
}

// Forget ends the wait; the notifier forgets the post when no reader is left.
func (w *Wait) Forget() {
	w.n.mu.Lock()
	defer w.n.mu.Unlock()
	c := w.w.current()
	c.readers--
	if c.readers == 0 && w.n.waiting[w.id] == c {
		delete(w.n.waiting, w.id)
	}
}

// Next returns the wait for the post's change after the one just waited for. It is made at
// that change, so it is already woken if the post changed again since.
func (w *Wait) Next() *Wait {
	w.n.mu.Lock()
	defer w.n.mu.Unlock()
	if w.w.next == nil { // not woken yet: the next change is still the one waited for
		return w
	}
	return &Wait{n: w.n, id: w.id, w: w.w.next}
}

// Watch returns a channel that is closed at the next change of postID, and a function to call
// once the channel is no longer waited on.
func (n *Notifier) Watch(postID string) (<-chan struct{}, func()) {
	w := n.Wait(postID)
	return w.Changed(), w.Forget
}

// Broadcast wakes everyone watching postID.
func (n *Notifier) Broadcast(postID string) { n.wake(postID, post.State{}, false) }

// Stored wakes everyone watching the post of s, handing them s: the post's view as it was just
// stored.
func (n *Notifier) Stored(s post.State) { n.wake(s.ID, s, true) }

// Found takes a view that this reader's look found in the read model, newer than the one it
// had. If this process's projector announced it while the look was under way, the readers
// have it already. Otherwise it is handed to the post's readers as Stored does and, unless the
// projector is writing that version at the moment, it is a change of another process: Found
// marks the time for FoundWithin.
func (w *Wait) Found(s post.State) {
	if local, announced := w.Stored(); announced && local.Version >= s.Version {
		return
	}
	n := w.n
	n.mu.Lock()
	if n.inflight[s.ID].version < s.Version {
		n.found = time.Now()
	}
	n.mu.Unlock()
	n.wake(s.ID, s, true)
}

// FoundWithin reports whether a look found another process's change within d.
func (n *Notifier) FoundWithin(d time.Duration) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return !n.found.IsZero() && time.Since(n.found) < d
}

func (n *Notifier) wake(postID string, s post.State, known bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if w := n.waiting[postID]; w != nil {
		w.stored, w.known = s, known
		w.next = &watch{changed: make(chan struct{}), readers: w.readers, polled: w.polled}
		w.readers = 0
		n.waiting[postID] = w.next
		close(w.changed)
	}
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
