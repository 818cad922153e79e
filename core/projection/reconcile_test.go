package projection_test

import (
	"context"
	"errors"
	"iter"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hexapost/core/post"
	"hexapost/core/projection"
	"hexapost/ports"
)

// streams is a test double of the event store: each post's events by id.
type streams map[string][]post.Event

// newStreams returns a store holding, for each post id, a stream of as many versions.
func newStreams(versions map[string]int64) streams {
	s := streams{}
	for id, n := range versions {
		for v := int64(1); v <= n; v++ {
			typ := post.EventUpdated
			if v == 1 {
				typ = post.EventCreated
			}
			s[id] = append(s[id], change(id, v, typ).Event)
		}
	}
	return s
}

func (s streams) Heads(_ context.Context, after string, limit int) ([]ports.StreamHead, error) {
	var out []ports.StreamHead
	for _, id := range slices.Sorted(maps.Keys(s)) {
		if id > after && len(out) < limit {
			out = append(out, ports.StreamHead{PostID: id, Version: int64(len(s[id]))})
		}
	}
	return out, nil
}

func (s streams) Load(_ context.Context, id string, after int64) ([]post.Event, error) {
	return s[id][min(after, int64(len(s[id]))):], nil
}

// state is the fold of the post's stream.
func (s streams) state(t *testing.T, id string) post.State {
	t.Helper()
	p, err := post.FromHistory(id, s[id])
	if err != nil {
		t.Fatal(err)
	}
	return p.State()
}

// project applies the post's changes up to version upTo to the read model, as the bus would.
func (s streams) project(t *testing.T, v *views, id string, upTo int64) {
	t.Helper()
	p, err := post.FromHistory(id, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range s[id][:upTo] {
		if err := p.Apply(e); err != nil {
			t.Fatal(err)
		}
		if err := newProjector(v).Apply(t.Context(), ports.Change{Event: e, State: p.State()}); err != nil {
			t.Fatal(err)
		}
	}
}

func (v *views) Versions(context.Context) iter.Seq2[ports.ViewVersion, error] {
	return func(yield func(ports.ViewVersion, error) bool) {
		v.mu.Lock()
		ids := slices.Collect(maps.Keys(v.current))
		for id, h := range v.history {
			if _, ok := v.current[id]; !ok && len(h) > 0 {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids)
		var held []ports.ViewVersion
		for _, id := range ids {
			held = append(held, ports.ViewVersion{PostID: id, Current: v.current[id].Version, History: int64(len(v.history[id]))})
		}
		v.mu.Unlock()
		for _, h := range held {
			if !yield(h, nil) {
				return
			}
		}
	}
}

// locks is a test double of a Locker shared by every process.
type locks struct {
	mu      sync.Mutex
	held    map[string]bool
	refused atomic.Int64
}

func (l *locks) TryLock(_ context.Context, name string) (ports.Lock, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held == nil {
		l.held = map[string]bool{}
	}
	if l.held[name] {
		l.refused.Add(1)
		return nil, false, nil
	}
	l.held[name] = true
	return &lock{locks: l, name: name}, true, nil
}

type lock struct {
	locks *locks
	name  string
	once  sync.Once
}

func (l *lock) Held(context.Context) bool {
	l.locks.mu.Lock()
	defer l.locks.mu.Unlock()
	return l.locks.held[l.name]
}

func (l *lock) Release() {
	l.once.Do(func() {
		l.locks.mu.Lock()
		defer l.locks.mu.Unlock()
		delete(l.locks.held, l.name)
	})
}

// counts is a ReconcileObserver that counts what it hears.
type counts struct {
	mu       sync.Mutex
	passes   int
	drifted  map[projection.DriftCause]int
	repaired int
}

func (c *counts) PassCompleted() { c.mu.Lock(); c.passes++; c.mu.Unlock() }
func (c *counts) Repaired()      { c.mu.Lock(); c.repaired++; c.mu.Unlock() }
func (c *counts) Drifted(cause projection.DriftCause) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.drifted == nil {
		c.drifted = map[projection.DriftCause]int{}
	}
	c.drifted[cause]++
}

func (c *counts) read() (passes, repaired int, drifted map[projection.DriftCause]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.passes, c.repaired, maps.Clone(c.drifted)
}

// versionsCalled is a ViewVersions that tells of each walk once it ended.
type versionsCalled struct {
	ports.ViewVersions
	walked chan struct{}
}

func (v versionsCalled) Versions(ctx context.Context) iter.Seq2[ports.ViewVersion, error] {
	return func(yield func(ports.ViewVersion, error) bool) {
		defer func() { v.walked <- struct{}{} }()
		for h, err := range v.ViewVersions.Versions(ctx) {
			if !yield(h, err) {
				return
			}
		}
	}
}

func newReconciler(s streams, v ports.ViewVersions, w *views, l ports.Locker, obs projection.ReconcileObserver,
	cfg projection.ReconcileConfig) *projection.Reconciler {
	if cfg.LockName == "" {
		cfg.LockName = "reconcile"
	}
	return projection.NewReconciler(s, s, v, l, newProjector(w).Quiet(), slog.New(slog.DiscardHandler), obs, cfg)
}

// waitFor polls cond until it holds, failing the test after a while.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// drifted builds a read model in which post "ok" is current, "missing" has no view, "behind"
// is at version 1 of 3 and "gap" lacks the history entry of its version 2; six more current
// posts make the walk take several pages.
func drifted(t *testing.T) (streams, *views) {
	t.Helper()
	s := newStreams(map[string]int64{"ok": 2, "missing": 2, "behind": 3, "gap": 3,
		"p1": 1, "p2": 1, "p3": 1, "p4": 1, "p5": 1, "p6": 1})
	v := newViews()
	for id := range s {
		switch id {
		case "missing":
		case "behind":
			s.project(t, v, id, 1)
		default:
			s.project(t, v, id, int64(len(s[id])))
		}
	}
	delete(v.history["gap"], 2)
	return s, v
}

// The read model must equal the fold of the store: every view and every history entry.
func assertConverged(t *testing.T, s streams, v *views) {
	t.Helper()
	for id, events := range s {
		if got, want := v.current[id], s.state(t, id); got != want {
			t.Errorf("%s: view %+v, want %+v", id, got, want)
		}
		if len(v.history[id]) != len(events) {
			t.Errorf("%s: %d history entries, want %d", id, len(v.history[id]), len(events))
		}
	}
}

func TestReconcilerFindsEachKindOfDrift(t *testing.T) {
	t.Parallel()
	s, v := drifted(t)
	r := newReconciler(s, v, v, &locks{}, &counts{}, projection.ReconcileConfig{Grace: time.Millisecond, Page: 3})

	posts, drift, err := r.Check(t.Context())

	if err != nil {
		t.Fatal(err)
	}
	want := []projection.Drift{
		{PostID: "behind", StoreVersion: 3, ViewVersion: 1, HistoryEntries: 1, Cause: projection.DriftViewBehind},
		{PostID: "gap", StoreVersion: 3, ViewVersion: 3, HistoryEntries: 2, Cause: projection.DriftHistoryMissing},
		{PostID: "missing", StoreVersion: 2, Cause: projection.DriftViewMissing},
	}
	if posts != len(s) || !slices.Equal(drift, want) {
		t.Fatalf("Check = %d posts, %+v; want %d, %+v", posts, drift, len(s), want)
	}
}

// A post found behind whose change arrives within the grace was in flight, not drifted.
func TestReconcilerGivesAChangeInFlightItsGrace(t *testing.T) {
	t.Parallel()
	s := newStreams(map[string]int64{"a": 1, "b": 2, "c": 1})
	v := newViews()
	s.project(t, v, "a", 1)
	s.project(t, v, "b", 1)
	s.project(t, v, "c", 1)
	called := versionsCalled{ViewVersions: v, walked: make(chan struct{}, 10)}
	r := newReconciler(s, called, v, &locks{}, &counts{}, projection.ReconcileConfig{Grace: time.Second, Page: 2})
	type result struct {
		drift []projection.Drift
		err   error
	}
	done := make(chan result, 1)
	go func() {
		_, drift, err := r.Check(t.Context())
		done <- result{drift, err}
	}()
	<-called.walked // the first walk, with "b" behind, is over
	s.project(t, v, "b", 2)

	got := <-done

	if got.err != nil || len(got.drift) != 0 {
		t.Fatalf("Check = %+v, %v; want no drift", got.drift, got.err)
	}
}

func TestReconcilerRepairsWhatDrifted(t *testing.T) {
	t.Parallel()
	s, v := drifted(t)
	obs := &counts{}
	r := newReconciler(s, v, v, &locks{}, obs, projection.ReconcileConfig{Interval: time.Hour, Grace: time.Millisecond, Page: 4})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go r.Run(ctx)

	r.Trigger()

	waitFor(t, "a pass", func() bool { passes, _, _ := obs.read(); return passes > 0 })
	_, repaired, causes := obs.read()
	want := map[projection.DriftCause]int{
		projection.DriftViewMissing: 1, projection.DriftViewBehind: 1, projection.DriftHistoryMissing: 1,
	}
	if repaired != 3 || !maps.Equal(causes, want) {
		t.Errorf("repaired %d, drifted %v; want 3, %v", repaired, causes, want)
	}
	cancel()
	v.mu.Lock()
	defer v.mu.Unlock()
	assertConverged(t, s, v)
}

// Trigger starts a pass long before the interval.
func TestReconcilerPassesAtATrigger(t *testing.T) {
	t.Parallel()
	s := newStreams(map[string]int64{"a": 1})
	v := newViews()
	obs := &counts{}
	r := newReconciler(s, v, v, &locks{}, obs, projection.ReconcileConfig{Interval: time.Hour, Grace: time.Millisecond})
	go r.Run(t.Context())

	r.Trigger()

	waitFor(t, "a pass at the trigger", func() bool { passes, _, _ := obs.read(); return passes == 1 })
}

// Of two processes sharing a read model only the one holding the lock passes; the other takes
// over when the first stops.
func TestReconcilerPassesInOneProcessAtATime(t *testing.T) {
	t.Parallel()
	s := newStreams(map[string]int64{"a": 1})
	v := newViews()
	l := &locks{}
	cfg := projection.ReconcileConfig{Interval: 5 * time.Millisecond, Grace: time.Millisecond}
	first, second := &counts{}, &counts{}
	ctx1, stop1 := context.WithCancel(t.Context())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		newReconciler(s, v, v, l, first, cfg).Run(ctx1)
	}()
	waitFor(t, "the first process to pass", func() bool { passes, _, _ := first.read(); return passes > 0 })
	go newReconciler(s, v, v, l, second, cfg).Run(t.Context())

	waitFor(t, "the second process to be refused the lock 3 times", func() bool { return l.refused.Load() >= 3 })
	passes, _, _ := second.read()
	if passes != 0 {
		t.Fatalf("the second process passed %d times while the first held the lock", passes)
	}
	stop1()
	<-stopped
	waitFor(t, "the second process to take over", func() bool { passes, _, _ := second.read(); return passes > 0 })
}

// A failed pass is logged and the next one tries again; Run keeps going.
func TestReconcilerTriesAgainAfterAFailedPass(t *testing.T) {
	t.Parallel()
	s, v := drifted(t)
	failing := &failOnce{ViewVersions: v}
	obs := &counts{}
	r := newReconciler(s, failing, v, &locks{}, obs, projection.ReconcileConfig{Interval: time.Hour, Grace: time.Millisecond})
	go r.Run(t.Context())

	r.Trigger()
	waitFor(t, "the failed pass", func() bool { return failing.failed.Load() })
	r.Trigger()

	waitFor(t, "a pass that repairs", func() bool { _, repaired, _ := obs.read(); return repaired == 3 })
}

type failOnce struct {
	ports.ViewVersions
	failed atomic.Bool
}

func (f *failOnce) Versions(ctx context.Context) iter.Seq2[ports.ViewVersion, error] {
	if f.failed.CompareAndSwap(false, true) {
		return func(yield func(ports.ViewVersion, error) bool) {
			yield(ports.ViewVersion{}, errors.New("read model down"))
		}
	}
	return f.ViewVersions.Versions(ctx)
}

// reversed is a read model whose walk is in descending id order.
type reversed struct{ ports.ViewVersions }

func (r reversed) Versions(ctx context.Context) iter.Seq2[ports.ViewVersion, error] {
	return func(yield func(ports.ViewVersion, error) bool) {
		var all []ports.ViewVersion
		for h, err := range r.ViewVersions.Versions(ctx) {
			if err != nil {
				yield(h, err)
				return
			}
			all = append(all, h)
		}
		slices.Reverse(all)
		for _, h := range all {
			if !yield(h, nil) {
				return
			}
		}
	}
}

// A read model walked in another order than the store's heads cannot be merged with them: the
// pass fails instead of taking every post for missing.
func TestReconcilerRefusesAWalkOutOfOrder(t *testing.T) {
	t.Parallel()
	s, v := drifted(t)
	r := newReconciler(s, reversed{v}, v, &locks{}, &counts{}, projection.ReconcileConfig{Grace: time.Millisecond})

	_, drift, err := r.Check(t.Context())

	if err == nil || !strings.Contains(err.Error(), "not in id order") {
		t.Fatalf("Check = %v, %v; want an error saying the walk is not in id order", drift, err)
	}
}

func TestVerifyReportsAndRepairs(t *testing.T) {
	t.Parallel()
	s, v := drifted(t)
	r := newReconciler(s, v, v, &locks{}, &counts{}, projection.ReconcileConfig{Grace: time.Millisecond})
	var out strings.Builder

	posts, differ, err := r.Verify(t.Context(), v, &out, false)

	if err != nil || posts != len(s) || differ != 3 {
		t.Fatalf("Verify = %d posts, %d differ, %v; want %d, 3", posts, differ, err, len(s))
	}
	want := "post behind: read model version 1, store version 3, missing history versions 2-3 (view_behind)\n" +
		"post gap: read model version 3, store version 3, missing history versions 2 (history_missing)\n" +
		"post missing: read model version none, store version 2, missing history versions 1-2 (view_missing)\n"
	if out.String() != want {
		t.Fatalf("Verify wrote\n%s\nwant\n%s", out.String(), want)
	}

	out.Reset()
	_, differ, err = r.Verify(t.Context(), v, &out, true)

	if err != nil || differ != 0 || !strings.HasSuffix(out.String(), "repaired 3 posts; checking again\n") {
		t.Fatalf("Verify --repair = %d differ, %v, wrote\n%s", differ, err, out.String())
	}
	assertConverged(t, s, v)
}

// A post whose stream cannot be folded is reported, and the others are repaired all the same.
func TestReconcilerRepairsAroundAPostItCannotRepair(t *testing.T) {
	t.Parallel()
	s := newStreams(map[string]int64{"a-corrupt": 3, "b-good": 1})
	s["a-corrupt"] = append(s["a-corrupt"][:1], s["a-corrupt"][2]) // version 2 is missing
	v := newViews()
	obs := &counts{}
	r := newReconciler(s, v, v, &locks{}, obs, projection.ReconcileConfig{Interval: time.Hour, Grace: time.Millisecond})
	go r.Run(t.Context())

	r.Trigger()

	waitFor(t, "the good post to be repaired", func() bool { _, repaired, _ := obs.read(); return repaired == 1 })
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.current["b-good"] != s.state(t, "b-good") {
		t.Errorf("view of the good post %+v, want %+v", v.current["b-good"], s.state(t, "b-good"))
	}
	if passes, _, drifted := obs.read(); passes != 0 || drifted[projection.DriftViewMissing] != 2 {
		t.Errorf("%d passes completed, drifted %v; want 0 (one post is left drifted) and 2 view_missing", passes, drifted)
	}
}
