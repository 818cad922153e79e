package contract

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"hexapost/core/post"
	"hexapost/ports"
)

// erase adds the erasure of post id to the story and returns its change.
func (s *story) erase(id string) ports.Change {
	s.t.Helper()
	e, err := s.posts[id].Erase(post.Erase{}, s.next())
	if err != nil {
		s.t.Fatalf("story: erase %s: %v", id, err)
	}
	s.record(s.posts[id], e)
	return s.changes[len(s.changes)-1]
}

// leaks returns v as JSON, which follows pointers, when it contains marker; else "".
func leaks(v any, marker string) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	if strings.Contains(string(b), marker) {
		return string(b)
	}
	return ""
}

// appendChanges appends changes, all of one post, with the record rec (nil for none).
func appendChanges(t *testing.T, s ports.EventAppender, rec *ports.IdempotencyRecord, changes ...ports.Change) {
	t.Helper()
	id := changes[0].Event.PostID
	a := ports.Append{PostID: id, ExpectedVersion: changes[0].Event.Version - 1, Changes: changes, Idempotency: rec}
	if err := s.Append(t.Context(), a); err != nil {
		t.Fatalf("append %s v%d: %v", id, changes[0].Event.Version, err)
	}
}

// storeErasure: an erasure appended with the events, outbox entries and idempotency records of
// its post on record leaves the post's personal data in none of them, keeps its versions, types
// and times, and leaves another post of the same author as it was.
func storeErasure(t *testing.T, s Store) {
	ctx := t.Context()
	marker := "marker-" + newID()
	st := newStory(t, epoch)
	id := st.create("T "+marker, "C "+marker, "A "+marker)
	other := st.create("other "+marker, "other", "A "+marker)
	st.update(id, post.Update{Title: ptr("T2 " + marker)})
	st.update(id, post.Update{Content: ptr("C3 " + marker)})
	changes := st.of(id)
	keys := newID() // a key is the client's name for a request, not personal data
	record := func(key string, c ports.Change) *ports.IdempotencyRecord {
		return &ports.IdempotencyRecord{Key: key + keys, Fingerprint: "fp " + marker, State: c.State, CreatedAt: epoch}
	}
	appendChanges(t, s, record("k1-", changes[0]), changes[0])
	appendChanges(t, s, nil, st.of(other)...)
	// The creations are published, the updates wait in the outbox.
	if got := relayAll(t, s, 2); len(got) != 2 {
		t.Fatalf("relayed %d changes, want 2", len(got))
	}
	appendChanges(t, s, record("k2-", changes[1]), changes[1:]...)
	// A command that changed nothing leaves a record only.
	if err := s.Append(ctx, ports.Append{PostID: id, ExpectedVersion: 3, Idempotency: record("k3-", changes[2])}); err != nil {
		t.Fatal(err)
	}
	authored, err := s.PostsOf(ctx, "A "+marker, "", 10)
	if err != nil || len(authored) != 2 {
		t.Fatalf("PostsOf before the erasure = %v, %v; want both posts", authored, err)
	}

	erasure := st.erase(id)
	stale := ports.Append{PostID: id, ExpectedVersion: 2, Changes: []ports.Change{erasure}}
	stale.Changes[0].Event.Version = 3
	stale.Changes[0].State.Version = 3
	if err := s.Append(ctx, stale); !errors.Is(err, ports.ErrConflict) {
		t.Fatalf("erasure at a stale version: %v, want ErrConflict", err)
	}
	if events, _ := s.Load(ctx, id, 0); leaks(events, marker) == "" {
		t.Fatalf("an erasure that conflicted redacted the events: %+v", events)
	}
	erasure.Metadata = ports.Metadata{Actor: "admin-token:0123abcd", RequestID: "erase-request"}
	appendChanges(t, s, nil, erasure)

	events, err := s.Load(ctx, id, 0)
	if err != nil || len(events) != 4 {
		t.Fatalf("Load = %d events, %v; want 4", len(events), err)
	}
	for i, e := range events {
		want := st.of(id)[i].Event.Redacted()
		if !e.OccurredAt.Equal(want.OccurredAt) || e.Type != want.Type || e.Version != want.Version ||
			e.Title != nil || e.Content != nil || e.AuthorName != nil {
			t.Errorf("event v%d = %+v, want %+v", i+1, e, want)
		}
	}
	all, err := s.ReadAll(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	streams, err := s.ReadStreams(ctx, ports.StreamPosition{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	relayed := relayAll(t, s, 10)
	for _, k := range []string{"k1-", "k2-", "k3-"} {
		rec, err := s.Lookup(ctx, k+keys)
		if err != nil {
			t.Fatalf("Lookup %s: %v", k, err)
		}
		if !rec.State.Erased || leaks(rec, marker) != "" {
			t.Errorf("record %s = %+v, want its state erased and no personal data", k, rec)
		}
	}
	for _, c := range relayed {
		if c.Event.PostID == id && (leaks(c, marker) != "" || !c.State.Erased) {
			t.Errorf("relayed after the erasure: %+v", c)
		}
		if c.Event.Type == post.EventErased && c.Metadata != erasure.Metadata {
			t.Errorf("the erasure's metadata = %+v, want its audit record %+v", c.Metadata, erasure.Metadata)
		}
	}
	if len(relayed) != 3 {
		t.Errorf("relayed %d changes after the erasure, want the two waiting updates and the erasure", len(relayed))
	}
	for _, e := range append(all, streamsAsRecorded(streams)...) {
		if e.Event.PostID == id && leaks(e, marker) != "" {
			t.Errorf("read after the erasure: %+v", e.Event)
		}
		if e.Event.PostID == other && e.Event.Version == 1 && leaks(e, marker) == "" {
			t.Errorf("the other post lost its data: %+v", e.Event)
		}
	}
	authored, err = s.PostsOf(ctx, "A "+marker, "", 10)
	if err != nil || len(authored) != 1 || authored[0] != other {
		t.Errorf("PostsOf after the erasure = %v, %v; want only %s", authored, err, other)
	}
}

func streamsAsRecorded(events []post.Event) []ports.Recorded {
	out := make([]ports.Recorded, len(events))
	for i, e := range events {
		out[i] = ports.Recorded{Event: e}
	}
	return out
}

// storeErasureRace: of an erasure and updates appended at once at one expected version, one
// wins; whichever it is, the stream holds no personal data once the erasure is in.
func storeErasureRace(t *testing.T, s Store) {
	const updaters = 8
	ctx := t.Context()
	marker := "marker-" + newID()
	st := newStory(t, epoch)
	id := st.create("T "+marker, "C "+marker, "A "+marker)
	appendChanges(t, s, nil, st.of(id)...)
	created := st.state(id)
	var racers []ports.Change
	for i := range updaters {
		p := post.FromState(created)
		events, err := p.Update(post.Update{Title: ptr(fmt.Sprint("T", i, " ", marker))}, st.next())
		if err != nil || p.Apply(events...) != nil {
			t.Fatal(err)
		}
		racers = append(racers, ports.Change{Event: events[0], State: p.State()})
	}
	erasure := st.erase(id)
	racers = append(racers, erasure)
	errs := make([]error, len(racers))
	var wg sync.WaitGroup
	for i, c := range racers {
		wg.Go(func() {
			errs[i] = s.Append(ctx, ports.Append{PostID: id, ExpectedVersion: 1, Changes: []ports.Change{c}})
		})
	}
	wg.Wait()
	winners := 0
	for i, err := range errs {
		switch {
		case err == nil:
			winners++
		case !errors.Is(err, ports.ErrConflict):
			t.Errorf("racer %d: %v, want nil or ErrConflict", i, err)
		}
	}
	if winners != 1 {
		t.Fatalf("%d racers won, want 1", winners)
	}
	if errs[len(errs)-1] != nil {
		// An update won: the erasure is decided again on the post it made, as the service does.
		p := post.FromState(created)
		won := 0
		for i, err := range errs {
			if err == nil {
				won = i
			}
		}
		if err := p.Apply(racers[won].Event); err != nil {
			t.Fatal(err)
		}
		e, err := p.Erase(post.Erase{}, st.next())
		if err != nil || p.Apply(e) != nil {
			t.Fatal(err)
		}
		appendChanges(t, s, nil, ports.Change{Event: e, State: p.State()})
	}
	events, err := s.Load(ctx, id, 0)
	if err != nil || events[len(events)-1].Type != post.EventErased {
		t.Fatalf("Load = %+v, %v; want the erasure last", events, err)
	}
	if leak := leaks(events, marker); leak != "" {
		t.Errorf("after the race: %s", leak)
	}
}

// viewsErasure: the projector applying an erasure leaves the post's view an erased tombstone
// out of the lists and its history without personal data, whatever the order of its changes,
// also for versions delivered again or late afterwards.
func viewsErasure(t *testing.T, newViews func(*testing.T) ViewsStore) {
	ctx := t.Context()
	v := newViews(t)
	p := newProjector(v)
	marker := "marker-" + newID()
	st := newStory(t, epoch)
	id := st.create("T "+marker, "C "+marker, "A "+marker)
	other := st.create("other", "other", "A "+marker)
	st.update(id, post.Update{Title: ptr("T2 " + marker)})
	st.update(id, post.Update{AuthorName: ptr("B " + marker)})
	st.erase(id)
	changes := st.of(id)
	// Version 3 comes only after the erasure, versions 1 and 2 again after it.
	order := []ports.Change{changes[0], changes[1], st.of(other)[0], changes[3], changes[2], changes[0], changes[1]}
	for _, c := range order {
		if err := p.Apply(ctx, c); err != nil {
			t.Fatalf("apply %s v%d: %v", c.Event.PostID, c.Event.Version, err)
		}
	}
	got, err := v.Get(ctx, id)
	if err != nil || got != st.state(id) || !got.Erased {
		t.Errorf("view = %+v, %v; want the erased tombstone %+v", got, err, st.state(id))
	}
	h := history(t, v, id)
	if len(h) != 4 {
		t.Fatalf("history holds %d versions, want 4", len(h))
	}
	for i, e := range h {
		c := changes[i]
		if leak := leaks(e, marker); leak != "" || !e.State.Erased || e.Type != c.Event.Type ||
			e.EventID != c.Event.ID || !e.OccurredAt.Equal(c.Event.OccurredAt) || e.State.Version != c.State.Version {
			t.Errorf("history v%d = %+v, want %+v redacted", i+1, e, c)
		}
	}
	for _, author := range []string{"", "A " + marker, "B " + marker} {
		page, err := v.List(ctx, ports.ListQuery{AuthorName: author, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range page {
			if s.ID == id {
				t.Errorf("list of %q shows the erased post: %+v", author, s)
			}
		}
	}
	if got, err := v.Get(ctx, other); err != nil || got != st.state(other) {
		t.Errorf("the other post = %+v, %v; want %+v", got, err, st.state(other))
	}
	if got := history(t, v, other); len(got) != 1 || got[0].State != st.state(other) {
		t.Errorf("the erasure changed the history of another post: %+v", got)
	}
	// A writer that stores an old version's entry after the erasure, then offers it as the
	// view, which the erased view keeps out, leaves no personal data either: PutCurrent redacts
	// what it stored.
	late := st.create("T "+marker, "C "+marker, "A "+marker)
	st.update(late, post.Update{Title: ptr("T2 " + marker)})
	st.erase(late)
	lateChanges := st.of(late)
	for _, c := range []ports.Change{lateChanges[0], lateChanges[2]} {
		if err := p.Apply(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	w := historyOf(lateChanges)[1]
	if err := v.PutHistory(ctx, w); err != nil {
		t.Fatal(err)
	}
	if stored, err := v.PutCurrent(ctx, w.State); stored || err != nil {
		t.Fatalf("PutCurrent of an old version over the erased view = %v, %v; want false", stored, err)
	}
	if got := history(t, v, late); len(got) != 3 || leaks(got, marker) != "" {
		t.Errorf("history after a late write = %+v, want 3 versions without personal data", got)
	}
}

// busErasure: erasing posts from the bus removes their messages that carry personal data,
// dead letters (decoded or not) and messages not yet delivered alike, keeps their erasure and
// leaves other posts' messages alone.
func busErasure(t *testing.T, p BusPair, f BusFeatures) {
	ctx := t.Context()
	marker := "marker-" + newID()
	st := newStory(t, epoch)
	id := st.create("T "+marker, "C "+marker, "A "+marker)
	other := st.create("other", "other", "ada")
	st.update(id, post.Update{Title: ptr("T2 " + marker)})
	erasure := st.erase(id)
	changes := st.of(id)
	errDown := errors.New("view store rejects writes")
	// The update of the post fails on every attempt and goes to the dead letters.
	rec := newRecorder(func(c ports.Change, _ int) error {
		if c.Event.ID == changes[1].Event.ID {
			return errDown
		}
		return nil
	})
	stop := subscribe(ctx, t, f, p.B, rec.handle)
	poison := []byte(`{"event":{"post_id":"` + id + `","title":"` + marker + `"}}`)
	if err := p.PublishRaw(ctx, poison); err != nil {
		t.Fatal(err)
	}
	publish(t, p.A, changes[0], st.of(other)[0], changes[1], erasure)
	waitDeadLetters(t, p, f, 2)
	eventually(t, f.Timeout, func() bool {
		return rec.appliedAll([]ports.Change{changes[0], st.of(other)[0], erasure})
	}, "the changes that do not fail")
	stop()
	// Published while nobody subscribes: still to be delivered when the erasure comes.
	late := someChanges(t, 1)
	publish(t, p.A, changes[0], late[0])

	began := time.Now()
	n, err := p.Eraser.EraseFromBus(ctx, []string{id})
	t.Logf("EraseFromBus took %s", time.Since(began))
	if err != nil {
		t.Fatalf("EraseFromBus: %v", err)
	}
	if n < 3 {
		t.Errorf("EraseFromBus removed %d messages, want at least the 2 dead letters and the undelivered change", n)
	}
	for _, d := range deadLetters(t, p) {
		if strings.Contains(string(d.Payload), marker) {
			t.Errorf("a dead letter of the erased post is left: %s", d.Payload)
		}
	}
	rec2 := newRecorder(nil)
	subscribe(ctx, t, f, p.B, rec2.handle)
	eventually(t, f.Timeout, func() bool { return rec2.appliedAll(late) }, "the other post's undelivered change")
	if rec2.applied(changes[0].Event.ID) != 0 {
		t.Error("a change of the erased post was delivered after its erasure from the bus")
	}
	began = time.Now()
	again, err := p.Eraser.EraseFromBus(ctx, []string{id})
	t.Logf("EraseFromBus again took %s", time.Since(began))
	if err != nil || again != 0 {
		t.Errorf("EraseFromBus again = %d, %v; want 0", again, err)
	}
}
