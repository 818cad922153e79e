package contract

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"hexapost/core/post"
	"hexapost/ports"
)

// HeadsStore is what the stream heads suite tests: an event store that lists where its streams
// end.
type HeadsStore interface {
	ports.EventStore
	ports.StreamHeads
}

// StreamHeads holds an event store to the promises of ports.StreamHeads. newStore must return a
// fresh, isolated, empty store on every call; the cases run in parallel, each with its own store.
func StreamHeads(t *testing.T, newStore func(t *testing.T) HeadsStore) {
	cases := []struct {
		name string
		run  func(*testing.T, HeadsStore)
	}{
		{"empty store has no heads", headsEmpty},
		{"heads in id byte order with the version of the last event", headsOrder},
		{"pages after any id, of any size, walk every post once", headsPaging},
		{"a head moves as its stream grows", headsGrow},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, newStore(t))
		})
	}
}

func headsEmpty(t *testing.T, s HeadsStore) {
	for _, after := range []string{"", newID(), "\xff"} {
		if got := heads(t, s, after, 10); len(got) != 0 {
			t.Errorf("Heads(%q, 10) on an empty store = %v, want none", after, got)
		}
	}
}

// headsStory appends posts whose ids sort differently by bytes than case-insensitively, with 1 to
// 5 versions each and one with 120 (in three appends), in an order that is not theirs, and
// returns their heads in id byte order.
func headsStory(t *testing.T, s HeadsStore) []ports.StreamHead {
	t.Helper()
	base := newID()[:30]
	ids := []string{base + "aaaaaa", base + "BBBBBB", base + "-zzzzz", base + "000000", base + "zzzzzz",
		base + "aaaaab", base + "Aaaaaa", base + "bbbbbb", newID(), newID()}
	var want []ports.StreamHead
	for i, id := range ids {
		versions := int64(1 + i*7%5)
		if i == 3 {
			versions = 120
		}
		for from := int64(0); from < versions; from += 40 {
			appendVersions(t, s, id, from, min(versions, from+40))
		}
		want = append(want, ports.StreamHead{PostID: id, Version: versions})
	}
	slices.SortFunc(want, func(a, b ports.StreamHead) int { return strings.Compare(a.PostID, b.PostID) })
	return want
}

// appendVersions appends versions from+1 to to of post id in one append.
func appendVersions(t *testing.T, s ports.EventStore, id string, from, to int64) {
	t.Helper()
	var changes []ports.Change
	for v := from + 1; v <= to; v++ {
		changes = append(changes, benchChange(id, v))
	}
	if err := s.Append(t.Context(), ports.Append{PostID: id, ExpectedVersion: from, Changes: changes}); err != nil {
		t.Fatalf("append %s v%d-v%d: %v", id, from+1, to, err)
	}
}

func headsOrder(t *testing.T, s HeadsStore) {
	want := headsStory(t, s)

	if got := heads(t, s, "", 1000); !reflect.DeepEqual(got, want) {
		t.Errorf("Heads(\"\", 1000) =\n%v\nwant\n%v", got, want)
	}
}

func headsPaging(t *testing.T, s HeadsStore) {
	want := headsStory(t, s)

	for _, limit := range []int{1, 2, 3, len(want)} {
		var got []ports.StreamHead
		for after := ""; ; {
			page := heads(t, s, after, limit)
			if len(page) > limit {
				t.Fatalf("Heads(%q, %d) = %d heads", after, limit, len(page))
			}
			if len(page) == 0 {
				break
			}
			got = append(got, page...)
			after = page[len(page)-1].PostID
			if len(got) > len(want) {
				break
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("pages of %d =\n%v\nwant\n%v", limit, got, want)
		}
	}
	// After an id no post has: the page starts at the next one.
	between := want[2].PostID + "\x00"
	if got := heads(t, s, between, 2); !reflect.DeepEqual(got, want[3:5]) {
		t.Errorf("Heads(after %q, 2) = %v, want %v", between, got, want[3:5])
	}
	if got := heads(t, s, want[len(want)-1].PostID, 10); len(got) != 0 {
		t.Errorf("Heads after the last post = %v, want none", got)
	}
	if got := heads(t, s, "", 0); len(got) != 0 {
		t.Errorf("Heads(\"\", 0) = %v, want none", got)
	}
}

func headsGrow(t *testing.T, s HeadsStore) {
	a, b := newID(), newID()
	appendVersions(t, s, a, 0, 1)
	appendVersions(t, s, b, 0, 3)
	appendVersions(t, s, a, 1, 2)
	appendVersions(t, s, a, 2, 7)

	want := []ports.StreamHead{{PostID: a, Version: 7}, {PostID: b, Version: 3}}
	if a > b {
		want[0], want[1] = want[1], want[0]
	}
	if got := heads(t, s, "", 10); !reflect.DeepEqual(got, want) {
		t.Errorf("Heads = %v, want %v", got, want)
	}
}

func heads(t *testing.T, s ports.StreamHeads, after string, limit int) []ports.StreamHead {
	t.Helper()
	got, err := s.Heads(t.Context(), after, limit)
	if err != nil {
		t.Fatalf("Heads(%q, %d): %v", after, limit, err)
	}
	return got
}

// LockerProcess is the locker of one process of a deployment.
type LockerProcess struct {
	Locker ports.Locker
	// End ends the process as far as its locks go: its store closed, its connections gone.
	End func()
}

// LockerFeatures declares what the lockers under test share.
type LockerFeatures struct {
	// Processes is set when every call of a deployment's open gives another process, with
	// locks of its own that End frees; unset when open gives the same one every time (a
	// process-local locker), and the cases about ending a process are skipped.
	Processes bool
}

// Locker holds a locker to the promises of ports.Locker. newDeployment must return, on every
// call, the open function of a fresh deployment whose locks no other deployment shares; each
// call of open gives a process of it. The cases run in parallel, each with its own deployment.
func Locker(t *testing.T, newDeployment func(t *testing.T) (open func() LockerProcess), f LockerFeatures) {
	cases := []struct {
		name string
		run  func(*testing.T, func() LockerProcess, LockerFeatures)
	}{
		{"a held lock is not taken again", lockerExclusive},
		{"a released lock is free, and a second Release frees nothing", lockerRelease},
		{"locks of different names are independent", lockerNames},
		{"of 16 racing takers exactly one gets the lock", lockerRace},
		{"a lock is freed when its process ends", lockerProcessEnd},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, newDeployment(t), f)
		})
	}
}

const lockName = "hexapost-reconcile-contract"

func lockerExclusive(t *testing.T, open func() LockerProcess, _ LockerFeatures) {
	p, q := open(), open()
	l := tryLock(t, p.Locker, lockName, true)
	defer l.Release()

	tryLock(t, p.Locker, lockName, false)
	tryLock(t, q.Locker, lockName, false)
	if !l.Held(t.Context()) {
		t.Error("Held = false while the lock is held")
	}
}

func lockerRelease(t *testing.T, open func() LockerProcess, _ LockerFeatures) {
	p, q := open(), open()
	first := tryLock(t, p.Locker, lockName, true)

	first.Release()

	if first.Held(t.Context()) {
		t.Error("Held = true after Release")
	}
	second := tryLock(t, q.Locker, lockName, true)
	defer second.Release()
	first.Release()
	if !second.Held(t.Context()) {
		t.Error("a second Release of the first lock freed the lock taken after it")
	}
	tryLock(t, p.Locker, lockName, false)
}

func lockerNames(t *testing.T, open func() LockerProcess, _ LockerFeatures) {
	p, q := open(), open()
	// Long names too, which a backend may have to shorten without making them one.
	long := strings.Repeat("long-lock-name-", 8)
	names := []string{"a", "b", long + "1", long + "2"}
	locks := map[string]ports.Lock{}
	for i, name := range names {
		locks[name] = tryLock(t, []LockerProcess{p, q}[i%2].Locker, name, true)
	}

	locks["a"].Release()
	locks[long+"1"].Release()

	for _, name := range []string{"b", long + "2"} {
		if !locks[name].Held(t.Context()) {
			t.Errorf("lock %q is not held after other locks were released", name)
		}
		tryLock(t, p.Locker, name, false)
		locks[name].Release()
	}
	for _, name := range []string{"a", long + "1"} {
		tryLock(t, q.Locker, name, true).Release()
	}
}

func lockerRace(t *testing.T, open func() LockerProcess, _ LockerFeatures) {
	const takers = 16
	procs := make([]LockerProcess, takers)
	for i := range procs {
		procs[i] = open()
	}
	var (
		won   atomic.Int32
		wg    sync.WaitGroup
		start = make(chan struct{})
		held  = make(chan ports.Lock, takers)
	)
	for _, p := range procs {
		wg.Go(func() {
			<-start
			l, ok, err := p.Locker.TryLock(t.Context(), lockName)
			if err != nil {
				t.Errorf("TryLock: %v", err)
				return
			}
			if ok {
				won.Add(1)
				held <- l
			}
		})
	}
	close(start)
	wg.Wait()
	close(held)
	for l := range held {
		l.Release()
	}
	if n := won.Load(); n != 1 {
		t.Errorf("%d of %d racing takers got the lock, want exactly 1", n, takers)
	}
}

func lockerProcessEnd(t *testing.T, open func() LockerProcess, f LockerFeatures) {
	if !f.Processes {
		t.Skip("the locker is process-local: its locks end with the one process")
	}
	p, q := open(), open()
	l := tryLock(t, p.Locker, lockName, true)

	p.End()

	if l.Held(t.Context()) {
		t.Error("Held = true after the process ended")
	}
	var taken ports.Lock
	eventually(t, defaultTimeout, func() bool {
		got, ok, err := q.Locker.TryLock(t.Context(), lockName)
		if err != nil {
			t.Fatalf("TryLock: %v", err)
		}
		taken = got
		return ok
	}, "another process to take the lock of a process that ended")
	defer taken.Release()
	if !taken.Held(t.Context()) {
		t.Error("Held = false for the lock taken after the holder ended")
	}
}

// tryLock takes the lock called name and fails the test unless TryLock answers ok as wanted.
func tryLock(t *testing.T, l ports.Locker, name string, want bool) ports.Lock {
	t.Helper()
	got, ok, err := l.TryLock(t.Context(), name)
	if err != nil {
		t.Fatalf("TryLock(%q): %v", name, err)
	}
	if ok != want {
		t.Fatalf("TryLock(%q) ok = %v, want %v", name, ok, want)
	}
	return got
}

// VersionsStore is what the view versions suite tests: a read model that tells which versions
// it holds.
type VersionsStore interface {
	ViewsStore
	ports.ViewVersions
}

// ViewVersions holds a read model to the promises of ports.ViewVersions. newViews must return a
// fresh, isolated, empty read model on every call; the cases run in parallel, each with its own.
func ViewVersions(t *testing.T, newViews func(t *testing.T) VersionsStore) {
	cases := []struct {
		name string
		run  func(*testing.T, VersionsStore)
	}{
		{"an empty read model yields nothing", versionsUnknown},
		{"current view version and history entries of projected posts", versionsProjected},
		{"history entries without a view, a view without history", versionsPartial},
		{"480 posts in id order, and a walk stopped early", versionsMany},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, newViews(t))
		})
	}
}

func versionsUnknown(t *testing.T, v VersionsStore) {
	if got := versions(t, v); len(got) != 0 {
		t.Errorf("Versions on an empty read model = %v, want none", got)
	}
}

func versionsProjected(t *testing.T, v VersionsStore) {
	st := scenario(t)
	project(t, v, st.changes)
	want := map[string]ports.ViewVersion{}
	for _, id := range st.order {
		n := int64(len(st.of(id)))
		want[id] = ports.ViewVersion{PostID: id, Current: n, History: n}
	}

	if got := versions(t, v); !reflect.DeepEqual(got, want) {
		t.Errorf("Versions =\n%v\nwant\n%v", got, want)
	}
}

func versionsPartial(t *testing.T, v VersionsStore) {
	ctx := t.Context()
	st := newStory(t, epoch)
	historyOnly := st.create("history only", "body", "ada")
	st.update(historyOnly, postTitle("twice"))
	st.update(historyOnly, postTitle("thrice"))
	viewOnly := st.create("view only", "body", "bob")
	for _, c := range st.of(historyOnly)[:2] {
		h := ports.HistoryEntry{EventID: c.Event.ID, Type: c.Event.Type, OccurredAt: c.Event.OccurredAt, State: c.State}
		for range 2 { // a repeat is stored once and counted once
			if err := v.PutHistory(ctx, h); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := v.PutCurrent(ctx, st.state(viewOnly)); err != nil {
		t.Fatal(err)
	}

	want := map[string]ports.ViewVersion{historyOnly: {PostID: historyOnly, History: 2}, viewOnly: {PostID: viewOnly, Current: 1}}
	if got := versions(t, v); !reflect.DeepEqual(got, want) {
		t.Errorf("Versions = %v, want %v", got, want)
	}
}

func versionsMany(t *testing.T, v VersionsStore) {
	const posts = 480
	st := newStory(t, epoch)
	want := map[string]ports.ViewVersion{}
	for i := range posts {
		id := st.create(fmt.Sprintf("post %d", i), "body", "ada")
		for j := range i % 3 {
			st.update(id, postTitle(fmt.Sprintf("post %d, edit %d", i, j)))
		}
		n := int64(1 + i%3)
		want[id] = ports.ViewVersion{PostID: id, Current: n, History: n}
	}
	projectConcurrently(t, v, st)

	got := versions(t, v)

	if !reflect.DeepEqual(got, want) {
		wrong := 0
		for id, w := range want {
			if got[id] != w {
				wrong++
			}
		}
		t.Errorf("Versions: %d posts, %d of the %d posts wrong", len(got), wrong, posts)
	}
	seen := 0
	for _, err := range v.Versions(t.Context()) {
		if err != nil {
			t.Fatalf("Versions: %v", err)
		}
		if seen++; seen == 10 {
			break // the walk must end cleanly when its reader stops
		}
	}
	if seen != 10 {
		t.Errorf("a walk stopped after 10 posts yielded %d", seen)
	}
}

// projectConcurrently applies every post's changes in order, several posts at a time.
func projectConcurrently(t *testing.T, v ports.ViewWriter, st *story) {
	t.Helper()
	p := newProjector(v)
	inParallel(8, st.order, func(_ int, id string) {
		for _, c := range st.of(id) {
			if err := p.Apply(t.Context(), c); err != nil {
				t.Errorf("apply %s v%d: %v", id, c.Event.Version, err)
			}
		}
	})
}

// versions collects a walk of the read model, failing the test if it is not in strictly
// ascending byte order of the ids.
func versions(t *testing.T, v ports.ViewVersions) map[string]ports.ViewVersion {
	t.Helper()
	got := map[string]ports.ViewVersion{}
	last := ""
	for held, err := range v.Versions(t.Context()) {
		if err != nil {
			t.Fatalf("Versions after %q: %v", last, err)
		}
		if held.PostID <= last {
			t.Fatalf("Versions yielded %q after %q: not in id order", held.PostID, last)
		}
		last = held.PostID
		got[held.PostID] = held
	}
	return got
}

func postTitle(title string) post.Update { return post.Update{Title: ptr(title)} }
