package query_test

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hexapost/core/post"
	"hexapost/core/query"
	"hexapost/ports"
)

// views is a map-backed ViewReader that counts its reads.
type views struct {
	mu        sync.Mutex
	current   map[string]post.State
	history   map[string][]ports.HistoryEntry
	reads     atomic.Int64
	histReads atomic.Int64
}

func newViews(states ...post.State) *views {
	v := &views{current: map[string]post.State{}, history: map[string][]ports.HistoryEntry{}}
	for _, s := range states {
		v.put(s)
	}
	return v
}

// put stores s as the current view and adds it to the history, in version order.
func (v *views) put(s post.State) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if s.Version > v.current[s.ID].Version {
		v.current[s.ID] = s
	}
	v.history[s.ID] = append(v.history[s.ID], ports.HistoryEntry{EventID: s.ID, State: s})
	h := v.history[s.ID]
	for i := len(h) - 1; i > 0 && h[i].State.Version < h[i-1].State.Version; i-- {
		h[i], h[i-1] = h[i-1], h[i]
	}
}

func (v *views) Get(_ context.Context, id string) (post.State, error) {
	v.reads.Add(1)
	v.mu.Lock()
	defer v.mu.Unlock()
	s, ok := v.current[id]
	if !ok {
		return post.State{}, ports.ErrNotFound
	}
	return s, nil
}

func (v *views) List(context.Context, ports.ListQuery) ([]post.State, error) { return nil, nil }

func (v *views) History(_ context.Context, id string, q ports.HistoryQuery) ([]ports.HistoryEntry, error) {
	v.histReads.Add(1)
	v.mu.Lock()
	defer v.mu.Unlock()
	h, ok := v.history[id]
	if !ok {
		return nil, ports.ErrNotFound
	}
	out := []ports.HistoryEntry{}
	for _, e := range h {
		if e.State.Version > q.After && len(out) < q.Limit {
			out = append(out, e)
		}
	}
	return out, nil
}

// told is a ViewChanges that says a view may have changed only when the test calls tell.
type told struct {
	mu      sync.Mutex
	pending []chan struct{}
}

func (c *told) Watch(string) (<-chan struct{}, func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan struct{})
	c.pending = append(c.pending, ch)
	return ch, func() {}
}

func (c *told) tell() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ch := range c.pending {
		close(ch)
	}
	c.pending = nil
}

func state(id string, version int64) post.State {
	return post.State{ID: id, Version: version, Title: "t", Content: "c", AuthorName: "a"}
}

type readResult struct {
	state post.State
	err   error
}

func getAsync(ctx context.Context, r *query.Reader, id string, minVersion int64) <-chan readResult {
	out := make(chan readResult, 1)
	go func() {
		s, err := r.Get(ctx, id, minVersion)
		out <- readResult{s, err}
	}()
	return out
}

// eventually waits until cond holds, failing the test if it does not within a few seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func await(t *testing.T, results <-chan readResult) readResult {
	t.Helper()
	select {
	case r := <-results:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("Reader.Get did not return")
		return readResult{}
	}
}

func TestReaderGet(t *testing.T) {
	t.Parallel()
	const wait = 50 * time.Millisecond
	gone := state("p2", 2)
	gone.Deleted = true

	tests := []struct {
		name           string
		giveID         string
		giveMinVersion int64
		wantState      post.State
		wantErr        error
		wantWaited     bool // the read took the whole wait
	}{
		{name: "current view, no version asked", giveID: "p1", wantState: state("p1", 2)},
		{name: "current view at the version asked", giveID: "p1", giveMinVersion: 2, wantState: state("p1", 2)},
		{name: "current view past the version asked", giveID: "p1", giveMinVersion: 1, wantState: state("p1", 2)},
		{name: "deleted post", giveID: "p2", wantState: gone, wantErr: post.ErrDeleted},
		{name: "deleted post at the version asked", giveID: "p2", giveMinVersion: 2, wantState: gone, wantErr: post.ErrDeleted},
		{name: "unknown post, no version asked", giveID: "p3", wantErr: ports.ErrNotFound},
		{name: "version never reached", giveID: "p1", giveMinVersion: 3, wantErr: query.ErrNotCaughtUp, wantWaited: true},
		{name: "deleted post below the version asked", giveID: "p2", giveMinVersion: 3, wantErr: query.ErrNotCaughtUp, wantWaited: true},
		{name: "unknown post at a version asked", giveID: "p3", giveMinVersion: 1, wantErr: query.ErrNotCaughtUp, wantWaited: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := query.NewReader(newViews(state("p1", 2), gone), query.Recheck{Every: 10 * time.Millisecond}, wait)
			start := time.Now()

			got, err := r.Get(t.Context(), tt.giveID, tt.giveMinVersion)

			if !errors.Is(err, tt.wantErr) {
				t.Errorf("error = %v, want %v", err, tt.wantErr)
			}
			if got != tt.wantState {
				t.Errorf("state = %+v, want %+v", got, tt.wantState)
			}
			if waited := time.Since(start) >= wait; waited != tt.wantWaited {
				t.Errorf("waited %v; want the whole wait of %v: %t", time.Since(start), wait, tt.wantWaited)
			}
		})
	}
}

// A waiting read reads the view again when, and only when, its ViewChanges says it may have
// changed.
func TestReaderReadsAgainWhenTold(t *testing.T) {
	t.Parallel()
	v, c := newViews(state("p1", 1)), &told{}
	r := query.NewReader(v, c, time.Minute)

	results := getAsync(t.Context(), r, "p1", 3)
	eventually(t, "the reader read once", func() bool { return v.reads.Load() == 1 })
	v.put(state("p1", 2))
	c.tell()
	eventually(t, "the reader read again", func() bool { return v.reads.Load() == 2 })
	v.put(state("p1", 3))
	select {
	case got := <-results:
		t.Fatalf("the reader answered %+v, %v without being told of the change", got.state, got.err)
	case <-time.After(20 * time.Millisecond):
	}
	c.tell()

	if got := await(t, results); got.err != nil || got.state != state("p1", 3) {
		t.Errorf("Get = %+v, %v; want v3", got.state, got.err)
	}
}

// The plain path: with Recheck alone, a version written by anyone is found at a recheck.
func TestReaderFindsAVersionAtARecheck(t *testing.T) {
	t.Parallel()
	v := newViews(state("p1", 1))
	r := query.NewReader(v, query.Recheck{Every: 5 * time.Millisecond}, time.Minute)

	results := getAsync(t.Context(), r, "p1", 2)
	eventually(t, "the reader read once", func() bool { return v.reads.Load() > 0 })
	v.put(state("p1", 2))

	if got := await(t, results); got.err != nil || got.state != state("p1", 2) {
		t.Errorf("Get = %+v, %v; want v2", got.state, got.err)
	}
}

func TestReaderStopsWaitingWhenTheContextEnds(t *testing.T) {
	t.Parallel()
	v := newViews()
	r := query.NewReader(v, &told{}, time.Minute)
	ctx, cancel := context.WithCancel(t.Context())

	results := getAsync(ctx, r, "p1", 1)
	eventually(t, "the reader looked", func() bool { return v.reads.Load() > 0 })
	cancel()

	if got := await(t, results); !errors.Is(got.err, context.Canceled) {
		t.Errorf("error = %v, want %v", got.err, context.Canceled)
	}
}

func TestReaderDrainEndsWaits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		giveWrite bool // p1 v2 is written just before Drain
		wantState post.State
		wantErr   error
	}{
		{name: "the version is not there", wantErr: query.ErrNotCaughtUp},
		{name: "the version arrived", giveWrite: true, wantState: state("p1", 2)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := newViews(state("p1", 1))
			// Nothing tells the reader of a change and its wait is long: only Drain ends it.
			r := query.NewReader(v, &told{}, time.Minute)

			results := getAsync(t.Context(), r, "p1", 2)
			eventually(t, "the reader looked", func() bool { return v.reads.Load() > 0 })
			if tt.giveWrite {
				v.put(state("p1", 2))
			}
			r.Drain()
			r.Drain() // a second call is harmless
			got := await(t, results)

			if !errors.Is(got.err, tt.wantErr) || got.state != tt.wantState {
				t.Errorf("Get = %+v, %v; want %+v, %v", got.state, got.err, tt.wantState, tt.wantErr)
			}
			if later := await(t, getAsync(t.Context(), r, "p1", 3)); !errors.Is(later.err, query.ErrNotCaughtUp) {
				t.Errorf("Get after Drain: error = %v, want %v at once", later.err, query.ErrNotCaughtUp)
			}
		})
	}
}

func versions(entries []ports.HistoryEntry) []int64 {
	out := make([]int64, 0, len(entries))
	for _, e := range entries {
		out = append(out, e.State.Version)
	}
	return out
}

func TestReaderHistoryWaitsForAGapToBeFilled(t *testing.T) {
	t.Parallel()
	v, c := newViews(state("p1", 1), state("p1", 3)), &told{}
	r := query.NewReader(v, c, time.Minute)
	type result struct {
		entries []ports.HistoryEntry
		err     error
	}
	got := make(chan result, 1)
	go func() {
		entries, err := r.History(t.Context(), "p1", ports.HistoryQuery{Limit: 20})
		got <- result{entries, err}
	}()
	eventually(t, "the reader has read the history with its gap", func() bool { return v.histReads.Load() > 0 })

	v.put(state("p1", 2))
	c.tell()

	res := <-got
	if res.err != nil || !reflect.DeepEqual(versions(res.entries), []int64{1, 2, 3}) {
		t.Fatalf("History = versions %v, %v; want 1, 2, 3", versions(res.entries), res.err)
	}
}

func TestReaderHistoryAnswersTheVersionsBeforeAGapThatStays(t *testing.T) {
	t.Parallel()
	r := query.NewReader(newViews(state("p1", 1), state("p1", 3)), query.Recheck{Every: 5 * time.Millisecond},
		30*time.Millisecond)

	entries, err := r.History(t.Context(), "p1", ports.HistoryQuery{Limit: 20})

	if err != nil || !reflect.DeepEqual(versions(entries), []int64{1}) {
		t.Fatalf("History = versions %v, %v; want only 1, the version before the gap", versions(entries), err)
	}
}

func TestReaderHistoryWithoutItsFirstVersionIsNotCaughtUp(t *testing.T) {
	t.Parallel()
	r := query.NewReader(newViews(state("p1", 2)), query.Recheck{Every: 5 * time.Millisecond}, 30*time.Millisecond)

	entries, err := r.History(t.Context(), "p1", ports.HistoryQuery{Limit: 20})

	if !errors.Is(err, query.ErrNotCaughtUp) || entries != nil {
		t.Fatalf("History = versions %v, %v; want %v", versions(entries), err, query.ErrNotCaughtUp)
	}
}

func TestReaderHistoryWithoutAGapIsReadOnce(t *testing.T) {
	t.Parallel()
	v := newViews(state("p1", 1))
	r := query.NewReader(v, &told{}, time.Minute)

	entries, err := r.History(t.Context(), "p1", ports.HistoryQuery{Limit: 20})

	if err != nil || !reflect.DeepEqual(versions(entries), []int64{1}) {
		t.Fatalf("History = versions %v, %v; want 1", versions(entries), err)
	}
	if n := v.histReads.Load(); n != 1 {
		t.Errorf("history read %d times, want once", n)
	}
	if _, err := r.History(t.Context(), "unknown", ports.HistoryQuery{Limit: 20}); !errors.Is(err, ports.ErrNotFound) {
		t.Errorf("History of an unknown post: %v, want %v", err, ports.ErrNotFound)
	}
}

func TestReaderHistoryPages(t *testing.T) {
	t.Parallel()
	v := newViews(state("p1", 1), state("p1", 2), state("p1", 3), state("p1", 4), state("p1", 5))
	r := query.NewReader(v, &told{}, time.Minute)
	tests := []struct {
		name         string
		giveQuery    ports.HistoryQuery
		wantVersions []int64
	}{
		{"the first page", ports.HistoryQuery{Limit: 2}, []int64{1, 2}},
		{"a page after a version", ports.HistoryQuery{After: 2, Limit: 2}, []int64{3, 4}},
		{"the last page, shorter", ports.HistoryQuery{After: 4, Limit: 2}, []int64{5}},
		{"past the last version", ports.HistoryQuery{After: 5, Limit: 2}, []int64{}},
		{"a negative version starts at the first", ports.HistoryQuery{After: -3, Limit: 1}, []int64{1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			entries, err := r.History(t.Context(), "p1", tt.giveQuery)
			if err != nil || !reflect.DeepEqual(versions(entries), tt.wantVersions) {
				t.Errorf("History(%+v) = versions %v, %v; want %v", tt.giveQuery, versions(entries), err, tt.wantVersions)
			}
		})
	}
}

// A page after a version waits for a gap inside it and, when the gap stays, answers the
// versions before it, or 503 when the page's first version is the one missing.
func TestReaderHistoryPageWithAGap(t *testing.T) {
	t.Parallel()
	r := query.NewReader(newViews(state("p1", 1), state("p1", 2), state("p1", 3), state("p1", 5), state("p1", 6)),
		query.Recheck{Every: 5 * time.Millisecond}, 30*time.Millisecond)

	entries, err := r.History(t.Context(), "p1", ports.HistoryQuery{After: 2, Limit: 3})
	if err != nil || !reflect.DeepEqual(versions(entries), []int64{3}) {
		t.Errorf("page after v2 = versions %v, %v; want only 3, the version before the gap", versions(entries), err)
	}
	entries, err = r.History(t.Context(), "p1", ports.HistoryQuery{After: 3, Limit: 3})
	if !errors.Is(err, query.ErrNotCaughtUp) || entries != nil {
		t.Errorf("page after v3 = versions %v, %v; want %v", versions(entries), err, query.ErrNotCaughtUp)
	}
}

// Recheck's channel closes after its interval, and not once stopped.
func TestRecheck(t *testing.T) {
	t.Parallel()
	changed, stop := query.Recheck{Every: time.Millisecond}.Watch("p1")
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("Recheck's channel did not close")
	}
	stop()
	changed, stop = query.Recheck{Every: 10 * time.Millisecond}.Watch("p1")
	stop()
	select {
	case <-changed:
		t.Fatal("a stopped Recheck's channel closed")
	case <-time.After(30 * time.Millisecond):
	}
}
