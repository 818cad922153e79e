package contract

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"hexapost/core/post"
	"hexapost/core/projection"
	"hexapost/ports"
)

// ViewsStore is what the views suite tests: the read model's writer and reader over one backend.
type ViewsStore interface {
	ports.ViewWriter
	ports.ViewReader
}

// Views holds a read model to the promises of ports.ViewWriter and ports.ViewReader, and checks
// that the real projector converges on it whatever the order and number of deliveries.
// newViews must return a fresh, isolated, empty read model on every call; the cases run in
// parallel, each with its own read models.
func Views(t *testing.T, newViews func(t *testing.T) ViewsStore) {
	cases := []struct {
		name string
		run  func(*testing.T, func(*testing.T) ViewsStore)
	}{
		{"projector converges under duplicates and reordering", viewsConvergence},
		{"current view keeps the highest version", viewsVersionGuard},
		{"history keeps the first entry of a version", viewsHistoryOnce},
		{"concurrent projectors of one post converge", viewsConcurrentWriters},
		{"competing projectors, each change applied once, converge", viewsCompetingWriters},
		{"list pages newest first, by author, after a cursor", viewsListPages},
		{"list pages are stable under concurrent inserts", viewsListStable},
		{"history pages oldest first after a version", viewsHistoryPages},
		{"unknown post is not found", viewsUnknown},
		{"an erasure leaves a tombstone and a history without personal data", viewsErasure},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, newViews)
		})
	}
}

// authors are the authors of the scenario, and one without posts.
var authors = []string{"", "ada", "bob", "cy", "nobody"}

// scenario is a realistic history: posts created, edited, moved to another author and deleted,
// their changes interleaved, two posts created at the same instant.
func scenario(t *testing.T) *story {
	st := newStory(t, epoch)
	a := st.create("Hello", "First post", "ada")
	b := st.create("Second", "More", "bob")
	st.update(a, post.Update{Title: ptr("Hello, world")})
	c := st.create("Third", "Body", "ada")
	st.update(b, post.Update{AuthorName: ptr("ada")})
	st.update(a, post.Update{Content: ptr("Edited")})
	d := st.create("Fourth", "Body", "cy")
	st.delete(c)
	st.update(b, post.Update{Title: ptr("Second, edited"), Content: ptr("Even more")})
	e := st.createAt(st.state(d).CreatedAt, "Fifth", "Created at the same instant as the fourth", "bob")
	st.update(d, post.Update{Title: ptr("Fourth, edited")})
	st.update(e, post.Update{AuthorName: ptr("cy")})
	f := st.create("Sixth", "Short-lived", "bob")
	st.update(f, post.Update{Content: ptr("Soon gone")})
	st.delete(f)
	st.update(a, post.Update{Title: ptr("Hello again"), AuthorName: ptr("bob")})
	return st
}

func viewsConvergence(t *testing.T, newViews func(*testing.T) ViewsStore) {
	st := scenario(t)
	want := newViews(t)
	project(t, want, st.changes)
	for _, id := range st.order {
		if got := get(t, want, id); !reflect.DeepEqual(utcState(got), utcState(st.state(id))) {
			t.Errorf("in order, view of %s =\n%+v\nwant\n%+v", id, got, st.state(id))
		}
		if got, wantH := history(t, want, id), historyOf(st.of(id)); !reflect.DeepEqual(got, wantH) {
			t.Errorf("in order, history of %s =\n%+v\nwant\n%+v", id, got, wantH)
		}
	}
	wantLists := map[string][]post.State{}
	for _, a := range authors {
		wantLists[a] = listing(t, want, a, 2)
		if exp := expectedList(st, a); !reflect.DeepEqual(wantLists[a], exp) {
			t.Errorf("in order, list of %q =\n%s\nwant\n%s", a, showStates(wantLists[a]), showStates(exp))
		}
	}

	for seed := range uint64(5) {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			t.Parallel()
			v := newViews(t)

			project(t, v, shuffled(st.changes, seed))

			for _, id := range st.order {
				if got, w := get(t, v, id), get(t, want, id); !reflect.DeepEqual(utcState(got), utcState(w)) {
					t.Errorf("view of %s =\n%+v\nwant (as in order)\n%+v", id, got, w)
				}
				if got, w := history(t, v, id), history(t, want, id); !reflect.DeepEqual(got, w) {
					t.Errorf("history of %s =\n%+v\nwant (as in order)\n%+v", id, got, w)
				}
			}
			for _, a := range authors {
				if got := listing(t, v, a, 2); !reflect.DeepEqual(got, wantLists[a]) {
					t.Errorf("list of %q =\n%s\nwant (as in order)\n%s", a, showStates(got), showStates(wantLists[a]))
				}
			}
		})
	}
}

func viewsVersionGuard(t *testing.T, newViews func(*testing.T) ViewsStore) {
	ctx := t.Context()
	v := newViews(t)
	st := newStory(t, epoch)
	id := st.create("title", "body", "ada")
	st.update(id, post.Update{Title: ptr("newer")})
	st.delete(id)
	c := st.of(id)

	steps := []struct {
		give       post.State
		wantStored bool
		wantView   post.State
	}{
		{give: c[1].State, wantStored: true, wantView: c[1].State},
		{give: c[0].State, wantStored: false, wantView: c[1].State},
		{give: c[1].State, wantStored: false, wantView: c[1].State},
		{give: c[2].State, wantStored: true, wantView: c[2].State},
		{give: c[1].State, wantStored: false, wantView: c[2].State},
	}
	for _, s := range steps {
		stored, err := v.PutCurrent(ctx, s.give)
		if err != nil {
			t.Fatalf("PutCurrent v%d: %v", s.give.Version, err)
		}
		if stored != s.wantStored {
			t.Errorf("PutCurrent v%d reported stored = %t, want %t", s.give.Version, stored, s.wantStored)
		}
		if got := get(t, v, id); !reflect.DeepEqual(utcState(got), utcState(s.wantView)) {
			t.Errorf("after PutCurrent v%d the view is v%d (deleted %t), want v%d",
				s.give.Version, got.Version, got.Deleted, s.wantView.Version)
		}
	}
	if got := listing(t, v, "", 10); len(got) != 0 {
		t.Errorf("list after an older live state followed the deletion:\n%s", showStates(got))
	}
}

func viewsHistoryOnce(t *testing.T, newViews func(*testing.T) ViewsStore) {
	ctx := t.Context()
	v := newViews(t)
	st := newStory(t, epoch)
	id := st.create("title", "body", "ada")
	st.update(id, post.Update{Title: ptr("newer")})
	want := historyOf(st.of(id))
	other := want[0]
	other.EventID, other.State.Title = newID(), "another entry for the same version"

	for _, h := range []ports.HistoryEntry{want[1], want[0], other, want[1], want[0]} {
		if err := v.PutHistory(ctx, h); err != nil {
			t.Fatalf("PutHistory v%d: %v", h.State.Version, err)
		}
	}

	if got := history(t, v, id); !reflect.DeepEqual(got, want) {
		t.Errorf("history =\n%+v\nwant\n%+v", got, want)
	}
}

func viewsConcurrentWriters(t *testing.T, newViews func(*testing.T) ViewsStore) {
	const writers = 16
	v := newViews(t)
	st := newStory(t, epoch)
	a := st.create("a", "body", "ada")
	b := st.create("b", "body", "ada")
	for i := range 24 {
		st.update(a, post.Update{Title: ptr(fmt.Sprintf("a, edit %d", i))})
		if i < 10 {
			st.update(b, post.Update{Content: ptr(fmt.Sprintf("b, edit %d", i))})
		}
	}
	st.delete(b)

	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range writers {
		changes := shuffled(st.changes, uint64(i))
		wg.Go(func() {
			<-start
			p := newProjector(v)
			for _, c := range changes {
				if err := p.Apply(t.Context(), c); err != nil {
					t.Errorf("writer %d: apply %s v%d: %v", i, c.Event.PostID, c.Event.Version, err)
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()

	for _, id := range []string{a, b} {
		if got, want := get(t, v, id), st.state(id); !reflect.DeepEqual(utcState(got), utcState(want)) {
			t.Errorf("view of %s is v%d (deleted %t), want v%d (deleted %t)",
				id, got.Version, got.Deleted, want.Version, want.Deleted)
		}
		if got, want := history(t, v, id), historyOf(st.of(id)); !reflect.DeepEqual(got, want) {
			t.Errorf("history of %s has %d entries, want %d in version order", id, len(got), len(want))
		}
	}
	if got := listing(t, v, "ada", 10); len(got) != 1 || got[0].ID != a {
		t.Errorf("list =\n%s\nwant only %s", showStates(got), a)
	}
}

// viewsCompetingWriters is the query side scaled out: every change is applied exactly once, by
// one of several projectors running at the same time, in no particular order — as competing
// consumers of one group apply them. Nothing but the read model's own guard stands between a
// lower version written late and the higher one written just before it.
func viewsCompetingWriters(t *testing.T, newViews func(*testing.T) ViewsStore) {
	const writers, posts, edits = 8, 12, 15
	v := newViews(t)
	st := newStory(t, epoch)
	ids := make([]string, posts)
	for i := range ids {
		ids[i] = st.create(fmt.Sprintf("post %d", i), "body", "ada")
	}
	for e := range edits {
		for i, id := range ids {
			st.update(id, post.Update{Title: ptr(fmt.Sprintf("post %d, edit %d", i, e))})
		}
	}
	st.delete(ids[0])

	// Deal the changes out like a consumer group: each goes to exactly one writer.
	shares := make([][]ports.Change, writers)
	for i, c := range shuffled(st.changes, 7) {
		shares[i%writers] = append(shares[i%writers], c)
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, share := range shares {
		wg.Go(func() {
			<-start
			p := newProjector(v)
			for _, c := range share {
				if err := p.Apply(t.Context(), c); err != nil {
					t.Errorf("writer %d: apply %s v%d: %v", i, c.Event.PostID, c.Event.Version, err)
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()

	for _, id := range ids {
		if got, want := get(t, v, id), st.state(id); !reflect.DeepEqual(utcState(got), utcState(want)) {
			t.Errorf("view of %s is v%d (deleted %t), want v%d (deleted %t)",
				id, got.Version, got.Deleted, want.Version, want.Deleted)
		}
	}
}

func viewsListPages(t *testing.T, newViews func(*testing.T) ViewsStore) {
	v := newViews(t)
	st := newStory(t, epoch)
	var ids []string
	for i := range 25 {
		author := authors[1+i%3]
		if i%5 == 4 { // same creation time as the post before: the id decides
			ids = append(ids, st.createAt(st.state(ids[i-1]).CreatedAt, fmt.Sprintf("post %d", i), "body", author))
			continue
		}
		ids = append(ids, st.create(fmt.Sprintf("post %d", i), "body", author))
	}
	st.delete(ids[3])
	st.delete(ids[10])
	st.update(ids[7], post.Update{AuthorName: ptr("cy")})
	st.update(ids[12], post.Update{Title: ptr("post 12, edited")})
	project(t, v, st.changes)

	for _, author := range authors {
		want := expectedList(st, author)
		for _, limit := range []int{1, 2, 7, 100} {
			if got := listing(t, v, author, limit); !reflect.DeepEqual(got, want) {
				t.Errorf("author %q, pages of %d:\n%s\nwant\n%s", author, limit, showStates(got), showStates(want))
			}
		}
	}
}

func viewsListStable(t *testing.T, newViews func(*testing.T) ViewsStore) {
	const limit = 4
	ctx := t.Context()
	v := newViews(t)
	base := newStory(t, epoch)
	for i := range 30 {
		base.create(fmt.Sprintf("post %d", i), "body", authors[1+i%2])
	}
	project(t, v, base.changes)
	want := expectedList(base, "")
	// Posts created later than every listed one, inserted while the pages are read: they sort
	// before the cursor and must not shift the pages. Older posts sort after the cursor and may
	// show up at the end. Once, the post under the cursor is deleted before the next page.
	newer, older := newStory(t, epoch.Add(time.Hour)), newStory(t, epoch.Add(-time.Hour))
	for i := range 400 {
		newer.create(fmt.Sprintf("newer %d", i), "body", "ada")
		older.create(fmt.Sprintf("older %d", i), "body", "bob")
	}
	inserted := map[string]string{} // id → "newer" or "older"
	for _, id := range newer.order {
		inserted[id] = "newer"
	}
	for _, id := range older.order {
		inserted[id] = "older"
	}
	p := newProjector(v)

	page := list(t, v, ports.ListQuery{Limit: limit})
	got := page
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		p := newProjector(v)
		for _, c := range newer.changes[len(newer.changes)/2:] {
			select {
			case <-stop:
				return
			default:
			}
			if err := p.Apply(ctx, c); err != nil {
				t.Errorf("concurrent insert: %v", err)
				return
			}
		}
	}()
	for i := 0; len(page) == limit && i < 100; i++ {
		for _, c := range []ports.Change{newer.changes[i], older.changes[i]} {
			if err := p.Apply(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		last := page[len(page)-1]
		if i == 2 { // the post under the cursor goes away; the next page starts where it was
			base.delete(last.ID)
			project(t, v, base.changes[len(base.changes)-1:])
		}
		page = list(t, v, ports.ListQuery{Limit: limit, After: &ports.Cursor{CreatedAt: last.CreatedAt, ID: last.ID}})
		got = append(got, page...)
	}
	close(stop)
	<-done

	var listed []post.State
	for i, s := range got {
		if i > 0 && compareStates(got[i-1], s) >= 0 {
			t.Errorf("item %d (%s) does not follow item %d (%s) in list order", i, s.ID, i-1, got[i-1].ID)
		}
		switch inserted[s.ID] {
		case "newer":
			t.Errorf("item %d is %q, inserted before the cursor after the first page", i, s.Title)
		case "":
			listed = append(listed, s)
		}
	}
	if !reflect.DeepEqual(listed, want) {
		t.Errorf("the original posts came out as\n%s\nwant\n%s", showStates(listed), showStates(want))
	}
}

func viewsUnknown(t *testing.T, newViews func(*testing.T) ViewsStore) {
	ctx := t.Context()
	v := newViews(t)
	st := newStory(t, epoch)
	st.create("known", "body", "ada")
	project(t, v, st.changes)
	unknown := newID()

	if _, err := v.Get(ctx, unknown); !errors.Is(err, ports.ErrNotFound) {
		t.Errorf("Get(unknown): %v, want %v", err, ports.ErrNotFound)
	}
	for _, q := range []ports.HistoryQuery{{Limit: 20}, {After: 3, Limit: 20}} {
		if _, err := v.History(ctx, unknown, q); !errors.Is(err, ports.ErrNotFound) {
			t.Errorf("History(unknown, %+v): %v, want %v", q, err, ports.ErrNotFound)
		}
	}
}

func viewsHistoryPages(t *testing.T, newViews func(*testing.T) ViewsStore) {
	v := newViews(t)
	st := newStory(t, epoch)
	id := st.create("title", "body", "ada")
	for i := range 44 {
		st.update(id, post.Update{Content: ptr(fmt.Sprintf("edit %d", i))})
	}
	gappy := st.create("gappy", "body", "bob")
	st.update(gappy, post.Update{Title: ptr("v2")})
	st.update(gappy, post.Update{Title: ptr("v3")})
	st.update(gappy, post.Update{Title: ptr("v4")})
	project(t, v, st.of(id))
	for _, c := range st.of(gappy) {
		if c.Event.Version != 3 { // stored as a projector elsewhere still applying v3 leaves it
			project(t, v, []ports.Change{c})
		}
	}
	want := historyOf(st.of(id))

	var all []ports.HistoryEntry
	q := ports.HistoryQuery{Limit: 20}
	for _, wantLen := range []int{20, 20, 5, 0} {
		page := historyPage(t, v, id, q)
		if len(page) != wantLen {
			t.Fatalf("page after v%d has %d entries, want %d", q.After, len(page), wantLen)
		}
		all = append(all, page...)
		if len(page) > 0 {
			q.After = page[len(page)-1].State.Version
		}
	}
	if !reflect.DeepEqual(all, want) {
		t.Errorf("the pages of 20 give versions %v, want 1 to 45 once each, in order", versionsOf(all))
	}

	tests := []struct {
		name         string
		giveID       string
		giveQuery    ports.HistoryQuery
		wantVersions []int64
	}{
		{"a page inside", id, ports.HistoryQuery{After: 7, Limit: 3}, []int64{8, 9, 10}},
		{"a page larger than what is left", id, ports.HistoryQuery{After: 43, Limit: 100}, []int64{44, 45}},
		{"after the last version", id, ports.HistoryQuery{After: 45, Limit: 20}, []int64{}},
		{"far past the end", id, ports.HistoryQuery{After: 1_000_000, Limit: 20}, []int64{}},
		{"a version not stored is skipped, not waited for", gappy, ports.HistoryQuery{Limit: 20}, []int64{1, 2, 4}},
		{"after a version not stored", gappy, ports.HistoryQuery{After: 2, Limit: 1}, []int64{4}},
	}
	for _, tt := range tests {
		if got := versionsOf(historyPage(t, v, tt.giveID, tt.giveQuery)); !reflect.DeepEqual(got, tt.wantVersions) {
			t.Errorf("%s: History(%+v) gives versions %v, want %v", tt.name, tt.giveQuery, got, tt.wantVersions)
		}
	}
}

func versionsOf(entries []ports.HistoryEntry) []int64 {
	out := make([]int64, 0, len(entries))
	for _, e := range entries {
		out = append(out, e.State.Version)
	}
	return out
}

func newProjector(v ports.ViewWriter) *projection.Projector {
	return projection.NewProjector(v, slog.New(slog.DiscardHandler))
}

// project applies the changes in the given order with the real projector.
func project(t *testing.T, v ports.ViewWriter, changes []ports.Change) {
	t.Helper()
	p := newProjector(v)
	for _, c := range changes {
		if err := p.Apply(t.Context(), c); err != nil {
			t.Fatalf("apply %s v%d: %v", c.Event.PostID, c.Event.Version, err)
		}
	}
}

// shuffled returns every change one to three times, in an order drawn from seed.
func shuffled(changes []ports.Change, seed uint64) []ports.Change {
	r := rand.New(rand.NewPCG(seed, 0x5eed)) //nolint:gosec // a reproducible order, not a secret
	var out []ports.Change
	for _, c := range changes {
		for range 1 + r.IntN(3) {
			out = append(out, c)
		}
	}
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

func historyOf(changes []ports.Change) []ports.HistoryEntry {
	out := make([]ports.HistoryEntry, len(changes))
	for i, c := range changes {
		out[i] = utcHistory(ports.HistoryEntry{
			EventID: c.Event.ID, Type: c.Event.Type, OccurredAt: c.Event.OccurredAt, State: c.State,
		})
	}
	return out
}

func get(t *testing.T, v ViewsStore, id string) post.State {
	t.Helper()
	s, err := v.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return s
}

// history returns the post's whole history with times in UTC, read a few entries a page so
// that every comparison of histories crosses pages.
func history(t *testing.T, v ViewsStore, id string) []ports.HistoryEntry {
	t.Helper()
	const limit = 3
	var all []ports.HistoryEntry
	q := ports.HistoryQuery{Limit: limit}
	for range 10_000 {
		page := historyPage(t, v, id, q)
		all = append(all, page...)
		if len(page) < limit {
			return all
		}
		q.After = page[len(page)-1].State.Version
	}
	t.Fatal("the pages of the history do not come to an end")
	return nil
}

// historyPage returns one page of the post's history with times in UTC.
func historyPage(t *testing.T, v ViewsStore, id string, q ports.HistoryQuery) []ports.HistoryEntry {
	t.Helper()
	h, err := v.History(t.Context(), id, q)
	if err != nil {
		t.Fatalf("History(%s, %+v): %v", id, q, err)
	}
	return utcAll(h, utcHistory)
}

func list(t *testing.T, v ViewsStore, q ports.ListQuery) []post.State {
	t.Helper()
	page, err := v.List(t.Context(), q)
	if err != nil {
		t.Fatalf("List(%+v): %v", q, err)
	}
	if len(page) > q.Limit {
		t.Fatalf("List(limit %d) returned %d posts", q.Limit, len(page))
	}
	return utcAll(page, utcState)
}

// listing reads every page of the author's posts, each page continuing after the last post of
// the one before, as a client does with next_cursor. Times are in UTC.
func listing(t *testing.T, v ViewsStore, author string, limit int) []post.State {
	t.Helper()
	var all []post.State
	q := ports.ListQuery{AuthorName: author, Limit: limit}
	for range 10_000 {
		page := list(t, v, q)
		all = append(all, page...)
		if len(page) < limit {
			return all
		}
		last := page[len(page)-1]
		q.After = &ports.Cursor{CreatedAt: last.CreatedAt, ID: last.ID}
	}
	t.Fatal("the pages do not come to an end")
	return nil
}

// expectedList is what List must return for the author over the story's final states: the
// live posts, newest first, then by id descending. Times are in UTC.
func expectedList(st *story, author string) []post.State {
	var out []post.State
	for _, id := range st.order {
		s := st.state(id)
		if !s.Deleted && (author == "" || s.AuthorName == author) {
			out = append(out, utcState(s))
		}
	}
	slices.SortFunc(out, compareStates)
	return out
}

// compareStates orders states as lists show them.
func compareStates(a, b post.State) int {
	if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
		return c
	}
	return cmp.Compare(b.ID, a.ID)
}

func showStates(states []post.State) string {
	var b strings.Builder
	for _, s := range states {
		fmt.Fprintf(&b, "  %s %s v%d %q by %q deleted=%t\n",
			s.CreatedAt.Format(time.RFC3339Nano), s.ID, s.Version, s.Title, s.AuthorName, s.Deleted)
	}
	return b.String()
}
