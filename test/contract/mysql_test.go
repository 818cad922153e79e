package contract_test

import (
	"testing"

	"hexapost/adapters/mysql"
	"hexapost/adapters/mysql/mysqltest"
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
