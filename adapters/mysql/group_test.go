package mysql_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"hexapost/adapters/mysql"
	"hexapost/core/post"
	"hexapost/ports"
)

// queueing is how long a test gives a goroutine to reach the batch queue. The assertions hold
// whichever batch an append lands in; the wait only makes it likely that they share one.
const queueing = 50 * time.Millisecond

// held is a store with one transaction slot and a way to hold it: while an append to the
// blocker post waits before its commit, the appends that follow queue up and then run together
// in one batch.
type held struct {
	*mysql.EventStore
	st       *story
	blocker  string
	inserted chan struct{}
	release  chan struct{}
	done     chan error
}

func openHeld(t *testing.T) *held { return openHeldWith(t, mysql.Config{}) }

// openHeldWith is openHeld with cfg's settings besides those openHeld sets.
func openHeldWith(t *testing.T, cfg mysql.Config) *held {
	t.Helper()
	gate := newCommitGate(newID())
	h := &held{st: newStory(t), blocker: gate.postID, inserted: gate.inserted, release: gate.commit,
		done: make(chan error, 1)}
	cfg.Timeout, cfg.AppendSlots, cfg.BeforeCommit = waitFor, 1, gate.hook
	h.EventStore, _ = open(t, cfg)
	return h
}

// hold starts the blocker's append and waits until it occupies the slot.
func (h *held) hold(t *testing.T) {
	t.Helper()
	c := h.st.create(h.blocker)
	go func() {
		h.done <- h.Append(context.Background(), ports.Append{PostID: h.blocker, Changes: []ports.Change{c}})
	}()
	receive(t, h.inserted, "the blocker to hold the slot")
}

// together queues the appends in order behind the blocker, then lets them run, and returns
// their answers.
func (h *held) together(t *testing.T, appends []ports.Append) []error {
	t.Helper()
	h.hold(t)
	answers := make([]chan error, len(appends))
	for i, a := range appends {
		answers[i] = make(chan error, 1)
		go func() { answers[i] <- h.Append(context.Background(), a) }()
		time.Sleep(queueing) // keeps the queue in the order given
	}
	close(h.release)
	if err := receive(t, h.done, "the blocker to commit"); err != nil {
		t.Fatalf("blocker: %v", err)
	}
	errs := make([]error, len(appends))
	for i := range answers {
		errs[i] = receive(t, answers[i], "an append of the batch")
	}
	return errs
}

func create(st *story, id string) ports.Append {
	return ports.Append{PostID: id, Changes: []ports.Change{st.create(id)}}
}

func retitle(st *story, id, title string) ports.Append {
	c := st.retitle(id, title)
	return ports.Append{PostID: id, ExpectedVersion: c.Event.Version - 1, Changes: []ports.Change{c}}
}

// versions returns the versions stored for id.
func versions(t *testing.T, s *mysql.EventStore, id string) []int64 {
	t.Helper()
	events, err := s.Load(t.Context(), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := []int64{}
	for _, e := range events {
		out = append(out, e.Version)
	}
	return out
}

func TestRacersInOneBatchHaveExactlyOneWinner(t *testing.T) {
	t.Parallel()
	h := openHeld(t)
	id := newID()
	appendOK(t, h.EventStore, h.st.create(id))
	const racers = 8
	appends := make([]ports.Append, racers)
	for i := range appends {
		// Every racer decides on version 1: a new title, its own event id.
		p, err := post.FromHistory(id, []post.Event{mustLoad(t, h.EventStore, id)[0]})
		if err != nil {
			t.Fatal(err)
		}
		title := "racer"
		events, err := p.Update(post.Update{Title: &title}, h.st.stamp())
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Apply(events...); err != nil {
			t.Fatal(err)
		}
		appends[i] = ports.Append{PostID: id, ExpectedVersion: 1,
			Changes: []ports.Change{{Event: events[0], State: p.State()}}}
	}

	errs := h.together(t, appends)
	var won int
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, ports.ErrConflict):
			t.Errorf("racer %d: %v, want nil or %v", i, err, ports.ErrConflict)
		}
	}
	if won != 1 {
		t.Errorf("%d racers won, want exactly 1", won)
	}
	if got := versions(t, h.EventStore, id); !slices.Equal(got, []int64{1, 2}) {
		t.Errorf("stored versions %v, want [1 2]", got)
	}
}

func mustLoad(t *testing.T, s *mysql.EventStore, id string) []post.Event {
	t.Helper()
	events, err := s.Load(t.Context(), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	return events
}

// TestABatchCommitsItsGoodAppendsAndNothingOfItsBadOnes: conflicts (against the store and
// within the batch) and a taken idempotency key fail alone; the other appends of the batch,
// two of them to one stream, commit.
func TestABatchCommitsItsGoodAppendsAndNothingOfItsBadOnes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// giveKeys gives every append an idempotency key and adds one whose key is taken, which
		// makes the batch fall back to one append at a time; without keys the batch is written
		// with one statement per table.
		giveKeys bool
	}{
		{"written together", false},
		{"written one by one", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := openHeld(t)
			st := h.st
			good, stale, twice, taken := newID(), newID(), newID(), newID()
			appendOK(t, h.EventStore, st.create(stale))
			takenKey := newID()
			rec := ports.IdempotencyRecord{Key: takenKey, Fingerprint: "first", CreatedAt: epoch}
			if err := h.Append(t.Context(), ports.Append{PostID: newID(), Idempotency: &rec}); err != nil {
				t.Fatal(err)
			}
			appends := []ports.Append{
				create(st, good),
				create(newStory(t), stale), // the stream is at 1 already
				create(st, twice),
				retitle(st, twice, "second"), // follows the one before within the batch
			}
			wantErrs := []error{nil, ports.ErrConflict, nil, nil}
			var keys []string
			if tt.giveKeys {
				// At version 0 again, after the create in the batch. (Written together, a
				// conflict within the batch is decided without the database, and a mistake there
				// would be hidden: the insert would fail and send the batch one by one.)
				appends = append(appends, create(newStory(t), twice))
				wantErrs = append(wantErrs, ports.ErrConflict)
				for i := range appends {
					keys = append(keys, newID())
					appends[i].Idempotency = &ports.IdempotencyRecord{Key: keys[i], Fingerprint: "f", CreatedAt: epoch}
				}
				a := create(st, taken)
				a.Idempotency = &ports.IdempotencyRecord{Key: takenKey, Fingerprint: "second", CreatedAt: epoch}
				appends = append(appends, a)
				wantErrs = append(wantErrs, ports.ErrDuplicate)
			}

			errs := h.together(t, appends)
			for i, want := range wantErrs {
				if !errors.Is(errs[i], want) {
					t.Errorf("append %d: %v, want %v", i, errs[i], want)
				}
			}
			for _, c := range []struct {
				id   string
				want []int64
			}{{good, []int64{1}}, {stale, []int64{1}}, {twice, []int64{1, 2}}, {taken, []int64{}}} {
				if got := versions(t, h.EventStore, c.id); !slices.Equal(got, c.want) {
					t.Errorf("stream %s: versions %v, want %v", c.id, got, c.want)
				}
			}
			if got, err := h.Lookup(t.Context(), takenKey); err != nil || got.Fingerprint != "first" {
				t.Errorf("the taken key's record: %+v, %v; want the first one kept", got, err)
			}
			for i, k := range keys {
				_, err := h.Lookup(t.Context(), k)
				if stored := errs[i] == nil; (stored && err != nil) || (!stored && !errors.Is(err, ports.ErrNotFound)) {
					t.Errorf("key of append %d (answer %v): lookup %v", i, errs[i], err)
				}
			}
			wantOutbox := []string{stale + " v1", h.blocker + " v1", good + " v1", twice + " v1", twice + " v2"}
			if got := ids(relayOnce(t, h.EventStore, 100)); !slices.Equal(got, wantOutbox) {
				t.Errorf("outbox %v, want %v", got, wantOutbox)
			}
		})
	}
}

// TestABatchThatFailsHalfwayLeavesNothingBehind: a batch is sent as one packet of statements,
// which the server stops at the first that fails. Here the idempotency record of the first
// append is inserted, then the events' insert fails on the second append's event id, taken by
// a stored event. The transaction left open must be rolled back before the store's one
// connection serves the retry one append at a time: there, beginning a transaction would commit
// the record, and the first append would find its own key taken.
func TestABatchThatFailsHalfwayLeavesNothingBehind(t *testing.T) {
	t.Parallel()
	h := openHeldWith(t, mysql.Config{MaxOpenConns: 1})
	st := h.st
	stored, keyed, clashing := newID(), newID(), newID()
	appendOK(t, h.EventStore, st.create(stored))
	key := newID()
	first := create(st, keyed)
	first.Idempotency = &ports.IdempotencyRecord{Key: key, Fingerprint: "f", CreatedAt: epoch}
	second := create(st, clashing)
	second.Changes[0].Event.ID = mustLoad(t, h.EventStore, stored)[0].ID

	errs := h.together(t, []ports.Append{first, second})
	if errs[0] != nil {
		t.Errorf("the first append: %v, want it committed", errs[0])
	}
	if errs[1] == nil {
		t.Error("the append whose event id is taken committed")
	}
	if got := versions(t, h.EventStore, keyed); !slices.Equal(got, []int64{1}) {
		t.Errorf("the first append's stream: versions %v, want [1]", got)
	}
	if got := versions(t, h.EventStore, clashing); len(got) != 0 {
		t.Errorf("the second append's stream: versions %v, want none", got)
	}
	if got, err := h.Lookup(t.Context(), key); err != nil || got.Fingerprint != "f" {
		t.Errorf("the first append's record: %+v, %v", got, err)
	}
}

func TestAnAppendCancelledWhileQueuedIsNotWritten(t *testing.T) {
	t.Parallel()
	h := openHeld(t)
	h.hold(t)
	id := newID()
	ctx, cancel := context.WithCancel(t.Context())
	answer := make(chan error, 1)
	go func() { answer <- h.Append(ctx, create(h.st, id)) }()
	time.Sleep(queueing)
	cancel()
	if err := receive(t, answer, "the cancelled append to return while the slot is held"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled append: %v, want %v", err, context.Canceled)
	}
	close(h.release)
	if err := receive(t, h.done, "the blocker to commit"); err != nil {
		t.Fatal(err)
	}
	if got := versions(t, h.EventStore, id); len(got) != 0 {
		t.Errorf("the cancelled append stored versions %v", got)
	}
	if got := ids(relayOnce(t, h.EventStore, 10)); !slices.Equal(got, []string{h.blocker + " v1"}) {
		t.Errorf("outbox %v, want only the blocker's", got)
	}
}

// TestWhatAStoreSawIsOnlyALowerBound: a store appends without reading a stream's version when
// what it saw of the stream tells enough (see seenVersions). Another process appends to the
// same streams here, so each answer must still be the one the stream's real version gives.
func TestWhatAStoreSawIsOnlyALowerBound(t *testing.T) {
	t.Parallel()
	mine, dsn := open(t, mysql.Config{})
	other, _ := open(t, mysql.Config{DSN: dsn})
	st := newStory(t)
	id := newID()
	appendOK(t, mine, st.create(id)) // mine saw version 1
	appendOK(t, other, st.retitle(id, "two"))

	// Decided on version 1, which mine saw: the stream is at 2 now.
	stale := newStory(t)
	stale.create(id)
	if err := mine.Append(t.Context(), retitle(stale, id, "stale")); !errors.Is(err, ports.ErrConflict) {
		t.Errorf("an append decided on the version seen, overtaken since: %v, want %v", err, ports.ErrConflict)
	}
	// Decided on version 2, above what mine saw: it must look, and go through.
	if err := mine.Append(t.Context(), retitle(st, id, "three")); err != nil {
		t.Errorf("an append decided on the current version, above the one seen: %v", err)
	}
	// Decided on version 4, which the stream has not reached: appending v5 would leave a gap.
	st.retitle(id, "four, never appended")
	if err := mine.Append(t.Context(), retitle(st, id, "five")); !errors.Is(err, ports.ErrConflict) {
		t.Errorf("an append expecting a version the stream has not reached: %v, want %v", err, ports.ErrConflict)
	}
	if got := versions(t, mine, id); !slices.Equal(got, []int64{1, 2, 3}) {
		t.Errorf("stored versions %v, want [1 2 3]", got)
	}

	// A stream mine never saw, created by the other process: creating it again conflicts.
	created := newID()
	appendOK(t, other, st.create(created))
	if err := mine.Append(t.Context(), create(newStory(t), created)); !errors.Is(err, ports.ErrConflict) {
		t.Errorf("a create of a stream another process created: %v, want %v", err, ports.ErrConflict)
	}
	if got := versions(t, mine, created); !slices.Equal(got, []int64{1}) {
		t.Errorf("stored versions %v, want [1]", got)
	}
}
