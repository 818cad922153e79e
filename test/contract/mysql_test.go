package contract_test

import (
	"testing"

	"hexapost/adapters/memory"
	"hexapost/adapters/mysql"
	"hexapost/adapters/mysql/mysqltest"
	"hexapost/ports"
	"hexapost/test/contract"
)

// TestMySQLEventStore runs the event store suite against MySQL/MariaDB, each case on a fresh
// database of the server named by POSTS_MYSQL_DSN.
func TestMySQLEventStore(t *testing.T) {
	t.Parallel()
	mysqltest.BaseDSN(t) // skips (or, under CI=true, fails) here when there is no server
	contract.EventStore(t, func(t *testing.T) contract.Store {
		s, err := mysql.Open(t.Context(), mysql.Config{DSN: mysqltest.NewDatabase(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Error(err)
			}
		})
		return s
	})
}

func TestMySQLStreamHeads(t *testing.T) {
	t.Parallel()
	mysqltest.BaseDSN(t)
	contract.StreamHeads(t, func(t *testing.T) contract.HeadsStore {
		return openMySQL(t, mysql.Config{DSN: mysqltest.NewDatabase(t)})
	})
}

// TestMySQLLocker runs the locker suite with one store per process, all on one fresh database.
func TestMySQLLocker(t *testing.T) {
	t.Parallel()
	mysqltest.BaseDSN(t)
	contract.Locker(t, func(t *testing.T) func() contract.LockerProcess {
		dsn := mysqltest.NewDatabase(t)
		return func() contract.LockerProcess {
			s := openMySQL(t, mysql.Config{DSN: dsn})
			return contract.LockerProcess{Locker: s, End: func() { _ = s.Close() }}
		}
	}, contract.LockerFeatures{Processes: true})
}

// openMySQL opens a store, closed when the test ends.
func openMySQL(tb testing.TB, cfg mysql.Config) *mysql.EventStore {
	tb.Helper()
	s, err := mysql.Open(tb.Context(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// BenchmarkMySQLMongoReconcilePass compares a Mongo read model with a MySQL event store, one
// pass over HEXAPOST_BENCH_RECONCILE_POSTS posts:
// HEXAPOST_BENCH_RECONCILE_POSTS=100000 go test ./test/contract -run '^$' -bench ReconcilePass -benchtime 1x
func BenchmarkMySQLMongoReconcilePass(b *testing.B) {
	mysqltest.BaseDSN(b)
	uri := contract.Backend(b, "POSTS_MONGO_URI")
	contract.BenchmarkReconcilePass(b,
		func(b *testing.B) contract.HeadsStore {
			return openMySQL(b, mysql.Config{DSN: mysqltest.NewDatabase(b)})
		},
		func(b *testing.B) contract.VersionsStore { return mongoViews(b, uri) })
}

// BenchmarkMySQLReconcilePass is the pass with the read model in memory: the store's share.
func BenchmarkMySQLReconcilePass(b *testing.B) {
	mysqltest.BaseDSN(b)
	contract.BenchmarkReconcilePass(b,
		func(b *testing.B) contract.HeadsStore {
			return openMySQL(b, mysql.Config{DSN: mysqltest.NewDatabase(b)})
		},
		func(*testing.B) contract.VersionsStore { return memory.NewViews() })
}

// BenchmarkMySQLAppend: go test ./test/contract -run '^$' -bench Append
func BenchmarkMySQLAppend(b *testing.B) {
	contract.BenchmarkAppend(b, func(b *testing.B) ports.EventStore {
		s, err := mysql.Open(b.Context(), mysql.Config{DSN: mysqltest.NewDatabase(b)})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = s.Close() })
		return s
	})
}
