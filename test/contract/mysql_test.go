package contract_test

import (
	"testing"

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
