package e2e_test

import (
	"testing"
	"time"

	"hexapost/test/contract"
	"hexapost/test/harness"
)

// backend returns the address of a real backend from its env variable, or skips the test —
// except under CI=true, where a missing backend fails it, so CI cannot go green by skipping.
func backend(t testing.TB, variable string) string {
	t.Helper()
	return contract.Backend(t, variable)
}

// mysqlDatabase creates a throwaway database on the server of POSTS_MYSQL_DSN and returns a DSN
// for it; the database is dropped when the test ends.
func mysqlDatabase(t testing.TB) string {
	t.Helper()
	return harness.MySQLDatabase(t, "hexapost_e2e_")
}

// mongoDatabase returns a URI for a throwaway database on the server of POSTS_MONGO_URI; the
// database is dropped when the test ends.
func mongoDatabase(t testing.TB) string {
	t.Helper()
	return harness.MongoDatabase(t, "", "hexapost_e2e_")
}

func randomHex(n int) string { return harness.RandomHex(n) }

// privateServer is a backend server of the test's own, which the test may kill and restart.
type privateServer struct {
	*harness.Server
	url string
}

// URL is the server's URL (redis://, nats://).
func (s *privateServer) URL() string        { return s.url }
func (s *privateServer) start(t testing.TB) { t.Helper(); s.Start(t) }
func (s *privateServer) kill()              { s.Kill() }

// privateRedis is a redis-server of the test's own, which the test may kill and restart.
type privateRedis = privateServer

func startPrivateRedis(t testing.TB) *privateRedis {
	t.Helper()
	s, url := harness.StartRedis(t, 10*time.Second)
	return &privateRedis{s, url}
}

// privateNATS is a nats-server with JetStream of the test's own, which it may kill and restart.
type privateNATS = privateServer

func startPrivateNATS(t testing.TB) *privateNATS {
	t.Helper()
	s, url := harness.StartNATS(t, 10*time.Second)
	return &privateNATS{s, url}
}

// privateFerretDB is a MongoDB-wire server of the test's own (the FerretDB that
// test/backends/up.sh builds, on its PostgreSQL), which the test may kill and restart.
type privateFerretDB struct{ privateServer }

func startPrivateFerretDB(t *testing.T) *privateFerretDB {
	t.Helper()
	s, _, _ := harness.StartFerretDB(t, 30*time.Second)
	return &privateFerretDB{privateServer{Server: s}}
}

// URI is a mongodb:// URI for a throwaway database on the server.
func (f *privateFerretDB) URI() string {
	return "mongodb://" + f.Addr() + "/hexapost_e2e_" + randomHex(6)
}

// privateMariaDB is a MariaDB server of the test's own, so that the test can stop and start it
// without disturbing other tests that share the one of test/backends.
type privateMariaDB struct{ privateServer }

// startPrivateMariaDB initialises a data directory and starts mariadbd on a free loopback port,
// with a user hexapost/secret. It needs the mariadb-server package and root (as in CI).
func startPrivateMariaDB(t *testing.T) *privateMariaDB {
	t.Helper()
	s, dsn := harness.StartMariaDB(t, 30*time.Second)
	return &privateMariaDB{privateServer{s, dsn}}
}

// DSN is the DSN of the private server.
func (m *privateMariaDB) DSN() string { return m.url }

// stop kills the server (SIGKILL: a crash, not a polite shutdown) and waits for it to exit.
func (m *privateMariaDB) stop(*testing.T) { m.Kill() }
