package mysql_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"hexapost/adapters/mysql"
	"hexapost/adapters/mysql/mysqltest"
	"hexapost/ports"
)

// TestALockIsFreedWhenItsConnectionIsCut takes a lock through a proxy, then cuts every
// connection between the store and the server, as the death of the process or of its network
// would: the holder no longer holds it, and another process takes it.
func TestALockIsFreedWhenItsConnectionIsCut(t *testing.T) {
	t.Parallel()
	dsn := mysqltest.NewDatabase(t)
	cfg, err := gomysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	p := newProxy(t, cfg.Addr)
	cfg.Addr = p.addr
	cut, _ := open(t, mysql.Config{DSN: cfg.FormatDSN(), Timeout: 2 * time.Second})
	other, _ := open(t, mysql.Config{DSN: dsn})
	l, ok, err := cut.TryLock(t.Context(), "reconcile")
	if err != nil || !ok {
		t.Fatalf("TryLock = %v, %v; want the lock", ok, err)
	}
	defer l.Release()

	p.stop()

	if l.Held(t.Context()) {
		t.Error("Held = true after the lock's connection was cut")
	}
	eventually(t, func() bool {
		got, ok, err := other.TryLock(t.Context(), "reconcile")
		if err != nil {
			t.Fatalf("TryLock: %v", err)
		}
		if ok {
			got.Release()
		}
		return ok
	}, "another store to take the lock of a connection that was cut")
	if _, _, err := cut.TryLock(t.Context(), "reconcile"); !errors.Is(err, ports.ErrUnavailable) {
		t.Errorf("TryLock with the server gone: %v, want %v", err, ports.ErrUnavailable)
	}
}

// TestOpenReadOnlyRunsNoMigrationAndWritesNothing opens a store read-only on a database without
// a schema, with an older schema and with the current one.
func TestOpenReadOnlyRunsNoMigrationAndWritesNothing(t *testing.T) {
	t.Parallel()
	dsn := mysqltest.NewDatabase(t)

	_, err := mysql.Open(t.Context(), mysql.Config{DSN: dsn, ReadOnly: true})
	if err == nil || !strings.Contains(err.Error(), "no schema; start a process that opens the store read-write") {
		t.Fatalf("Open read-only without a schema: %v, want an error saying what to do", err)
	}

	st := newStory(t)
	rw, _ := open(t, mysql.Config{DSN: dsn})
	id := newID()
	appendOK(t, rw, st.create(id))
	ro, _ := open(t, mysql.Config{DSN: dsn, ReadOnly: true})

	if heads, err := ro.Heads(t.Context(), "", 10); err != nil || len(heads) != 1 || heads[0].Version != 1 {
		t.Errorf("Heads on the read-only store = %v, %v; want %s at version 1", heads, err, id)
	}
	err = ro.Append(t.Context(), ports.Append{PostID: id, ExpectedVersion: 1, Changes: []ports.Change{st.retitle(id, "t2")}})
	if err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("Append on the read-only store: %v, want a read-only error", err)
	}
	if _, err := ro.Relay(t.Context(), 10, func(context.Context, []ports.Change) error { return nil }); err == nil ||
		!strings.Contains(err.Error(), "read-only") {
		t.Errorf("Relay on the read-only store: %v, want a read-only error", err)
	}
	if got := relayOnce(t, rw, 10); len(got) != 1 {
		t.Errorf("the read-write relay published %v, want the one create the read-only store left alone", ids(got))
	}

	db := rawDB(t, dsn)
	var name string
	if err := db.QueryRowContext(t.Context(), "SELECT MAX(name) FROM schema_migrations").Scan(&name); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(t.Context(), "DELETE FROM schema_migrations WHERE name = ?", name); err != nil {
		t.Fatal(err)
	}
	_, err = mysql.Open(t.Context(), mysql.Config{DSN: dsn, ReadOnly: true})
	if err == nil || !strings.Contains(err.Error(), "lacks the migrations "+name) {
		t.Errorf("Open read-only on an older schema: %v, want an error naming migration %s", err, name)
	}
}
