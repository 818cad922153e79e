package projection

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"hexapost/ports"
)

// DriftCause says in one fixed word how a post's read model differs from its stream in the
// event store. The set is closed, so it can label a metric.
type DriftCause string

// The causes of drift, in the order a post is classified by: a post with no view is
// view_missing, whatever its history holds.
const (
	// DriftViewMissing: the read model holds no current view of the post.
	DriftViewMissing DriftCause = "view_missing"
	// DriftViewBehind: the post's current view is of an older version than its stream's last.
	DriftViewBehind DriftCause = "view_behind"
	// DriftHistoryMissing: the view is current but the history lacks some of the versions.
	DriftHistoryMissing DriftCause = "history_missing"
)

// DriftCauses are every cause of drift.
var DriftCauses = []DriftCause{DriftViewMissing, DriftViewBehind, DriftHistoryMissing}

// Drift is a post whose read model is behind its stream in the event store.
type Drift struct {
	PostID string
	// StoreVersion is the version of the stream's last event.
	StoreVersion int64
	// ViewVersion is the version of the post's current view; 0 when there is none.
	ViewVersion int64
	// HistoryEntries is how many versions of the post its history holds.
	HistoryEntries int64
	Cause          DriftCause
}

// driftOf returns the drift of a post whose stream is at head, when what the read model holds
// of it, have, is behind the stream.
func driftOf(head ports.StreamHead, have ports.ViewVersion) (Drift, bool) {
	d := Drift{PostID: head.PostID, StoreVersion: head.Version, ViewVersion: have.Current, HistoryEntries: have.History}
	switch {
	case have.Current == 0:
		d.Cause = DriftViewMissing
	case have.Current < head.Version:
		d.Cause = DriftViewBehind
	case have.History < head.Version:
		d.Cause = DriftHistoryMissing
	default:
		return Drift{}, false
	}
	return d, true
}

// ReconcileObserver hears what a Reconciler finds and does, so that the process can count it.
// It must be safe for concurrent use and return quickly.
type ReconcileObserver interface {
	// PassCompleted is called at the end of every pass that compared the whole read model.
	PassCompleted()
	// Drifted is called once for each post found drifted, before it is repaired.
	Drifted(cause DriftCause)
	// Repaired is called once for each drifted post re-projected from its stream.
	Repaired()
}

type uncounted struct{}

func (uncounted) PassCompleted()     {}
func (uncounted) Drifted(DriftCause) {}
func (uncounted) Repaired()          {}

// ReconcileConfig tunes a Reconciler.
type ReconcileConfig struct {
	// Interval is the time between two passes (default 1m), and the longest a pass's
	// comparison may take besides the grace.
	Interval time.Duration
	// Grace is how long a post found behind may take to catch up by itself, through the bus,
	// before it counts as drift (default 10s).
	Grace time.Duration
	// Page is how many posts are compared per round trip to each side (default 500).
	Page int
	// LockName names the lock that makes one process the reconciler of a read model; every
	// process that shares the read model must use the same.
	LockName string
}

// Reconciler is the read side's anti-entropy: it compares what the read model holds of every
// post with the post's stream in the event store, the truth, and re-projects every post that
// is behind, whatever lost its changes (a bus that trimmed or lost them, a discarded dead
// letter, a hand edit of the read model). One process per read model does it at a time.
type Reconciler struct {
	heads   ports.StreamHeads
	events  ports.EventLoader
	views   ports.ViewVersions
	locker  ports.Locker
	project *Projector
	log     *slog.Logger
	obs     ReconcileObserver
	cfg     ReconcileConfig
	trigger chan struct{}
}

// NewReconciler returns a Reconciler that reads the store through heads and events, compares
// it with views and repairs through p. p should be quiet: a repair logs one line per post, not
// one per change. obs may be nil where nothing counts, as for a one-off Verify.
func NewReconciler(heads ports.StreamHeads, events ports.EventLoader, views ports.ViewVersions, locker ports.Locker,
	p *Projector, log *slog.Logger, obs ReconcileObserver, cfg ReconcileConfig) *Reconciler {
	if obs == nil {
		obs = uncounted{}
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Minute
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 10 * time.Second
	}
	if cfg.Page <= 0 {
		cfg.Page = 500
	}
	return &Reconciler{heads: heads, events: events, views: views, locker: locker, project: p, log: log, obs: obs,
		cfg: cfg, trigger: make(chan struct{}, 1)}
}

// Trigger asks for a pass now rather than at the next interval, as when a bus reports changes
// it lost. Triggers that come while one is pending make one pass. It never blocks.
func (r *Reconciler) Trigger() {
	select {
	case r.trigger <- struct{}{}:
	default:
	}
}

// Run passes every Interval, and at once after a Trigger, until ctx ends. Before a pass it
// takes the lock named LockName and then keeps it: while another process holds it, this one
// skips its passes. A pass that fails is logged and the next interval tries again.
func (r *Reconciler) Run(ctx context.Context) {
	var lock ports.Lock
	defer func() {
		if lock != nil {
			lock.Release()
		}
	}()
	tick := time.NewTicker(r.cfg.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-r.trigger:
		}
		lock = r.holding(ctx, lock)
		if lock == nil {
			continue
		}
		if err := r.pass(ctx); err != nil && ctx.Err() == nil {
			r.log.Error("reconciliation pass failed; trying again at the next", "interval", r.cfg.Interval, "error", err)
		}
	}
}

// holding returns the lock if this process holds it, after taking it if no process does; nil
// while another process holds it.
func (r *Reconciler) holding(ctx context.Context, lock ports.Lock) ports.Lock {
	if lock != nil {
		if lock.Held(ctx) {
			return lock
		}
		lock.Release()
		r.log.Warn("reconciliation lock lost; taking it again", "lock", r.cfg.LockName)
	}
	lock, ok, err := r.locker.TryLock(ctx, r.cfg.LockName)
	switch {
	case err != nil:
		if ctx.Err() == nil {
			r.log.Error("reconciliation lock not taken; trying again at the next", "interval", r.cfg.Interval,
				"lock", r.cfg.LockName, "error", err)
		}
		return nil
	case !ok:
		r.log.Debug("another process reconciles the read model", "lock", r.cfg.LockName)
		return nil
	}
	r.log.Info("this process reconciles the read model with the event store", "lock", r.cfg.LockName,
		"interval", r.cfg.Interval, "grace", r.cfg.Grace)
	return lock
}

// repairers is how many drifted posts a pass repairs at once.
const repairers = 8

// pass finds the drifted posts, then counts, logs and repairs each.
func (r *Reconciler) pass(ctx context.Context) error {
	begin := time.Now()
	posts, drift, err := r.Check(ctx)
	if err != nil {
		return err
	}
	// Drifted posts are repaired a few at a time: on a read model whose writes take a round
	// trip each, a post at a time would make a large drift slow to heal.
	var (
		repaired atomic.Int64
		wg       sync.WaitGroup
		turns    = make(chan struct{}, repairers)
	)
	for _, d := range drift {
		r.obs.Drifted(d.Cause)
		r.log.Warn("read model drifted from the event store; repairing", "post_id", d.PostID,
			"store_version", d.StoreVersion, "view_version", d.ViewVersion, "history_entries", d.HistoryEntries,
			"cause", string(d.Cause))
		turns <- struct{}{}
		wg.Go(func() {
			defer func() { <-turns }()
			if err := r.Repair(ctx, d.PostID); err != nil {
				// One post that cannot be repaired (a corrupt stream, say) must not keep the
				// others drifted.
				if ctx.Err() == nil {
					r.log.Error("drifted post not repaired", "post_id", d.PostID, "error", err)
				}
				return
			}
			r.obs.Repaired()
			repaired.Add(1)
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	if n := int(repaired.Load()); n < len(drift) {
		return fmt.Errorf("reconcile: %d of %d drifted posts not repaired", len(drift)-n, len(drift))
	}
	r.obs.PassCompleted()
	level := slog.LevelDebug
	if len(drift) > 0 {
		level = slog.LevelInfo
	}
	r.log.Log(ctx, level, "reconciliation pass completed", "posts", posts, "repaired", len(drift), "took", time.Since(begin))
	return nil
}

// Check compares the read model with the event store once: it walks every post's stream head,
// a page at a time, alongside what the read model holds of every post, both in id order, and
// marks the posts the read model is behind on; then, once Grace has passed since the walk
// began, it walks the read model again alongside those and returns the ones still behind the
// version seen in the first walk. A change in flight on the bus reaches the read model within
// the grace, so it is not taken for drift. It also returns how many posts the store holds.
func (r *Reconciler) Check(ctx context.Context) (int, []Drift, error) {
	// A comparison has an interval to finish in, besides the grace: the next is due by then.
	// The deadline also stands in for the backends' own timeout of one request, which the first
	// answer of a walk can exceed on a read model that sorts the whole walk before it answers.
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Interval+r.cfg.Grace)
	defer cancel()
	begin := time.Now()
	posts := 0
	heads := func(yield func(ports.StreamHead, error) bool) {
		for after := ""; ; {
			page, err := r.heads.Heads(ctx, after, r.cfg.Page)
			if err != nil {
				yield(ports.StreamHead{}, fmt.Errorf("reconcile: stream heads after %q: %w", after, err))
				return
			}
			for _, h := range page {
				posts++
				if !yield(h, nil) {
					return
				}
			}
			if len(page) < r.cfg.Page {
				return
			}
			after = page[len(page)-1].PostID
		}
	}
	suspects, err := r.behind(ctx, heads)
	if err != nil || len(suspects) == 0 {
		return posts, nil, err
	}
	wait := time.NewTimer(time.Until(begin.Add(r.cfg.Grace)))
	defer wait.Stop()
	select {
	case <-ctx.Done():
		return posts, nil, ctx.Err()
	case <-wait.C:
	}
	again := func(yield func(ports.StreamHead, error) bool) {
		for _, d := range suspects {
			if !yield(ports.StreamHead{PostID: d.PostID, Version: d.StoreVersion}, nil) {
				return
			}
		}
	}
	drift, err := r.behind(ctx, again)
	return posts, drift, err
}

// behind walks heads, in id order, alongside what the read model holds, and returns the posts
// of heads that the read model is behind on. Both walks must be in byte order of the ids: a
// merge of walks in different orders would take held posts for missing, so a walk out of order
// is an error.
func (r *Reconciler) behind(ctx context.Context, heads iter.Seq2[ports.StreamHead, error]) ([]Drift, error) {
	next, stop := iter.Pull2(r.views.Versions(ctx))
	defer stop()
	var (
		out      []Drift
		have     ports.ViewVersion // the read model's first post not passed by the heads
		ended    bool
		lastHead string
	)
	// advance moves have to the read model's next post, if any.
	advance := func() error {
		v, err, ok := next()
		switch {
		case !ok:
			ended, have = true, ports.ViewVersion{}
		case err != nil:
			return fmt.Errorf("reconcile: read model versions after %q: %w", have.PostID, err)
		case v.PostID <= have.PostID:
			return fmt.Errorf("reconcile: the read model listed post %s after %s: not in id order", v.PostID, have.PostID)
		default:
			have = v
		}
		return nil
	}
	for h, err := range heads {
		if err != nil {
			return nil, err
		}
		if lastHead != "" && h.PostID <= lastHead {
			return nil, fmt.Errorf("reconcile: the event store listed post %s after %s: not in id order", h.PostID, lastHead)
		}
		lastHead = h.PostID
		for !ended && have.PostID < h.PostID {
			if err := advance(); err != nil {
				return nil, err
			}
		}
		var held ports.ViewVersion
		if have.PostID == h.PostID {
			held = have
		}
		if d, ok := driftOf(h, held); ok {
			out = append(out, d)
		}
	}
	// The rest of the read model is of posts the store does not hold; it is read to the end
	// all the same, so that a walk out of order is found whatever it holds.
	for !ended {
		if err := advance(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Repair re-projects the post from its stream, as Replay does for every post: every history
// entry is put and the current view written once, with the last version. It is idempotent and
// safe while the projector runs.
func (r *Reconciler) Repair(ctx context.Context, postID string) error {
	events, err := r.events.Load(ctx, postID, 0)
	if err != nil {
		return fmt.Errorf("repair %s: load: %w", postID, err)
	}
	var f folder
	changes, err := f.fold(events)
	if err != nil {
		return fmt.Errorf("repair %s: %w", postID, err)
	}
	if _, err := applyAll(ctx, r.project, changes); err != nil {
		return fmt.Errorf("repair: %w", err)
	}
	return nil
}

// Verify checks the read model against the event store, as a pass does, and writes one line to
// w for every drifted post: the post, the read model's version of it, the store's and the
// versions its history lacks, which it asks of reader. With repair it then re-projects those
// posts and checks again, reporting what still differs. It returns how many posts the store
// holds and how many differ at the end.
func (r *Reconciler) Verify(ctx context.Context, reader ports.ViewReader, w io.Writer, repair bool) (int, int, error) {
	posts, drift, err := r.Check(ctx)
	if err != nil {
		return posts, 0, err
	}
	for _, d := range drift {
		if err := r.report(ctx, reader, w, d); err != nil {
			return posts, len(drift), err
		}
	}
	if !repair || len(drift) == 0 {
		return posts, len(drift), nil
	}
	for _, d := range drift {
		if err := r.Repair(ctx, d.PostID); err != nil {
			return posts, len(drift), err
		}
	}
	fmt.Fprintf(w, "repaired %d posts; checking again\n", len(drift))
	return r.Verify(ctx, reader, w, false)
}

// report writes the line of one drifted post.
func (r *Reconciler) report(ctx context.Context, reader ports.ViewReader, w io.Writer, d Drift) error {
	held := map[int64]bool{}
	for q := (ports.HistoryQuery{Limit: 500}); ; {
		page, err := reader.History(ctx, d.PostID, q)
		if err != nil && !errors.Is(err, ports.ErrNotFound) {
			return fmt.Errorf("verify %s: history: %w", d.PostID, err)
		}
		for _, h := range page {
			held[h.State.Version] = true
		}
		if len(page) < q.Limit {
			break
		}
		q.After = page[len(page)-1].State.Version
	}
	var missing []int64
	for v := int64(1); v <= d.StoreVersion; v++ {
		if !held[v] {
			missing = append(missing, v)
		}
	}
	view := strconv.FormatInt(d.ViewVersion, 10)
	if d.Cause == DriftViewMissing {
		view = "none"
	}
	fmt.Fprintf(w, "post %s: read model version %s, store version %d, missing history versions %s (%s)\n",
		d.PostID, view, d.StoreVersion, ranges(missing), d.Cause)
	return nil
}

// ranges writes ascending versions as runs, such as 1-3,7; "none" when there are none.
func ranges(vs []int64) string {
	if len(vs) == 0 {
		return "none"
	}
	var b strings.Builder
	for i := 0; i < len(vs); {
		j := i
		for j+1 < len(vs) && vs[j+1] == vs[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(vs[i], 10))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.FormatInt(vs[j], 10))
		}
		i = j + 1
	}
	return b.String()
}
