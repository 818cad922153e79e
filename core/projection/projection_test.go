package projection_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hexapost/core/post"
	"hexapost/core/projection"
	"hexapost/ports"
)

// views is a map-backed test double of the read model that records the writes it is given, in
// order, and counts the reads.
type views struct {
	mu          sync.Mutex
	current     map[string]post.State
	history     map[string]map[int64]ports.HistoryEntry
	writes      []string
	failHistory error
	reads       atomic.Int64
	// historyReads counts the reads of a history.
	historyReads atomic.Int64
}

var (
	_ ports.ViewWriter = (*views)(nil)
	_ ports.ViewReader = (*views)(nil)
)

func newViews() *views {
	return &views{current: map[string]post.State{}, history: map[string]map[int64]ports.HistoryEntry{}}
}

func (v *views) PutCurrent(_ context.Context, s post.State) (bool, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.writes = append(v.writes, fmt.Sprintf("current %s v%d", s.ID, s.Version))
	if have, ok := v.current[s.ID]; ok && have.Version >= s.Version {
		if have.Erased {
			v.redact(s.ID)
		}
		return false, nil
	}
	v.current[s.ID] = s
	return true, nil
}

func (v *views) PutHistory(_ context.Context, h ports.HistoryEntry) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.writes = append(v.writes, fmt.Sprintf("history %s v%d", h.State.ID, h.State.Version))
	if v.failHistory != nil {
		return v.failHistory
	}
	if v.history[h.State.ID] == nil {
		v.history[h.State.ID] = map[int64]ports.HistoryEntry{}
	}
	if _, ok := v.history[h.State.ID][h.State.Version]; !ok {
		v.history[h.State.ID][h.State.Version] = h
	}
	return nil
}

func (v *views) EraseHistory(_ context.Context, id string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.writes = append(v.writes, "erase history "+id)
	v.redact(id)
	return nil
}

// redact redacts the history of the post; the caller holds v.mu.
func (v *views) redact(id string) {
	for version, h := range v.history[id] {
		h.State = h.State.Redacted()
		v.history[id][version] = h
	}
}

func (v *views) Get(_ context.Context, id string) (post.State, error) {
	defer v.reads.Add(1)
	v.mu.Lock()
	defer v.mu.Unlock()
	s, ok := v.current[id]
	if !ok {
		return post.State{}, ports.ErrNotFound
	}
	return s, nil
}

func (v *views) List(_ context.Context, q ports.ListQuery) ([]post.State, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []post.State
	for _, s := range v.current {
		if !s.Deleted && (q.AuthorName == "" || s.AuthorName == q.AuthorName) {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.After(out[j].CreatedAt) })
	return out[:min(len(out), q.Limit)], nil
}

func (v *views) History(_ context.Context, id string, q ports.HistoryQuery) ([]ports.HistoryEntry, error) {
	defer v.historyReads.Add(1)
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.history[id]) == 0 {
		return nil, ports.ErrNotFound
	}
	var out []ports.HistoryEntry
	for _, h := range v.history[id] {
		if h.State.Version > q.After {
			out = append(out, h)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].State.Version < out[j].State.Version })
	return out[:min(len(out), max(q.Limit, 0))], nil
}

// wholeHistory is a page size larger than any history here.
const wholeHistory = 1000

func (v *views) recorded() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.writes...)
}

var t0 = time.Date(2025, 3, 1, 10, 0, 0, 123456000, time.UTC)

// change returns the change that brings post id to version with an event of type typ.
func change(id string, version int64, typ post.EventType) ports.Change {
	at := t0.Add(time.Duration(version) * time.Second)
	title := fmt.Sprint("title ", version)
	return ports.Change{
		Event: post.Event{
			ID: fmt.Sprintf("%s-e%d", id, version), PostID: id, Version: version, Type: typ, OccurredAt: at,
			Title: &title,
		},
		State: post.State{
			ID: id, Version: version, Title: title, Content: "Body", AuthorName: "Ann",
			CreatedAt: t0, UpdatedAt: at, Deleted: typ == post.EventDeleted,
		},
	}
}

func newProjector(v *views) *projection.Projector {
	return projection.NewProjector(v, slog.New(slog.DiscardHandler))
}

func TestProjectorRejectsInvalidChanges(t *testing.T) {
	t.Parallel()

	with := func(change func(*ports.Change)) ports.Change {
		c := ports.Change{
			Event: post.Event{ID: "e1", PostID: "p1", Version: 1, Type: post.EventCreated, OccurredAt: t0},
			State: post.State{ID: "p1", Version: 1, Title: "T", Content: "C", AuthorName: "A"},
		}
		change(&c)
		return c
	}

	tests := []struct {
		name       string
		giveChange ports.Change
	}{
		{name: "state of another post", giveChange: with(func(c *ports.Change) { c.State.ID = "p2" })},
		{name: "state without id", giveChange: with(func(c *ports.Change) { c.State.ID = "" })},
		{name: "event without post id", giveChange: with(func(c *ports.Change) { c.Event.PostID = "" })},
		{name: "event without id", giveChange: with(func(c *ports.Change) { c.Event.ID = "" })},
		{name: "state at another version", giveChange: with(func(c *ports.Change) { c.State.Version = 2 })},
		{name: "version 0", giveChange: with(func(c *ports.Change) { c.Event.Version, c.State.Version = 0, 0 })},
		{name: "negative version", giveChange: with(func(c *ports.Change) { c.Event.Version, c.State.Version = -1, -1 })},
		{name: "unknown event type", giveChange: with(func(c *ports.Change) { c.Event.Type = "post.renamed" })},
		{name: "empty event type", giveChange: with(func(c *ports.Change) { c.Event.Type = "" })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := newViews()

			err := newProjector(v).Apply(t.Context(), tt.giveChange)

			if !errors.Is(err, projection.ErrInvalidChange) {
				t.Errorf("error = %v, want %v", err, projection.ErrInvalidChange)
			}
			if w := v.recorded(); len(w) != 0 {
				t.Errorf("views written: %v", w)
			}
		})
	}
}

func TestProjectorApply(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name        string
		giveChanges []ports.Change
		wantWrites  []string
		wantCurrent post.State
		wantHistory []int64
	}{
		{
			name:        "history is written before the current view",
			giveChanges: []ports.Change{change("p1", 1, post.EventCreated)},
			wantWrites:  []string{"history p1 v1", "current p1 v1"},
			wantCurrent: change("p1", 1, post.EventCreated).State,
			wantHistory: []int64{1},
		},
		{
			name: "changes in order",
			giveChanges: []ports.Change{
				change("p1", 1, post.EventCreated), change("p1", 2, post.EventUpdated), change("p1", 3, post.EventDeleted),
			},
			wantWrites: []string{
				"history p1 v1", "current p1 v1", "history p1 v2", "current p1 v2", "history p1 v3", "current p1 v3",
			},
			wantCurrent: change("p1", 3, post.EventDeleted).State,
			wantHistory: []int64{1, 2, 3},
		},
		{
			name: "reordered and duplicated changes converge",
			giveChanges: []ports.Change{
				change("p1", 2, post.EventUpdated), change("p1", 1, post.EventCreated), change("p1", 2, post.EventUpdated),
			},
			wantWrites: []string{
				"history p1 v2", "current p1 v2", "history p1 v1", "current p1 v1", "history p1 v2", "current p1 v2",
			},
			wantCurrent: change("p1", 2, post.EventUpdated).State,
			wantHistory: []int64{1, 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := newViews()
			p := newProjector(v)

			for _, c := range tt.giveChanges {
				if err := p.Apply(t.Context(), c); err != nil {
					t.Fatalf("apply v%d: %v", c.Event.Version, err)
				}
			}

			if w := v.recorded(); !reflect.DeepEqual(w, tt.wantWrites) {
				t.Errorf("writes = %q, want %q", w, tt.wantWrites)
			}
			if got, err := v.Get(t.Context(), "p1"); err != nil || !reflect.DeepEqual(got, tt.wantCurrent) {
				t.Errorf("current = %+v, %v; want %+v", got, err, tt.wantCurrent)
			}
			history, err := v.History(t.Context(), "p1", ports.HistoryQuery{Limit: wholeHistory})
			if err != nil {
				t.Fatal(err)
			}
			gotVersions := make([]int64, len(history))
			for i, h := range history {
				gotVersions[i] = h.State.Version
			}
			if !reflect.DeepEqual(gotVersions, tt.wantHistory) {
				t.Errorf("history versions = %v, want %v", gotVersions, tt.wantHistory)
			}
		})
	}
}

func TestProjectorHistoryEntry(t *testing.T) {
	t.Parallel()
	v := newViews()
	c := change("p1", 1, post.EventCreated)

	err := newProjector(v).Apply(t.Context(), c)

	if err != nil {
		t.Fatal(err)
	}
	history, _ := v.History(t.Context(), "p1", ports.HistoryQuery{Limit: wholeHistory})
	want := []ports.HistoryEntry{{EventID: "p1-e1", Type: post.EventCreated, OccurredAt: c.Event.OccurredAt, State: c.State}}
	if !reflect.DeepEqual(history, want) {
		t.Errorf("history = %+v, want %+v", history, want)
	}
}

func TestProjectorDoesNotOfferTheViewWhenHistoryFails(t *testing.T) {
	t.Parallel()
	errDown := errors.New("read model down")
	v := newViews()
	v.failHistory = errDown

	err := newProjector(v).Apply(t.Context(), change("p1", 1, post.EventCreated))

	if !errors.Is(err, errDown) {
		t.Errorf("error = %v, want %v", err, errDown)
	}
	if w := v.recorded(); !reflect.DeepEqual(w, []string{"history p1 v1"}) {
		t.Errorf("writes = %q, want only the history", w)
	}
}

func TestProjectorLeavesTheViewToALaterChangeOfThePostInTheBatch(t *testing.T) {
	t.Parallel()
	v := newViews()
	p := newProjector(v)
	if err := p.Apply(t.Context(), change("p1", 1, post.EventCreated)); err != nil {
		t.Fatal(err)
	}
	v3 := change("p1", 3, post.EventUpdated)

	// The bus hands over v2, then v3, telling v2 that v3 follows.
	if err := p.ApplyWaiting(t.Context(), change("p1", 2, post.EventUpdated), &v3); err != nil {
		t.Fatal(err)
	}
	if err := p.Apply(t.Context(), v3); err != nil {
		t.Fatal(err)
	}

	want := []string{"history p1 v1", "current p1 v1", "history p1 v2", "history p1 v3", "current p1 v3"}
	if w := v.recorded(); !reflect.DeepEqual(w, want) {
		t.Errorf("writes = %q, want %q", w, want)
	}
	if h, _ := v.History(t.Context(), "p1", ports.HistoryQuery{Limit: wholeHistory}); len(h) != 3 {
		t.Errorf("history holds %d versions, want 3", len(h))
	}
}

// TestProjectorLogLinesNameTheChange pins the line an operator follows a change by on the
// query side: its post, version, event and type, the request that caused it when known, and
// whether its view is now the current one or was left to a later change of the same batch.
func TestProjectorLogLinesNameTheChange(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	p := projection.NewProjector(newViews(),
		slog.New(slog.NewJSONHandler(&out, nil)).With("server", "query"))
	v2 := change("p1", 2, post.EventUpdated)
	requested := change("p1", 1, post.EventCreated)
	requested.Metadata.RequestID = "abc-123"
	for _, apply := range []struct {
		c     ports.Change
		later *ports.Change
	}{
		{change("p1", 1, post.EventCreated), nil},
		{change("p1", 1, post.EventCreated), &v2},
		{requested, nil},
	} {
		if err := p.ApplyWaiting(t.Context(), apply.c, apply.later); err != nil {
			t.Fatal(err)
		}
	}
	want := []map[string]any{
		{"level": "INFO", "msg": "event projected", "server": "query", "post_id": "p1", "version": 1.0,
			"event_id": "p1-e1", "event_type": "post.created", "current": true},
		{"level": "INFO", "msg": "event projected", "server": "query", "post_id": "p1", "version": 1.0,
			"event_id": "p1-e1", "event_type": "post.created", "current": false, "view_left_to_version": 2.0},
		{"level": "INFO", "msg": "event projected", "server": "query", "post_id": "p1", "version": 1.0,
			"event_id": "p1-e1", "event_type": "post.created", "request_id": "abc-123", "current": false},
	}
	var got []map[string]any
	for line := range strings.Lines(out.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if _, ok := m["time"].(string); !ok {
			t.Errorf("line without a time: %q", line)
		}
		delete(m, "time")
		got = append(got, m)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("log lines:\n%v\nwant\n%v", got, want)
	}
}

func TestProjectorWritesTheViewWhenTheFollowingChangeDoesNotSupersedeIt(t *testing.T) {
	t.Parallel()
	invalid := change("p1", 3, post.EventUpdated)
	invalid.State.ID = "p2" // event and state disagree: the projector refuses it
	for name, later := range map[string]ports.Change{
		"lower version": change("p1", 1, post.EventCreated),
		"same version":  change("p1", 2, post.EventUpdated),
		"another post":  change("p2", 3, post.EventUpdated),
		"invalid":       invalid,
		"unknown type":  func() ports.Change { c := change("p1", 3, post.EventUpdated); c.Event.Type = "post.renamed"; return c }(),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			v := newViews()
			if err := newProjector(v).ApplyWaiting(
				t.Context(), change("p1", 2, post.EventUpdated), &later); err != nil {
				t.Fatal(err)
			}
			if w := v.recorded(); !reflect.DeepEqual(w, []string{"history p1 v2", "current p1 v2"}) {
				t.Errorf("writes = %q, want the history and the view", w)
			}
		})
	}
}
