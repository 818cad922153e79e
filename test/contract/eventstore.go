package contract

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hexapost/core/post"
	"hexapost/ports"
)

// Store is what the event store suite tests: the event store, its outbox and its idempotency
// records. One Append writes all three atomically, so one backend holds them.
type Store interface {
	ports.EventStore
	ports.StreamReader
	ports.Outbox
	ports.OutboxStats
	ports.IdempotencyStore
	ports.AuthorPosts
}

// EventStore holds an event store to the promises of ports.EventStore, ports.StreamReader, ports.Outbox,
// ports.OutboxStats, ports.IdempotencyStore and ports.AuthorPosts, erasures included. newStore must return a fresh, isolated, empty store on every call;
// the cases run in parallel, each with its own store.
func EventStore(t *testing.T, newStore func(t *testing.T) Store) {
	cases := []struct {
		name string
		run  func(*testing.T, Store)
	}{
		{"round trip keeps every field and nil versus empty", storeRoundTrip},
		{"occurred_at round-trips to the microsecond in any location", storeTimePrecision},
		{"unknown stream loads empty", storeUnknownStream},
		{"wrong expected version is a conflict and stores nothing", storeConflict},
		{"32 concurrent appends at one expected version on a new stream", storeRace(false)},
		{"32 concurrent appends at one expected version on an existing stream", storeRace(true)},
		{"idempotency record is stored with the append", storeIdempotencyRecord},
		{"taken idempotency key is a duplicate and stores nothing", storeDuplicateKey},
		{"append without changes stores only the record", storeRecordOnly},
		{"read all by position with paging", storeReadAll},
		{"read streams in stream order with paging", storeReadStreams},
		{"outbox relays every change once in position order", storeRelayInOrder},
		{"outbox keeps what a failed publish was given", storeRelayFailure},
		{"outbox hands on each change's metadata", storeRelayMetadata},
		{"concurrent relayers never share an entry", storeConcurrentRelayers},
		{"backlog counts unpublished changes and dates the first in line", storeBacklog},
		{"an erasure redacts its post's events, outbox entries and idempotency records", storeErasure},
		{"an erasure racing updates leaves no personal data", storeErasureRace},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, newStore(t))
		})
	}
}

func storeRoundTrip(t *testing.T, s Store) {
	id, e1, e2, e3, e4 := newID(), newID(), newID(), newID(), newID()
	at := epoch.Add(123456 * time.Microsecond)
	// build returns the same history with fresh pointers on every call.
	build := func() []ports.Change {
		return changesOf(t,
			post.Event{
				ID: e1, PostID: id, Version: 1, Type: post.EventCreated, OccurredAt: at,
				Title:      ptr("Héllo, wörld ✓"),
				Content:    ptr("line 1\nline \"2\"\t<b>&amp;</b> \u2028 😀 ' ; -- \\"),
				AuthorName: ptr("Ada Lovelace"),
			},
			post.Event{
				ID: e2, PostID: id, Version: 2, Type: post.EventUpdated, OccurredAt: at.Add(time.Second),
				Content: ptr("only the content changed"),
			},
			post.Event{
				ID: e3, PostID: id, Version: 3, Type: post.EventUpdated, OccurredAt: at.Add(2 * time.Second),
				Title: ptr(""), AuthorName: ptr("bob"),
			},
			post.Event{
				ID: e4, PostID: id, Version: 4, Type: post.EventDeleted, OccurredAt: at.Add(3 * time.Second),
			},
		)
	}
	give, want := build(), eventsOf(build())

	appendOK(t, s, ports.Append{PostID: id, ExpectedVersion: 0, Changes: give[:1]})
	appendOK(t, s, ports.Append{PostID: id, ExpectedVersion: 1, Changes: give[1:]})
	*give[0].Event.Title = "changed by the caller after Append"

	got := load(t, s, id)
	if !reflect.DeepEqual(utcAll(got, utcEvent), utcAll(want, utcEvent)) {
		t.Fatalf("Load =\n%s\nwant\n%s", showEvents(got), showEvents(want))
	}
	*got[0].Title = "changed by the caller after Load"
	if again := load(t, s, id); !reflect.DeepEqual(utcAll(again, utcEvent), utcAll(want, utcEvent)) {
		t.Errorf("a caller changed the stored events through what Load returned:\n%s", showEvents(again))
	}
}

func storeTimePrecision(t *testing.T, s Store) {
	ctx := t.Context()
	loc := time.FixedZone("UTC+05:30", 5*3600+30*60)
	at := time.Date(2025, 7, 14, 23, 59, 58, 987654000, loc)
	id := newID()
	c := changesOf(t, post.Event{
		ID: newID(), PostID: id, Version: 1, Type: post.EventCreated, OccurredAt: at,
		Title: ptr("t"), Content: ptr("c"), AuthorName: ptr("a"),
	})
	rec := ports.IdempotencyRecord{Key: newID(), Fingerprint: "f", Created: true, State: c[0].State, CreatedAt: at}

	appendOK(t, s, ports.Append{PostID: id, Changes: c, Idempotency: &rec})

	got := load(t, s, id)
	if len(got) != 1 {
		t.Fatalf("Load = %d events, want 1", len(got))
	}
	sameInstant(t, "Load occurred_at", got[0].OccurredAt, at)
	for _, r := range readAll(t, s, 100) {
		if r.Event.PostID == id {
			sameInstant(t, "ReadAll occurred_at", r.Event.OccurredAt, at)
		}
	}
	for _, ch := range relayAll(t, s, 100) {
		sameInstant(t, "relayed occurred_at", ch.Event.OccurredAt, at)
		sameInstant(t, "relayed created_at", ch.State.CreatedAt, at)
		sameInstant(t, "relayed updated_at", ch.State.UpdatedAt, at)
	}
	r, err := s.Lookup(ctx, rec.Key)
	if err != nil {
		t.Fatal(err)
	}
	sameInstant(t, "record created_at", r.CreatedAt, at)
	sameInstant(t, "record state created_at", r.State.CreatedAt, at)
	sameInstant(t, "record state updated_at", r.State.UpdatedAt, at)
}

func storeUnknownStream(t *testing.T, s Store) {
	got, err := s.Load(t.Context(), newID(), 0)
	if err != nil || len(got) != 0 {
		t.Errorf("Load(unknown) = %d events, %v; want none and no error", len(got), err)
	}
}

func storeConflict(t *testing.T, s Store) {
	ctx := t.Context()
	st := newStory(t, epoch)
	id := st.create("first", "body", "ada")
	st.update(id, post.Update{Title: ptr("second")})
	st.update(id, post.Update{Title: ptr("third")})
	c := st.of(id)
	appendOK(t, s, ports.Append{PostID: id, ExpectedVersion: 0, Changes: c[:1]})
	key := newID()

	tests := []struct {
		name string
		give ports.Append
	}{
		{"behind", ports.Append{PostID: id, ExpectedVersion: 0, Changes: c[:1],
			Idempotency: &ports.IdempotencyRecord{Key: key, Fingerprint: "f", State: c[0].State}}},
		{"ahead", ports.Append{PostID: id, ExpectedVersion: 2, Changes: c[2:3]}},
	}
	for _, tt := range tests {
		if err := s.Append(ctx, tt.give); !errors.Is(err, ports.ErrConflict) {
			t.Errorf("Append %s: error = %v, want %v", tt.name, err, ports.ErrConflict)
		}
	}

	if got := load(t, s, id); len(got) != 1 || got[0].ID != c[0].Event.ID {
		t.Errorf("after the conflicts Load =\n%s\nwant only v1", showEvents(got))
	}
	if _, err := s.Lookup(ctx, key); !errors.Is(err, ports.ErrNotFound) {
		t.Errorf("Lookup of the key of a conflicting append: %v, want %v", err, ports.ErrNotFound)
	}
	appendOK(t, s, ports.Append{PostID: id, ExpectedVersion: 1, Changes: c[1:2]})
	if got := relayAll(t, s, 100); len(got) != 2 {
		t.Errorf("outbox has %d changes, want 2 (v1, v2): a conflicting append left an entry", len(got))
	}
}

// storeRace lets 32 goroutines append the next version of one stream at once.
func storeRace(existing bool) func(*testing.T, Store) {
	return func(t *testing.T, s Store) {
		const writers = 32
		ctx := t.Context()
		id := newID()
		var base []ports.Change
		if existing {
			st := newStory(t, epoch)
			id = st.create("base", "body", "ada")
			base = st.of(id)
			appendOK(t, s, ports.Append{PostID: id, Changes: base})
		}
		changes, keys := make([]ports.Change, writers), make([]string, writers)
		for i := range writers {
			changes[i] = nextChange(t, id, base, fmt.Sprintf("writer %d", i))
			keys[i] = newID()
		}

		start := make(chan struct{})
		errs := make([]error, writers)
		var wg sync.WaitGroup
		for i := range writers {
			wg.Go(func() {
				<-start
				errs[i] = s.Append(ctx, ports.Append{
					PostID: id, ExpectedVersion: int64(len(base)), Changes: changes[i : i+1],
					Idempotency: &ports.IdempotencyRecord{Key: keys[i], Fingerprint: "f", State: changes[i].State},
				})
			})
		}
		close(start)
		wg.Wait()

		var winners []int
		for i, err := range errs {
			switch {
			case err == nil:
				winners = append(winners, i)
			case !errors.Is(err, ports.ErrConflict):
				t.Errorf("writer %d: error = %v, want nil or %v", i, err, ports.ErrConflict)
			}
		}
		if len(winners) != 1 {
			t.Fatalf("writers %v succeeded, want exactly one; the others must get %v", winners, ports.ErrConflict)
		}
		winner := winners[0]
		got := load(t, s, id)
		if len(got) != len(base)+1 || got[len(base)].ID != changes[winner].Event.ID {
			t.Errorf("Load =\n%s\nwant %d events ending with the winner's %s",
				showEvents(got), len(base)+1, changes[winner].Event.ID)
		}
		for i, k := range keys {
			_, err := s.Lookup(ctx, k)
			if (i == winner && err != nil) || (i != winner && !errors.Is(err, ports.ErrNotFound)) {
				t.Errorf("Lookup of writer %d's key (the winner is %d): %v", i, winner, err)
			}
		}
		n := 0
		for _, r := range readAll(t, s, 10) {
			if r.Event.PostID == id {
				n++
			}
		}
		if m := len(relayAll(t, s, 100)); n != len(base)+1 || m != len(base)+1 {
			t.Errorf("ReadAll has %d events and the outbox %d, want %d each", n, m, len(base)+1)
		}
	}
}

// nextChange decides the change that follows base in the post's stream: a create for an empty
// stream, an update of the title otherwise.
func nextChange(t *testing.T, id string, base []ports.Change, title string) ports.Change {
	t.Helper()
	p, err := post.FromHistory(id, eventsOf(base))
	if err != nil {
		t.Fatal(err)
	}
	stamp := post.Stamp{EventID: newID(), At: epoch.Add(time.Hour)}
	var e post.Event
	if p.Exists() {
		var events []post.Event
		events, err = p.Update(post.Update{Title: &title}, stamp)
		if len(events) == 1 {
			e = events[0]
		}
	} else {
		e, err = p.Create(post.Create{Title: title, Content: "body", AuthorName: "ada"}, stamp)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Apply(e); err != nil {
		t.Fatal(err)
	}
	return ports.Change{Event: e, State: p.State()}
}

func storeIdempotencyRecord(t *testing.T, s Store) {
	ctx := t.Context()
	st := newStory(t, epoch)
	a, b := st.create("a", "body", "ada"), st.create("b", "body", "bob")
	st.update(a, post.Update{Content: ptr("new body")})
	longKey := newID() + strings.Repeat("k", 255-36)
	recs := []ports.IdempotencyRecord{
		{Key: longKey, Fingerprint: "create a", Created: true, State: st.of(a)[0].State, CreatedAt: epoch},
		{Key: newID(), Fingerprint: "create b", Created: true, State: st.of(b)[0].State, CreatedAt: epoch},
		{Key: newID(), Fingerprint: "update a", State: st.of(a)[1].State, CreatedAt: epoch.Add(time.Second)},
	}
	appendOK(t, s, ports.Append{PostID: a, Changes: st.of(a)[:1], Idempotency: &recs[0]})
	appendOK(t, s, ports.Append{PostID: b, Changes: st.of(b), Idempotency: &recs[1]})
	appendOK(t, s, ports.Append{PostID: a, ExpectedVersion: 1, Changes: st.of(a)[1:], Idempotency: &recs[2]})

	for _, want := range recs {
		got, err := s.Lookup(ctx, want.Key)
		if err != nil {
			t.Errorf("Lookup(%.40q): %v", want.Key, err)
			continue
		}
		if !reflect.DeepEqual(utcRecord(got), utcRecord(want)) {
			t.Errorf("Lookup(%.40q) =\n%+v\nwant\n%+v", want.Key, got, want)
		}
	}
	if _, err := s.Lookup(ctx, newID()); !errors.Is(err, ports.ErrNotFound) {
		t.Errorf("Lookup(unknown): %v, want %v", err, ports.ErrNotFound)
	}
}

func storeDuplicateKey(t *testing.T, s Store) {
	ctx := t.Context()
	st := newStory(t, epoch)
	a, b := st.create("a", "body", "ada"), st.create("b", "body", "bob")
	st.update(a, post.Update{Title: ptr("a2")})
	key := newID()
	rec := func(fp string) *ports.IdempotencyRecord {
		return &ports.IdempotencyRecord{Key: key, Fingerprint: fp, State: st.state(a), CreatedAt: epoch}
	}
	appendOK(t, s, ports.Append{PostID: a, Changes: st.of(a)[:1], Idempotency: rec("first")})

	tests := []struct {
		name string
		give ports.Append
	}{
		{"on another, new stream", ports.Append{PostID: b, Changes: st.of(b), Idempotency: rec("other post")}},
		{"on the same stream", ports.Append{PostID: a, ExpectedVersion: 1, Changes: st.of(a)[1:], Idempotency: rec("again")}},
		{"without changes", ports.Append{PostID: a, ExpectedVersion: 1, Idempotency: rec("no change")}},
	}
	for _, tt := range tests {
		if err := s.Append(ctx, tt.give); !errors.Is(err, ports.ErrDuplicate) {
			t.Errorf("Append %s: error = %v, want %v", tt.name, err, ports.ErrDuplicate)
		}
	}

	if got := load(t, s, b); len(got) != 0 {
		t.Errorf("Load(b) =\n%s\nwant nothing", showEvents(got))
	}
	if got := load(t, s, a); len(got) != 1 {
		t.Errorf("Load(a) =\n%s\nwant only v1", showEvents(got))
	}
	if got, err := s.Lookup(ctx, key); err != nil || got.Fingerprint != "first" {
		t.Errorf("Lookup = %q, %v; want the first record", got.Fingerprint, err)
	}
	if got := relayAll(t, s, 100); len(got) != 1 || got[0].Event.ID != st.of(a)[0].Event.ID {
		t.Errorf("outbox = %v, want only a's v1", eventIDs(got))
	}
}

func storeRecordOnly(t *testing.T, s Store) {
	ctx := t.Context()
	st := newStory(t, epoch)
	id := st.create("a", "body", "ada")
	appendOK(t, s, ports.Append{PostID: id, Changes: st.of(id)})
	recs := []ports.IdempotencyRecord{
		{Key: newID(), Fingerprint: "unchanged", State: st.state(id), CreatedAt: epoch},
		{Key: newID(), Fingerprint: "unknown post", CreatedAt: epoch},
	}
	unknown := newID()

	// The version is not checked: a command that changed nothing records its answer whatever
	// the stream did meanwhile.
	appendOK(t, s, ports.Append{PostID: id, ExpectedVersion: 7, Idempotency: &recs[0]})
	appendOK(t, s, ports.Append{PostID: unknown, ExpectedVersion: 3, Idempotency: &recs[1]})

	for _, want := range recs {
		if got, err := s.Lookup(ctx, want.Key); err != nil || got.Fingerprint != want.Fingerprint {
			t.Errorf("Lookup = %q, %v; want %q", got.Fingerprint, err, want.Fingerprint)
		}
	}
	if got := load(t, s, id); len(got) != 1 {
		t.Errorf("Load =\n%s\nwant only v1", showEvents(got))
	}
	if got := load(t, s, unknown); len(got) != 0 {
		t.Errorf("Load(unknown) =\n%s\nwant nothing", showEvents(got))
	}
	if got := readAll(t, s, 100); len(got) != 1 {
		t.Errorf("ReadAll = %d events, want 1", len(got))
	}
	if got := relayAll(t, s, 100); len(got) != 1 {
		t.Errorf("outbox = %v, want only v1", eventIDs(got))
	}
}

// interleaved appends a story of three posts whose changes alternate, one append per change,
// then a fourth post's three changes in one append, and returns every change in append order.
func interleaved(t *testing.T, s Store) []ports.Change {
	t.Helper()
	st := newStory(t, epoch)
	a := st.create("a", "body", "ada")
	b := st.create("b", "body", "bob")
	st.update(a, post.Update{Title: ptr("a2")})
	c := st.create("c", "body", "cy")
	st.update(b, post.Update{Content: ptr("b2")})
	st.update(b, post.Update{AuthorName: ptr("ada")})
	st.update(a, post.Update{Title: ptr("a3")})
	st.delete(c)
	st.update(a, post.Update{Content: ptr("a4")})
	for _, ch := range st.changes {
		appendOK(t, s, ports.Append{PostID: ch.Event.PostID, ExpectedVersion: ch.Event.Version - 1,
			Changes: []ports.Change{ch}})
	}
	d := st.create("d", "body", "dee")
	st.update(d, post.Update{Title: ptr("d2")})
	st.update(d, post.Update{Title: ptr("d3")})
	appendOK(t, s, ports.Append{PostID: d, Changes: st.of(d)})
	return st.changes
}

func storeReadAll(t *testing.T, s Store) {
	ctx := t.Context()
	want := interleaved(t, s)

	all := readAll(t, s, 1000)
	if !reflect.DeepEqual(utcAll(recordedEvents(all), utcEvent), utcAll(eventsOf(want), utcEvent)) {
		t.Fatalf("ReadAll =\n%s\nwant\n%s", showEvents(recordedEvents(all)), showEvents(eventsOf(want)))
	}
	for i := 1; i < len(all); i++ {
		if all[i].Position <= all[i-1].Position {
			t.Errorf("position %d follows %d", all[i].Position, all[i-1].Position)
		}
	}
	for _, limit := range []int{1, 2, 5} {
		if paged := readAll(t, s, limit); !reflect.DeepEqual(paged, all) {
			t.Errorf("pages of %d =\n%s\nwant\n%s", limit, showEvents(recordedEvents(paged)),
				showEvents(recordedEvents(all)))
		}
	}
	mid, err := s.ReadAll(ctx, all[2].Position, 3)
	if err != nil || !reflect.DeepEqual(mid, all[3:6]) {
		t.Errorf("ReadAll(after %d, 3) = %v, %v; want events 3..5", all[2].Position, recordedEvents(mid), err)
	}
	if rest, err := s.ReadAll(ctx, all[len(all)-1].Position, 10); err != nil || len(rest) != 0 {
		t.Errorf("ReadAll after the last position = %d events, %v; want none", len(rest), err)
	}
}

func storeReadStreams(t *testing.T, s Store) {
	ctx := t.Context()
	changes := interleaved(t, s)
	ids := []string{}
	for _, c := range changes {
		if c.Event.Version == 1 {
			ids = append(ids, c.Event.PostID)
		}
	}
	slices.Sort(ids)
	var want []post.Event
	for _, id := range ids {
		for _, c := range changes {
			if c.Event.PostID == id {
				want = append(want, c.Event)
			}
		}
	}

	for _, limit := range []int{1, 2, 5, 1000} {
		if got := readStreams(t, s, limit); !reflect.DeepEqual(utcAll(got, utcEvent), utcAll(want, utcEvent)) {
			t.Errorf("ReadStreams in pages of %d =\n%s\nwant\n%s", limit, showEvents(got), showEvents(want))
		}
	}
	second := ports.StreamPosition{PostID: want[1].PostID, Version: want[1].Version}
	if mid, err := s.ReadStreams(ctx, second, 3); err != nil || !reflect.DeepEqual(utcAll(mid, utcEvent), utcAll(want[2:5], utcEvent)) {
		t.Errorf("ReadStreams(after %v, 3) =\n%s%v; want events 3..5", second, showEvents(mid), err)
	}
	last := ports.StreamPosition{PostID: want[len(want)-1].PostID, Version: want[len(want)-1].Version}
	if rest, err := s.ReadStreams(ctx, last, 10); err != nil || len(rest) != 0 {
		t.Errorf("ReadStreams after the last event = %d events, %v; want none", len(rest), err)
	}
}

func storeRelayInOrder(t *testing.T, s Store) {
	want := interleaved(t, s)

	got := relayAll(t, s, 3)

	if !reflect.DeepEqual(utcAll(got, utcChange), utcAll(want, utcChange)) {
		t.Errorf("relayed %v\nwant    %v", eventIDs(got), eventIDs(want))
	}
	if again := relayAll(t, s, 3); len(again) != 0 {
		t.Errorf("relayed again: %v", eventIDs(again))
	}
}

func storeRelayFailure(t *testing.T, s Store) {
	ctx := t.Context()
	want := interleaved(t, s)[:4]
	errBus := errors.New("bus down")

	var offered []ports.Change
	n, err := s.Relay(ctx, len(want), func(_ context.Context, cs []ports.Change) error {
		offered = append(offered, cs...)
		return errBus
	})
	if n != 0 || !errors.Is(err, errBus) {
		t.Errorf("Relay with a failing publish = %d, %v; want 0, %v", n, err, errBus)
	}
	if !reflect.DeepEqual(eventIDs(offered), eventIDs(want)) {
		t.Errorf("the failing publish was offered %v, want %v", eventIDs(offered), eventIDs(want))
	}

	got := relayAll(t, s, len(want))

	if !reflect.DeepEqual(eventIDs(got[:min(len(got), len(want))]), eventIDs(want)) {
		t.Errorf("after the failure relayed %v, want it to start with %v", eventIDs(got), eventIDs(want))
	}
}

// storeRelayMetadata: the trace context and request id given with a change at the append reach
// the relay unchanged, change by change, including none at all.
func storeRelayMetadata(t *testing.T, s Store) {
	id, at := newID(), epoch.Add(time.Second)
	changes := changesOf(t,
		post.Event{ID: newID(), PostID: id, Version: 1, Type: post.EventCreated, OccurredAt: at,
			Title: ptr("t"), Content: ptr("c"), AuthorName: ptr("a")},
		post.Event{ID: newID(), PostID: id, Version: 2, Type: post.EventUpdated, OccurredAt: at, Title: ptr("u")},
		post.Event{ID: newID(), PostID: id, Version: 3, Type: post.EventUpdated, OccurredAt: at, Title: ptr("v")},
		post.Event{ID: newID(), PostID: id, Version: 4, Type: post.EventDeleted, OccurredAt: at},
	)
	want := []ports.Metadata{
		{TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", TraceState: "vendor=a,b=c",
			RequestID: "abc-123"},
		{TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"},
		{RequestID: "request without a trace"},
		{},
	}
	for i := range changes {
		changes[i].Metadata = want[i]
	}
	appendOK(t, s, ports.Append{PostID: id, ExpectedVersion: 0, Changes: changes[:1]})
	appendOK(t, s, ports.Append{PostID: id, ExpectedVersion: 1, Changes: changes[1:]})

	got := relayAll(t, s, 10)

	gotMeta := make([]ports.Metadata, len(got))
	for i, c := range got {
		gotMeta[i] = c.Metadata
	}
	if !reflect.DeepEqual(gotMeta, want) {
		t.Errorf("relayed metadata %+v\nwant              %+v", gotMeta, want)
	}
}

func storeConcurrentRelayers(t *testing.T, s Store) {
	const posts, versions, relayers, batch = 10, 20, 4, 7
	ctx := t.Context()
	st := newStory(t, epoch)
	for i := range posts {
		st.create(fmt.Sprintf("post %d", i), "body", "ada")
	}
	for v := 2; v <= versions; v++ {
		for _, id := range st.order {
			st.update(id, post.Update{Title: ptr(fmt.Sprintf("version %d", v))})
		}
	}
	for _, c := range st.changes {
		appendOK(t, s, ports.Append{PostID: c.Event.PostID, ExpectedVersion: c.Event.Version - 1,
			Changes: []ports.Change{c}})
	}
	total := len(st.changes)

	errBus := errors.New("bus down")
	var (
		calls     atomic.Int64
		mu        sync.Mutex
		inFlight  = map[string]bool{}  // event ids handed out and not yet returned
		published = map[string]int{}   // event id → successful publishes
		last      = map[string]int64{} // post id → highest version published
		problems  []string
	)
	publish := func(_ context.Context, cs []ports.Change) error {
		fail := calls.Add(1)%5 == 0 // every fifth round fails, so claims must be released
		mu.Lock()
		inBatch := map[string]int64{}
		for _, c := range cs {
			e := c.Event
			if inFlight[e.ID] {
				problems = append(problems, fmt.Sprintf("%s v%d handed to two relayers at once", e.PostID, e.Version))
			}
			if published[e.ID] > 0 {
				problems = append(problems, fmt.Sprintf("%s v%d handed out after it was published", e.PostID, e.Version))
			}
			prev, ok := inBatch[e.PostID]
			if !ok {
				prev = last[e.PostID]
			}
			if prev != e.Version-1 {
				problems = append(problems, fmt.Sprintf("%s v%d handed out after v%d", e.PostID, e.Version, prev))
			}
			inFlight[e.ID], inBatch[e.PostID] = true, e.Version
		}
		mu.Unlock()
		runtime.Gosched() // let the other relayers run while this batch is in flight
		mu.Lock()
		defer mu.Unlock()
		for _, c := range cs {
			delete(inFlight, c.Event.ID)
			if !fail {
				published[c.Event.ID]++
				last[c.Event.PostID] = c.Event.Version
			}
		}
		if fail {
			return errBus
		}
		return nil
	}
	done := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(published) == total
	}

	deadline := time.Now().Add(defaultTimeout)
	var wg sync.WaitGroup
	for range relayers {
		wg.Go(func() {
			for !done() && time.Now().Before(deadline) {
				n, err := s.Relay(ctx, batch, publish)
				if err != nil && !errors.Is(err, errBus) {
					mu.Lock()
					problems = append(problems, fmt.Sprintf("Relay: %v", err))
					mu.Unlock()
					return
				}
				if n == 0 {
					runtime.Gosched() // the rest is held by other relayers
				}
			}
		})
	}
	wg.Wait()

	for _, p := range problems {
		t.Error(p)
	}
	for _, c := range st.changes {
		if n := published[c.Event.ID]; n != 1 {
			t.Errorf("%s v%d published %d times, want once", c.Event.PostID, c.Event.Version, n)
		}
	}
	if again := relayAll(t, s, total); len(again) != 0 {
		t.Errorf("relayed again: %v", eventIDs(again))
	}
}

func storeBacklog(t *testing.T, s Store) {
	ctx := t.Context()
	empty := ports.Backlog{}
	if got := backlog(t, s); got != empty {
		t.Fatalf("Backlog of an empty store = %+v, want %+v", got, empty)
	}
	all := interleaved(t, s)

	got := backlog(t, s)

	if got.Count != len(all) {
		t.Errorf("Backlog count = %d, want %d", got.Count, len(all))
	}
	sameInstant(t, "Backlog oldest", got.Oldest, all[0].Event.OccurredAt)

	// While a relay holds the head, it is still waiting: it is counted, and nothing blocks.
	var during ports.Backlog
	n, err := s.Relay(ctx, 4, func(context.Context, []ports.Change) error {
		during = backlog(t, s)
		return nil
	})
	if err != nil || n != 4 {
		t.Fatalf("Relay(4) = %d, %v", n, err)
	}
	if during.Count != len(all) {
		t.Errorf("Backlog count during a relay = %d, want %d", during.Count, len(all))
	}
	after := backlog(t, s)
	if after.Count != len(all)-4 {
		t.Errorf("Backlog count after relaying 4 = %d, want %d", after.Count, len(all)-4)
	}
	sameInstant(t, "Backlog oldest after relaying 4", after.Oldest, all[4].Event.OccurredAt)

	relayAll(t, s, len(all))
	if got := backlog(t, s); got != empty {
		t.Errorf("Backlog after relaying everything = %+v, want %+v", got, empty)
	}
}

func backlog(t *testing.T, s Store) ports.Backlog {
	t.Helper()
	b, err := s.Backlog(t.Context())
	if err != nil {
		t.Fatalf("Backlog: %v", err)
	}
	return b
}

func appendOK(t *testing.T, s Store, a ports.Append) {
	t.Helper()
	if err := s.Append(t.Context(), a); err != nil {
		t.Fatalf("Append %s at %d: %v", a.PostID, a.ExpectedVersion, err)
	}
}

func load(t *testing.T, s Store, id string) []post.Event {
	t.Helper()
	events, err := s.Load(t.Context(), id, 0)
	if err != nil {
		t.Fatalf("Load(%s): %v", id, err)
	}
	return events
}

// readAll reads the whole store in pages of limit, checking the size of each page.
func readAll(t *testing.T, s Store, limit int) []ports.Recorded {
	t.Helper()
	var all []ports.Recorded
	after := int64(0)
	for range 10_000 {
		page, err := s.ReadAll(t.Context(), after, limit)
		if err != nil {
			t.Fatalf("ReadAll(%d, %d): %v", after, limit, err)
		}
		if len(page) > limit {
			t.Fatalf("ReadAll(%d, %d) = %d events", after, limit, len(page))
		}
		if len(page) == 0 {
			return all
		}
		all = append(all, page...)
		after = page[len(page)-1].Position
	}
	t.Fatal("ReadAll does not come to an end")
	return nil
}

// readStreams reads the whole store in stream order in pages of limit, checking the size of
// each page.
func readStreams(t *testing.T, s Store, limit int) []post.Event {
	t.Helper()
	var all []post.Event
	var after ports.StreamPosition
	for range 10_000 {
		page, err := s.ReadStreams(t.Context(), after, limit)
		if err != nil {
			t.Fatalf("ReadStreams(%v, %d): %v", after, limit, err)
		}
		if len(page) > limit {
			t.Fatalf("ReadStreams(%v, %d) = %d events", after, limit, len(page))
		}
		if len(page) == 0 {
			return all
		}
		all = append(all, page...)
		last := page[len(page)-1]
		after = ports.StreamPosition{PostID: last.PostID, Version: last.Version}
	}
	t.Fatal("ReadStreams does not come to an end")
	return nil
}

// relayAll relays until the outbox is empty and returns what was published, in order.
func relayAll(t *testing.T, s Store, limit int) []ports.Change {
	t.Helper()
	var all []ports.Change
	for range 10_000 {
		var batch []ports.Change
		n, err := s.Relay(t.Context(), limit, func(_ context.Context, cs []ports.Change) error {
			batch = cs
			return nil
		})
		if err != nil {
			t.Fatalf("Relay: %v", err)
		}
		if n != len(batch) || n > limit {
			t.Fatalf("Relay(%d) = %d, but published %d changes", limit, n, len(batch))
		}
		if n == 0 {
			return all
		}
		all = append(all, batch...)
	}
	t.Fatal("the outbox does not run empty")
	return nil
}

func sameInstant(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !got.Truncate(time.Microsecond).Equal(want) {
		t.Errorf("%s = %s, want %s", what, got.Format(time.RFC3339Nano), want.Format(time.RFC3339Nano))
	}
}

func recordedEvents(rs []ports.Recorded) []post.Event {
	out := make([]post.Event, len(rs))
	for i, r := range rs {
		out[i] = r.Event
	}
	return out
}

func eventIDs(cs []ports.Change) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = fmt.Sprintf("%s v%d", c.Event.PostID, c.Event.Version)
	}
	return out
}

func showEvents(es []post.Event) string {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "  %s v%d %s %s id=%s title=%s content=%s author=%s\n", e.PostID, e.Version, e.Type,
			e.OccurredAt.Format(time.RFC3339Nano), e.ID, showPtr(e.Title), showPtr(e.Content), showPtr(e.AuthorName))
	}
	return b.String()
}

func showPtr(p *string) string {
	if p == nil {
		return "nil"
	}
	return fmt.Sprintf("%q", *p)
}
