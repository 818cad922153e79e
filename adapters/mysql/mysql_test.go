package mysql_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"hexapost/adapters/mysql"
	"hexapost/adapters/mysql/mysqltest"
	"hexapost/ports"
)

// The event store's promises are tested by the contract suite (test/contract/mysql_test.go);
// these tests cover what is particular to MySQL: startup, migrations, the outbox under
// out-of-order commits and concurrent relays, deadlocks, expiry, and a server that goes away.

func TestOpenRefusesABadConfigNamingTheSetting(t *testing.T) {
	t.Parallel()
	const password = "s3cret-Pa55"
	tests := []struct {
		name string
		give mysql.Config
		want string
	}{
		{"empty DSN", mysql.Config{DSN: " "}, "mysql: DSN is empty"},
		{"malformed DSN", mysql.Config{DSN: "hexapost:" + password + "@tcp(127.0.0.1:3306"}, "mysql: DSN hexapost:xxxxx@"},
		{"bad parameter", mysql.Config{DSN: "hexapost:" + password + "@tcp(127.0.0.1:3306)/db?parseTime=maybe"}, "mysql: DSN hexapost:xxxxx@"},
		{"no database", mysql.Config{DSN: "hexapost:" + password + "@tcp(127.0.0.1:3306)/"}, "no database name"},
		{"negative timeout", mysql.Config{DSN: "u:p@tcp(127.0.0.1:3306)/db", Timeout: -time.Second}, "Timeout is negative"},
		{"multiple statements off", mysql.Config{DSN: "hexapost:" + password + "@tcp(127.0.0.1:3306)/db?multiStatements=0"},
			"multiStatements=0: the store needs it on"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := mysql.Open(t.Context(), tt.give)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Open: %v, want an error containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), password) || strings.Contains(err.Error(), "\n") {
				t.Errorf("Open error shows the password or spans lines: %q", err)
			}
		})
	}
}

func TestOpenFailsFastWhenTheServerCannotBeReached(t *testing.T) {
	t.Parallel()
	const password = "s3cret-Pa55"
	// A server that accepts connections and never says a word.
	mute, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mute.Close() })
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				_ = c.Close()
			}
		}()
		for {
			c, err := mute.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()

	tests := []struct {
		name    string
		giveDSN string
		within  time.Duration
	}{
		{"nothing listens", "hexapost:" + password + "@tcp(127.0.0.1:1)/hexapost", 3 * time.Second},
		{"the server does not answer", "hexapost:" + password + "@tcp(" + mute.Addr().String() +
			")/hexapost?timeout=1s&readTimeout=1s", 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			_, err := mysql.Open(t.Context(), mysql.Config{DSN: tt.giveDSN, Timeout: time.Second})
			took := time.Since(start)
			if err == nil {
				t.Fatal("Open succeeded")
			}
			t.Logf("after %s: %v", took.Round(time.Millisecond), err)
			if took > tt.within {
				t.Errorf("Open took %s, want at most %s", took, tt.within)
			}
			if !errors.Is(err, ports.ErrUnavailable) {
				t.Errorf("Open: %v, want it to wrap %v", err, ports.ErrUnavailable)
			}
			msg := err.Error()
			if !strings.Contains(msg, "mysql: DSN ") || strings.Contains(msg, password) || strings.Contains(msg, "\n") {
				t.Errorf("Open error %q: want one line that shows the DSN without the password", msg)
			}
		})
	}
}

func TestOpenWithAWrongPasswordShowsTheDSNAndHidesThePassword(t *testing.T) {
	t.Parallel()
	cfg, err := gomysql.ParseDSN(mysqltest.BaseDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Passwd = "wrong-" + newID()
	start := time.Now()
	_, err = mysql.Open(t.Context(), mysql.Config{DSN: cfg.FormatDSN()})
	if err == nil {
		t.Fatal("Open succeeded with a wrong password")
	}
	t.Logf("after %s: %v", time.Since(start).Round(time.Millisecond), err)
	msg := err.Error()
	if !strings.Contains(msg, "mysql: DSN ") || !strings.Contains(msg, "Access denied") {
		t.Errorf("Open error %q: want it to show the DSN and say access was denied", msg)
	}
	if strings.Contains(msg, cfg.Passwd) || strings.Contains(msg, "\n") {
		t.Errorf("Open error %q shows the password or spans lines", msg)
	}
	if errors.Is(err, ports.ErrUnavailable) {
		t.Errorf("Open error %q: a wrong password is a configuration error, not %v", msg, ports.ErrUnavailable)
	}
}

func TestConcurrentOpensMigrateOnce(t *testing.T) {
	t.Parallel()
	const processes = 4
	dsn := mysqltest.NewDatabase(t)

	start := make(chan struct{})
	stores := make([]*mysql.EventStore, processes)
	errs := make([]error, processes)
	var wg sync.WaitGroup
	for i := range processes {
		wg.Go(func() {
			<-start
			stores[i], errs[i] = mysql.Open(t.Context(), mysql.Config{DSN: dsn})
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
			continue
		}
		t.Cleanup(func() { _ = stores[i].Close() })
	}
	if t.Failed() {
		t.FailNow()
	}

	var applied int
	if err := rawDB(t, dsn).QueryRowContext(t.Context(), "SELECT COUNT(*) FROM schema_migrations").Scan(&applied); err != nil {
		t.Fatal(err)
	}
	if applied != 2 {
		t.Errorf("schema_migrations has %d rows, want 2 (two migrations, each applied once)", applied)
	}
	// Every store works on the one schema.
	st := newStory(t)
	for i, s := range stores {
		appendOK(t, s, st.create(newID()))
		if err := s.Ping(t.Context()); err != nil {
			t.Errorf("Ping %d: %v", i, err)
		}
	}
	// A restart finds nothing to do.
	again, _ := open(t, mysql.Config{DSN: dsn})
	if got, err := again.ReadAll(t.Context(), 0, 100); err != nil || len(got) != processes {
		t.Errorf("after reopening ReadAll = %d events, %v; want %d", len(got), err, processes)
	}
}

// TestRelayPublishesAnAppendThatCommitsAfterAHigherPosition is the AUTO_INCREMENT trap. An
// append takes its position when it inserts and becomes visible when it commits, so append A
// can hold position 1 while append B, with position 2, commits and is published. A relay that
// remembered "published up to 2" would never publish A. This one must.
func TestRelayPublishesAnAppendThatCommitsAfterAHigherPosition(t *testing.T) {
	t.Parallel()
	st := newStory(t)
	a, b := newID(), newID()
	gate := newCommitGate(a)
	inserted := gate.inserted // A's rows are written and its transaction is open
	commit := gate.commit     // A may commit
	s, _ := open(t, mysql.Config{
		Timeout: waitFor,
		// Two transactions at once, as two processes would run them: with one slot, B would
		// wait for A's transaction instead of committing past it.
		AppendSlots:  2,
		BeforeCommit: gate.hook,
	})
	changeA, changeB := st.create(a), st.create(b)

	doneA := make(chan error, 1)
	go func() {
		doneA <- s.Append(context.Background(), ports.Append{PostID: a, Changes: []ports.Change{changeA}})
	}()
	receive(t, inserted, "append A to write its rows")
	appendOK(t, s, changeB) // B takes a higher position and commits while A is open

	// The relay neither waits for A's locked row nor sees it: it publishes B alone.
	if got := relayOnce(t, s, 10); !reflect.DeepEqual(ids(got), ids([]ports.Change{changeB})) {
		t.Fatalf("while A is open the relay published %v, want only B %v", ids(got), ids([]ports.Change{changeB}))
	}

	close(commit)
	if err := receive(t, doneA, "append A to commit"); err != nil {
		t.Fatalf("Append A: %v", err)
	}
	all, err := s.ReadAll(t.Context(), 0, 10)
	if err != nil || len(all) != 2 || all[0].Event.PostID != a {
		t.Fatalf("ReadAll = %v, %v; want A before B", all, err)
	}
	t.Logf("A has position %d and committed after B (position %d) was published", all[0].Position, all[1].Position)

	if got := relayOnce(t, s, 10); !reflect.DeepEqual(ids(got), ids([]ports.Change{changeA})) {
		t.Errorf("after A committed the relay published %v, want A %v: a lower position that commits late was skipped",
			ids(got), ids([]ports.Change{changeA}))
	}
	if got := relayOnce(t, s, 10); len(got) != 0 {
		t.Errorf("then the relay published %v, want nothing", ids(got))
	}
}

// TestRelayLeavesAPostsLaterChangeWhileAnotherRelayHoldsAnEarlierOne forces what SKIP LOCKED
// alone gets wrong: relay 1 is publishing X v1; relay 2 skips it and could take X v2.
func TestRelayLeavesAPostsLaterChangeWhileAnotherRelayHoldsAnEarlierOne(t *testing.T) {
	t.Parallel()
	st := newStory(t)
	s, _ := open(t, mysql.Config{Timeout: waitFor})
	x, y := newID(), newID()
	x1 := st.create(x)
	x2 := st.retitle(x, "second")
	y1 := st.create(y)
	appendOK(t, s, x1)
	appendOK(t, s, x2)
	appendOK(t, s, y1)

	holding := make(chan []ports.Change, 1)
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := s.Relay(context.Background(), 1, func(_ context.Context, cs []ports.Change) error {
			holding <- cs
			<-release
			return nil
		})
		done <- err
	}()
	if got := receive(t, holding, "relay 1 to claim X v1"); !reflect.DeepEqual(ids(got), ids([]ports.Change{x1})) {
		t.Fatalf("relay 1 got %v, want %v", ids(got), ids([]ports.Change{x1}))
	}

	if got := relayOnce(t, s, 10); !reflect.DeepEqual(ids(got), ids([]ports.Change{y1})) {
		t.Errorf("relay 2 published %v while X v1 was in flight, want only %v", ids(got), ids([]ports.Change{y1}))
	}

	close(release)
	if err := receive(t, done, "relay 1 to finish"); err != nil {
		t.Fatalf("relay 1: %v", err)
	}
	if got := relayOnce(t, s, 10); !reflect.DeepEqual(ids(got), ids([]ports.Change{x2})) {
		t.Errorf("then the relay published %v, want %v", ids(got), ids([]ports.Change{x2}))
	}
}

// TestRelaysMarkingTheirRowsPublishedAtOnceDoNotDeadlock: two relays each hold half of a small
// outbox and delete their rows at the same moment. A DELETE run as a table scan would wait for
// the other relay's rows, and the two would deadlock; each must touch only its own rows.
func TestRelaysMarkingTheirRowsPublishedAtOnceDoNotDeadlock(t *testing.T) {
	t.Parallel()
	st := newStory(t)
	s, _ := open(t, mysql.Config{Timeout: waitFor})
	for round := range 10 {
		for range 4 {
			appendOK(t, s, st.create(newID()))
		}
		release := make(chan struct{})
		claimed := make(chan int, 2)
		errs := make(chan error, 2)
		for range 2 {
			go func() {
				n, err := s.Relay(context.Background(), 2, func(_ context.Context, cs []ports.Change) error {
					claimed <- len(cs)
					<-release
					return nil
				})
				if err == nil && n != 2 {
					err = fmt.Errorf("published %d changes, want 2", n)
				}
				errs <- err
			}()
		}
		receive(t, claimed, "relay 1 to claim its rows")
		receive(t, claimed, "relay 2 to claim its rows")
		close(release)
		for range 2 {
			if err := receive(t, errs, "a relay to finish"); err != nil {
				t.Fatalf("round %d: relay: %v", round, err)
			}
		}
		if got := relayOnce(t, s, 10); len(got) != 0 {
			t.Fatalf("round %d: the outbox still holds %v", round, ids(got))
		}
	}
}

// TestARelayDoesNotWaitForAnAppendInFlight: while an append holds its uncommitted outbox row,
// the relay publishes and deletes every committed row. A DELETE that scanned the table would
// wait for the append's row until the append ends.
func TestARelayDoesNotWaitForAnAppendInFlight(t *testing.T) {
	t.Parallel()
	st := newStory(t)
	held := newID()
	gate := newCommitGate(held)
	inserted, commit := gate.inserted, gate.commit
	s, _ := open(t, mysql.Config{Timeout: waitFor, BeforeCommit: gate.hook})
	// Ten committed rows and the held one: the relay's rows are most of the table, the case in
	// which an optimizer prefers a scan.
	committed := make([]ports.Change, 10)
	for i := range committed {
		committed[i] = st.create(newID())
	}
	for _, c := range committed {
		appendOK(t, s, c)
	}
	done := make(chan error, 1)
	go func() {
		done <- s.Append(context.Background(), ports.Append{PostID: held, Changes: []ports.Change{st.create(held)}})
	}()
	receive(t, inserted, "the held append to write its rows")

	type relayed struct {
		changes []ports.Change
		err     error
	}
	relays := make(chan relayed, 1)
	go func() {
		var r relayed
		_, r.err = s.Relay(context.Background(), 20, func(_ context.Context, cs []ports.Change) error {
			r.changes = cs
			return nil
		})
		relays <- r
	}()
	r := receive(t, relays, "the relay to finish while an append is in flight")
	if r.err != nil || !reflect.DeepEqual(ids(r.changes), ids(committed)) {
		t.Errorf("the relay published %v, %v; want %v", ids(r.changes), r.err, ids(committed))
	}
	close(commit)
	if err := receive(t, done, "the held append to commit"); err != nil {
		t.Fatal(err)
	}
}

// TestAnAppendDoesNotWaitForARelayInFlight: a relay that claimed the whole outbox holds its
// rows, and their events, while it publishes; appends go on meanwhile, of new posts and of the
// next version of a post whose last change the relay holds, and so do loads. Under REPEATABLE
// READ its locking read would also lock the gap above the last row, and every append's outbox
// insert would wait for the relay: the store's transactions run at READ COMMITTED.
func TestAnAppendDoesNotWaitForARelayInFlight(t *testing.T) {
	t.Parallel()
	st := newStory(t)
	s, _ := open(t, mysql.Config{Timeout: waitFor})
	x := newID()
	appendOK(t, s, st.create(x))
	appendOK(t, s, st.create(newID()))
	x2 := st.retitle(x, "second")

	holding := make(chan struct{})
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := s.Relay(context.Background(), 10, func(context.Context, []ports.Change) error {
			close(holding)
			<-release
			return nil
		})
		done <- err
	}()
	receive(t, holding, "the relay to claim the outbox")

	appended := make(chan error, 2)
	go func() {
		id := newID()
		appended <- s.Append(context.Background(), ports.Append{PostID: id, Changes: []ports.Change{st.create(id)}})
	}()
	go func() {
		appended <- s.Append(context.Background(), ports.Append{PostID: x, ExpectedVersion: 1, Changes: []ports.Change{x2}})
	}()
	for range 2 {
		if err := receive(t, appended, "an append while the relay publishes"); err != nil {
			t.Errorf("Append: %v", err)
		}
	}
	loaded := make(chan error, 1)
	go func() {
		events, err := s.Load(context.Background(), x, 0)
		if err == nil && len(events) != 2 {
			err = fmt.Errorf("%d events, want 2", len(events))
		}
		loaded <- err
	}()
	if err := receive(t, loaded, "a load of a post whose change the relay holds"); err != nil {
		t.Errorf("Load: %v", err)
	}
	close(release)
	if err := receive(t, done, "the relay to finish"); err != nil {
		t.Errorf("Relay: %v", err)
	}
	if got := relayOnce(t, s, 10); len(got) != 2 {
		t.Errorf("the next round published %v, want the two appended meanwhile", ids(got))
	}
}

type holdKey struct{}

// TestAppendDeadlockIsAConflict forces InnoDB's classic insert deadlock: append 1 inserts
// version 1 and stays open; appends 2 and 3 insert version 1 too and wait for its lock; append 1
// rolls back, and 2 and 3, each holding a shared lock on the key, both ask for an exclusive one.
// InnoDB kills one of them. Each append runs in a transaction of its own here (AppendBatch 1),
// so the victim's transaction is run again and then finds version 1 taken: it must get
// ErrConflict, which the core retries, not an error that turns into a 500.
func TestAppendDeadlockIsAConflict(t *testing.T) {
	t.Parallel()
	st := newStory(t)
	id := newID()
	inserted := make(chan struct{})
	s, dsn := open(t, mysql.Config{
		Timeout:     waitFor,
		AppendBatch: 1,
		AppendSlots: 3,
		BeforeCommit: func(ctx context.Context, _ string) error {
			if ctx.Value(holdKey{}) == nil {
				return nil
			}
			close(inserted)
			<-ctx.Done()
			return ctx.Err() // the transaction rolls back
		},
	})
	v1 := make([]ports.Change, 3)
	for i := range v1 {
		v1[i] = st.create(id) // same post, version 1, own event id
	}
	appendV1 := func(ctx context.Context, i int) error {
		return s.Append(ctx, ports.Append{PostID: id, Changes: v1[i : i+1]})
	}

	ctx1, cancel1 := context.WithCancel(context.WithValue(t.Context(), holdKey{}, true))
	defer cancel1()
	done1 := make(chan error, 1)
	go func() { done1 <- appendV1(ctx1, 0) }()
	receive(t, inserted, "append 1 to insert version 1")

	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := 1; i <= 2; i++ {
		wg.Go(func() { errs[i] = appendV1(t.Context(), i) })
	}
	db := rawDB(t, dsn)
	database := dsn[strings.LastIndexByte(dsn, '/')+1:]
	database, _, _ = strings.Cut(database, "?")
	eventually(t, func() bool {
		var waiting int
		err := db.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM information_schema.PROCESSLIST
			WHERE DB = ? AND ID <> CONNECTION_ID() AND INFO REGEXP '^INSERT INTO .?events.? '`, database).Scan(&waiting)
		return err == nil && waiting == 2
	}, "appends 2 and 3 to wait for the lock of append 1")
	cancel1()
	wg.Wait()
	err1 := receive(t, done1, "append 1 to end")
	stored, err := s.Load(t.Context(), id, 0)
	if err != nil || len(stored) != 1 {
		t.Fatalf("Load = %d events, %v; want exactly 1", len(stored), err)
	}
	// Cancelling a transaction at its commit races with the commit itself (as with any
	// database client): append 1 usually rolls back, but may have committed. Either way exactly
	// one version 1 is stored and every other append is a conflict, never another error.
	wantWinners := 1
	if stored[0].ID == v1[0].Event.ID {
		wantWinners = 0
		t.Logf("append 1 committed before its cancellation took effect (it returned %v)", err1)
	} else if !errors.Is(err1, context.Canceled) {
		t.Errorf("append 1: %v, want %v", err1, context.Canceled)
	}
	var won, lost int
	for _, err := range errs[1:] {
		switch {
		case err == nil:
			won++
		case errors.Is(err, ports.ErrConflict):
			lost++
			t.Logf("the loser: %v", err)
		default:
			t.Errorf("append: %v, want nil or %v", err, ports.ErrConflict)
		}
	}
	if won != wantWinners || lost != 2-wantWinners {
		t.Errorf("%d appends won and %d lost, want %d won", won, lost, wantWinners)
	}
}

func TestAppendedIsSignalledAfterAnAppendWithChanges(t *testing.T) {
	t.Parallel()
	st := newStory(t)
	s, _ := open(t, mysql.Config{})
	select {
	case <-s.Appended():
		t.Fatal("Appended is signalled before any append")
	default:
	}

	rec := ports.IdempotencyRecord{Key: newID(), Fingerprint: "f", CreatedAt: epoch}
	if err := s.Append(t.Context(), ports.Append{PostID: newID(), Idempotency: &rec}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Appended():
		t.Error("Appended is signalled after an append that added nothing to the outbox")
	default:
	}

	appendOK(t, s, st.create(newID()))
	appendOK(t, s, st.create(newID())) // coalesced with the first: the channel holds one signal
	receive(t, s.Appended(), "the Appended signal")
	select {
	case <-s.Appended():
		t.Error("two appends gave two signals, want them coalesced into one")
	default:
	}
}

func TestIdempotencyRecordsExpireAfter24Hours(t *testing.T) {
	t.Parallel()
	now := &clock{now: time.Now()}
	s, _ := open(t, mysql.Config{Now: now.Now})
	record := func(key, fingerprint string) error {
		rec := ports.IdempotencyRecord{Key: key, Fingerprint: fingerprint, CreatedAt: epoch}
		return s.Append(t.Context(), ports.Append{PostID: newID(), Idempotency: &rec})
	}
	lookup := func(key string) (string, error) {
		r, err := s.Lookup(t.Context(), key)
		return r.Fingerprint, err
	}
	old, young := newID(), newID()
	if err := record(old, "old"); err != nil {
		t.Fatal(err)
	}
	now.Add(2 * time.Hour)
	if err := record(young, "young"); err != nil {
		t.Fatal(err)
	}

	now.Add(mysql.KeyTTL - time.Hour) // old is 25h old, young 23h
	if fp, err := lookup(old); !errors.Is(err, ports.ErrNotFound) {
		t.Errorf("Lookup of a record stored 25h ago = %q, %v; want %v", fp, err, ports.ErrNotFound)
	}
	if fp, err := lookup(young); err != nil || fp != "young" {
		t.Errorf("Lookup of a record stored 23h ago = %q, %v; want it", fp, err)
	}
	if err := record(old, "old again"); err != nil {
		t.Errorf("storing an expired key again: %v, want it stored", err)
	}
	if fp, err := lookup(old); err != nil || fp != "old again" {
		t.Errorf("Lookup = %q, %v; want the new record", fp, err)
	}
	if err := record(young, "young again"); !errors.Is(err, ports.ErrDuplicate) {
		t.Errorf("storing a live key again: %v, want %v", err, ports.ErrDuplicate)
	}

	now.Add(2 * time.Hour) // young is 25h old, old again 2h
	if n, err := s.PurgeExpired(t.Context()); err != nil || n != 1 {
		t.Errorf("PurgeExpired = %d, %v; want 1", n, err)
	}
	if fp, err := lookup(old); err != nil || fp != "old again" {
		t.Errorf("after the purge Lookup = %q, %v; want the live record", fp, err)
	}
}

func TestLookupMatchesTheExactKey(t *testing.T) {
	t.Parallel()
	s, _ := open(t, mysql.Config{})
	key := "Key-" + newID()
	rec := ports.IdempotencyRecord{Key: key, Fingerprint: "f", CreatedAt: epoch}
	if err := s.Append(t.Context(), ports.Append{PostID: newID(), Idempotency: &rec}); err != nil {
		t.Fatal(err)
	}
	for _, give := range []string{strings.ToLower(key), strings.ToUpper(key), key + " "} {
		if _, err := s.Lookup(t.Context(), give); !errors.Is(err, ports.ErrNotFound) {
			t.Errorf("Lookup(%q) for the key %q: %v, want %v", give, key, err, ports.ErrNotFound)
		}
	}
}

// TestACallBlockedByALockEndsWithinTheTimeout: every call is bounded; one that runs out of
// time reports the backend as unavailable, so the API answers 503.
func TestACallBlockedByALockEndsWithinTheTimeout(t *testing.T) {
	t.Parallel()
	const timeout = 500 * time.Millisecond
	st := newStory(t)
	s, dsn := open(t, mysql.Config{Timeout: timeout})
	key, id := newID(), newID()
	// Another session inserts the key and keeps its transaction open.
	blocker, err := rawDB(t, dsn).BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = blocker.Rollback() }()
	_, err = blocker.ExecContext(t.Context(), `INSERT INTO idempotency_keys
		(idempotency_key, fingerprint, created, state, created_at, expires_at)
		VALUES (?, 'f', 0, '{}', UTC_TIMESTAMP(6), UTC_TIMESTAMP(6) + INTERVAL 1 DAY)`, key)
	if err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	err = s.Append(t.Context(), ports.Append{PostID: id, Changes: []ports.Change{st.create(id)},
		Idempotency: &ports.IdempotencyRecord{Key: key, Fingerprint: "f"}})
	took := time.Since(start)
	if !errors.Is(err, ports.ErrUnavailable) {
		t.Errorf("Append blocked by a lock: %v, want %v", err, ports.ErrUnavailable)
	}
	if took > timeout+2*time.Second {
		t.Errorf("Append blocked by a lock took %s, want about %s", took, timeout)
	}
}

// TestALostServerIsUnavailableAndTheStoreRecovers cuts every connection between the store and
// the server, then restores the route: calls fail with ErrUnavailable meanwhile, and work again
// afterwards on the same store, without reopening it.
func TestALostServerIsUnavailableAndTheStoreRecovers(t *testing.T) {
	t.Parallel()
	st := newStory(t)
	dsn := mysqltest.NewDatabase(t)
	cfg, err := gomysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	p := newProxy(t, cfg.Addr)
	cfg.Addr = p.addr
	s, _ := open(t, mysql.Config{DSN: cfg.FormatDSN(), Timeout: 2 * time.Second})
	id := newID()
	appendOK(t, s, st.create(id))

	p.stop()
	calls := []struct {
		name string
		call func(context.Context) error
	}{
		{"Ping", s.Ping},
		{"Load", func(ctx context.Context) error { _, err := s.Load(ctx, id, 0); return err }},
		{"ReadAll", func(ctx context.Context) error { _, err := s.ReadAll(ctx, 0, 10); return err }},
		{"Lookup", func(ctx context.Context) error { _, err := s.Lookup(ctx, "k"); return err }},
		{"Heads", func(ctx context.Context) error { _, err := s.Heads(ctx, "", 10); return err }},
		{"Append", func(ctx context.Context) error {
			return s.Append(ctx, ports.Append{PostID: id, ExpectedVersion: 1, Changes: []ports.Change{st.retitle(id, "t2")}})
		}},
		{"Relay", func(ctx context.Context) error {
			_, err := s.Relay(ctx, 10, func(context.Context, []ports.Change) error { return nil })
			return err
		}},
	}
	for _, c := range calls {
		start := time.Now()
		err := c.call(t.Context())
		if !errors.Is(err, ports.ErrUnavailable) {
			t.Errorf("%s with the server gone: %v, want %v", c.name, err, ports.ErrUnavailable)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("%s with the server gone took %s", c.name, took)
		}
	}

	p.start()
	eventually(t, func() bool { return s.Ping(t.Context()) == nil }, "Ping to succeed once the server is back")
	if got, err := s.Load(t.Context(), id, 0); err != nil || len(got) != 1 {
		t.Errorf("Load after the server came back = %d events, %v; want 1", len(got), err)
	}
	if got := relayOnce(t, s, 10); len(got) != 1 {
		t.Errorf("after the server came back the relay published %v, want the first create", ids(got))
	}
}

func BenchmarkAppend(b *testing.B) {
	st := newStory(b)
	s, _ := open(b, mysql.Config{})
	ctx := context.Background()

	b.Run("create a stream", func(b *testing.B) {
		for b.Loop() {
			c := st.create(newID())
			if err := s.Append(ctx, ports.Append{PostID: c.Event.PostID, Changes: []ports.Change{c}}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("append to a stream", func(b *testing.B) {
		id := newID()
		appendOK(b, s, st.create(id))
		for b.Loop() {
			c := st.retitle(id, newID())
			err := s.Append(ctx, ports.Append{PostID: id, ExpectedVersion: c.Event.Version - 1, Changes: []ports.Change{c}})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkRelay(b *testing.B) {
	st := newStory(b)
	s, _ := open(b, mysql.Config{})
	ctx := context.Background()
	const changes = 20
	published := func(context.Context, []ports.Change) error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		var wg sync.WaitGroup
		for range changes {
			c := st.create(newID())
			wg.Go(func() {
				if err := s.Append(ctx, ports.Append{PostID: c.Event.PostID, Changes: []ports.Change{c}}); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
		b.StartTimer()
		if n, err := s.Relay(ctx, changes, published); err != nil || n != changes {
			b.Fatalf("Relay = %d, %v; want %d", n, err, changes)
		}
	}
}
