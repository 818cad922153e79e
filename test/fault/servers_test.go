package fault_test

import (
	"testing"
	"time"

	"hexapost/test/harness"
)

// mysqlDatabase creates a throwaway database on the server of POSTS_MYSQL_DSN and returns a DSN
// for it; the database is dropped when the test ends.
func mysqlDatabase(t testing.TB) string {
	t.Helper()
	return harness.MySQLDatabase(t, "hexapost_fault_")
}

// mongoDatabase returns a URI for a throwaway database on the server of base (POSTS_MONGO_URI
// when empty), dropped when the test ends.
func mongoDatabase(t testing.TB, base string) string {
	t.Helper()
	return harness.MongoDatabase(t, base, "hexapost_fault_")
}

// server is a backend server of the test's own (redis-server, nats-server, FerretDB, mariadbd)
// that the test may kill (SIGKILL: a crash, not a polite stop) and start again on the same port
// and data.
type server struct{ *harness.Server }

func (s *server) start(t testing.TB) { t.Helper(); s.Start(t) }
func (s *server) kill()              { s.Kill() }

func wrap(s *harness.Server, addr string) (*server, string) { return &server{s}, addr }

// serverWithin bounds the wait for a private server to listen.
const serverWithin = 30 * time.Second

// startRedis starts a private redis-server whose append-only file brings the stream and the
// consumer group back after a restart.
func startRedis(t testing.TB) (*server, string) {
	t.Helper()
	return wrap(harness.StartRedis(t, serverWithin))
}

// startNATS starts a private nats-server with file-backed JetStream.
func startNATS(t testing.TB) (*server, string) {
	t.Helper()
	return wrap(harness.StartNATS(t, serverWithin))
}

// startFerretDB starts a private MongoDB-wire server (harness.StartFerretDB) and returns it,
// its URI and its PostgreSQL database's URL.
func startFerretDB(t testing.TB) (*server, string, string) {
	t.Helper()
	s, uri, pgURL := harness.StartFerretDB(t, serverWithin)
	return &server{s}, uri, pgURL
}

// startMariaDB initialises a data directory and starts a private mariadbd on a free loopback
// port with a user hexapost/secret, and returns its DSN. It needs the mariadb-server package
// and root (as in CI).
func startMariaDB(t testing.TB) (*server, string) {
	t.Helper()
	return wrap(harness.StartMariaDB(t, serverWithin))
}
