package memory_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"hexapost/adapters/memory"
	"hexapost/core/post"
	"hexapost/ports"
)

// The behaviour every event store shares is held by test/contract; these tests pin what is
// particular to the memory store.

func ptr[T any](v T) *T { return &v }

// clock is a settable time source for the Now fields of the configs.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

var t0 = time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)

// created returns the creation of post id as a change.
func created(id string) ports.Change {
	e := post.Event{
		ID: id + "-e1", PostID: id, Version: 1, Type: post.EventCreated, OccurredAt: t0,
		Title: ptr("title"), Content: ptr("content"), AuthorName: ptr("ada"),
	}
	return ports.Change{Event: e, State: post.State{
		ID: id, Version: 1, Title: "title", Content: "content", AuthorName: "ada", CreatedAt: t0, UpdatedAt: t0,
	}}
}

func TestIdempotencyRecordsExpireAfterADay(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	clk := &clock{now: t0}
	s := memory.NewEventStore(memory.EventStoreConfig{Now: clk.Now})
	rec := ports.IdempotencyRecord{Key: "k", Fingerprint: "first"}
	if err := s.Append(ctx, ports.Append{PostID: "p1", Changes: []ports.Change{created("p1")}, Idempotency: &rec}); err != nil {
		t.Fatal(err)
	}

	clk.advance(memory.KeyTTL)
	if _, err := s.Lookup(ctx, "k"); err != nil {
		t.Fatalf("Lookup after exactly %s: %v, want the record", memory.KeyTTL, err)
	}
	clk.advance(time.Nanosecond)
	if _, err := s.Lookup(ctx, "k"); !errors.Is(err, ports.ErrNotFound) {
		t.Fatalf("Lookup after more than %s: %v, want %v", memory.KeyTTL, err, ports.ErrNotFound)
	}

	again := ports.IdempotencyRecord{Key: "k", Fingerprint: "second"}
	if err := s.Append(ctx, ports.Append{PostID: "p2", Changes: []ports.Change{created("p2")}, Idempotency: &again}); err != nil {
		t.Fatalf("reusing an expired key: %v", err)
	}
	clk.advance(memory.KeyTTL)
	if got, err := s.Lookup(ctx, "k"); err != nil || got.Fingerprint != "second" {
		t.Errorf("Lookup = %q, %v; want the second record, whose day is not over", got.Fingerprint, err)
	}
}

func TestAppendedSignalsAppendsOfChanges(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := memory.NewEventStore(memory.EventStoreConfig{})
	signals := func() int {
		n := 0
		for {
			select {
			case <-s.Appended():
				n++
			default:
				return n
			}
		}
	}

	for _, id := range []string{"p1", "p2", "p3"} {
		if err := s.Append(ctx, ports.Append{PostID: id, Changes: []ports.Change{created(id)}}); err != nil {
			t.Fatal(err)
		}
	}
	if n := signals(); n != 1 {
		t.Errorf("%d signals pending after three appends, want them coalesced into 1", n)
	}
	rec := ports.IdempotencyRecord{Key: "k"}
	if err := s.Append(ctx, ports.Append{PostID: "p1", Idempotency: &rec}); err != nil {
		t.Fatal(err)
	}
	if n := signals(); n != 0 {
		t.Errorf("%d signals after an append with nothing to relay, want 0", n)
	}
}

func TestAppendRefusesChangesThatDoNotFollowTheExpectedVersion(t *testing.T) {
	t.Parallel()
	other := created("p2")
	skipped := created("p1")
	skipped.Event.Version = 2

	tests := []struct {
		name string
		give ports.Append
	}{
		{"another post's change", ports.Append{PostID: "p1", Changes: []ports.Change{other}}},
		{"a version gap", ports.Append{PostID: "p1", Changes: []ports.Change{skipped}}},
		{"a repeated version", ports.Append{PostID: "p1", Changes: []ports.Change{created("p1"), created("p1")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := memory.NewEventStore(memory.EventStoreConfig{})

			err := s.Append(t.Context(), tt.give)

			if err == nil || errors.Is(err, ports.ErrConflict) {
				t.Errorf("error = %v, want a refusal that is not a conflict", err)
			}
			if events, _ := s.Load(t.Context(), "p1", 0); len(events) != 0 {
				t.Errorf("stored %d events", len(events))
			}
		})
	}
}

func TestRelayedChangesAreCopies(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := memory.NewEventStore(memory.EventStoreConfig{})
	if err := s.Append(ctx, ports.Append{PostID: "p1", Changes: []ports.Change{created("p1")}}); err != nil {
		t.Fatal(err)
	}
	errBus := errors.New("bus down")

	_, err := s.Relay(ctx, 10, func(_ context.Context, cs []ports.Change) error {
		*cs[0].Event.Title = "changed by the publisher"
		return errBus
	})

	if !errors.Is(err, errBus) {
		t.Fatalf("Relay: %v, want %v", err, errBus)
	}
	var title string
	if _, err := s.Relay(ctx, 10, func(_ context.Context, cs []ports.Change) error {
		title = *cs[0].Event.Title
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if title != "title" {
		t.Errorf("relayed title %q after a publisher changed its copy, want %q", title, "title")
	}
}

func TestRelayReleasesItsClaimWhenPublishPanics(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := memory.NewEventStore(memory.EventStoreConfig{})
	if err := s.Append(ctx, ports.Append{PostID: "p1", Changes: []ports.Change{created("p1")}}); err != nil {
		t.Fatal(err)
	}

	func() {
		defer func() { _ = recover() }()
		_, _ = s.Relay(ctx, 10, func(context.Context, []ports.Change) error { panic("publisher bug") })
	}()

	n, err := s.Relay(ctx, 10, func(context.Context, []ports.Change) error { return nil })
	if n != 1 || err != nil {
		t.Errorf("Relay after a panicking publish = %d, %v; want the change handed out again", n, err)
	}
}

// The log of every event grows by chunks; reading it across their boundaries must give every
// event at its position.
func TestReadAllAcrossTheLogsChunks(t *testing.T) {
	t.Parallel()
	s := memory.NewEventStore(memory.EventStoreConfig{})
	const n = 10_000 // more than two chunks
	for i := range n {
		id := fmt.Sprintf("post-%05d", i)
		c := ports.Change{
			Event: post.Event{ID: id + "-1", PostID: id, Version: 1, Type: post.EventCreated, OccurredAt: time.Unix(int64(i), 0)},
			State: post.State{ID: id, Version: 1},
		}
		if err := s.Append(t.Context(), ports.Append{PostID: id, Changes: []ports.Change{c}}); err != nil {
			t.Fatal(err)
		}
	}
	seen := 0
	for after := int64(0); ; {
		page, err := s.ReadAll(t.Context(), after, 3_000)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, r := range page {
			if want := fmt.Sprintf("post-%05d", r.Position-1); r.Event.PostID != want || r.Position != after+1 {
				t.Fatalf("position %d (after %d) holds %s, want %s", r.Position, after, r.Event.PostID, want)
			}
			after = r.Position
			seen++
		}
	}
	if seen != n {
		t.Fatalf("read %d events, want %d", seen, n)
	}
}
