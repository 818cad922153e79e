package harness

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"hexapost/test/contract"
)

// Server is a backend server of the test's own (redis-server, nats-server, FerretDB, mariadbd),
// so that the test may kill it (SIGKILL: a crash, not a polite stop) and start it again on the
// same port and data without disturbing other tests, which share the servers of test/backends.
type Server struct {
	name   string
	port   int
	args   []string
	env    []string // added to the test's environment
	within time.Duration
	ready  func() error // nil once the server serves; nil func: listening is enough
	cmd    *exec.Cmd
	exited chan struct{}
}

// StartServer starts the command line args as a server called name, waits up to within for it
// to listen on the loopback port, and kills it when the test ends.
func StartServer(t testing.TB, name string, port int, within time.Duration, args ...string) *Server {
	t.Helper()
	return startServer(t, &Server{name: name, port: port, args: args, within: within})
}

func startServer(t testing.TB, s *Server) *Server {
	t.Helper()
	s.Start(t)
	t.Cleanup(s.Kill)
	return s
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// Start starts the server (again) and waits until it listens and, for a server with a readiness
// check, until that passes.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	s.cmd = exec.Command(s.args[0], s.args[1:]...)
	if len(s.env) > 0 {
		s.cmd.Env = append(os.Environ(), s.env...)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(s.cmd, s.exited)
	deadline := time.Now().Add(s.within)
	listening := func() error {
		c, err := net.DialTimeout("tcp", s.Addr(), time.Second)
		if err == nil {
			_ = c.Close()
		}
		return err
	}
	for _, check := range []struct {
		what string
		ok   func() error
	}{{"listen", listening}, {"pass its readiness check", s.ready}} {
		for check.ok != nil {
			err := check.ok()
			if err == nil {
				break
			}
			select {
			case <-s.exited:
				t.Fatalf("%s exited while starting", s.name)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not %s within %s: %v", s.name, check.what, s.within, err)
			}
			time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
		}
	}
}

// Kill kills the server with SIGKILL and waits for it to exit; it does nothing if the server is
// not running.
func (s *Server) Kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// StartRedis starts a private redis-server whose append-only file brings the stream and the
// consumer group back after a restart, and returns it with its redis:// URL. POSTS_REDIS_URL is
// the real-backend switch: redis-server is installed with it.
func StartRedis(t testing.TB, within time.Duration) (*Server, string) {
	t.Helper()
	contract.Backend(t, "POSTS_REDIS_URL")
	dir, port := t.TempDir(), FreePort(t)
	s := StartServer(t, "redis-server", port, within, "redis-server", "--bind", "127.0.0.1",
		"--port", strconv.Itoa(port), "--dir", dir, "--save", "", "--appendonly", "yes", "--appendfsync", "always")
	return s, "redis://" + s.Addr() + "/0"
}

// StartNATS starts a private nats-server with file-backed JetStream and returns it with its
// nats:// URL. POSTS_NATS_URL is the real-backend switch. Like the shared one of
// test/backends/up.sh, it runs with GOMAXPROCS=1 (see there).
func StartNATS(t testing.TB, within time.Duration) (*Server, string) {
	t.Helper()
	contract.Backend(t, "POSTS_NATS_URL")
	dir, port := t.TempDir(), FreePort(t)
	s := startServer(t, &Server{name: "nats-server", port: port, within: within, env: []string{"GOMAXPROCS=1"},
		args: []string{"nats-server", "-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", dir}})
	return s, "nats://" + s.Addr()
}

// StartFerretDB starts a private MongoDB-wire server, the FerretDB that test/backends/up.sh
// builds, storing in a PostgreSQL database of its own beside the one of HEXAPOST_TEST_POSTGRES_URL
// (FerretDB reads every schema of its database at start, so one sharing a database with others
// can trip over a schema they drop meanwhile). It returns the server, its URI and its
// database's URL; the database is dropped when the test ends.
func StartFerretDB(t testing.TB, within time.Duration) (*Server, string, string) {
	t.Helper()
	contract.Backend(t, "POSTS_MONGO_URI")
	shared := contract.Backend(t, "HEXAPOST_TEST_POSTGRES_URL")
	bin, err := filepath.Abs(filepath.Join("..", "backends", ".state", "ferretdb"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("FerretDB binary: %v (test/backends/up.sh builds it)", err)
	}
	pgURL, err := url.Parse(shared)
	if err != nil {
		t.Fatalf("HEXAPOST_TEST_POSTGRES_URL: %v", err)
	}
	name := "ferretdb_" + strings.ToLower(rand.Text()[:12])
	if _, err := Psql(shared, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	// Registered before the server starts, so it runs after the server is stopped.
	t.Cleanup(func() {
		if _, err := Psql(shared, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("drop the private FerretDB's database: %v", err)
		}
	})
	pgURL.Path = "/" + name
	port := FreePort(t)
	uri := "mongodb://127.0.0.1:" + strconv.Itoa(port) + "/hexapost"
	// Ready when a ping has gone through to PostgreSQL: FerretDB listens before it has connected
	// there, and the first command opens its connection pool.
	ready := func() error {
		if out, err := exec.Command(bin, "ping", uri).CombinedOutput(); err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		return nil
	}
	s := startServer(t, &Server{name: "ferretdb", port: port, within: within, ready: ready,
		args: []string{bin, "serve", "-listen", "127.0.0.1:" + strconv.Itoa(port), "-postgresql-url", pgURL.String()}})
	return s, uri, pgURL.String()
}

// Psql runs sql on the PostgreSQL database at pgURL with the psql client, stopping at the first
// error, and returns what it printed (unaligned, tuples only).
func Psql(pgURL, sql string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "psql", "-XqtA", "-v", "ON_ERROR_STOP=1", "-d", pgURL, "-c", sql).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("psql: %w\n%s", err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// StartMariaDB initialises a data directory and starts a private mariadbd on a free loopback
// port with a user hexapost/secret and a database hexapost, and returns it with its DSN. It
// needs the mariadb-server package and root (as in CI); POSTS_MYSQL_DSN is the real-backend
// switch.
func StartMariaDB(t testing.TB, within time.Duration) (*Server, string) {
	t.Helper()
	contract.Backend(t, "POSTS_MYSQL_DSN")
	if _, err := exec.LookPath("mariadbd"); err != nil {
		t.Fatalf("mariadbd not found: %v", err)
	}
	dir, err := os.MkdirTemp("", "hexapost-mariadb-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	// A temporary directory of its own: a mariadbd that starts deletes the temporary files it
	// finds in its tmpdir, and with the default /tmp it deleted those of a data directory that
	// another test was initialising at the same moment ("Error on delete of
	// '/tmp/#sql-temptable-…'").
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("chown", "-R", "mysql:mysql", dir).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v\n%s", err, out)
	}
	install := exec.Command("mariadb-install-db", "--user=mysql", "--datadir="+filepath.Join(dir, "data"),
		"--tmpdir="+tmp, "--auth-root-authentication-method=socket", "--skip-test-db")
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	sock, port := filepath.Join(dir, "mysqld.sock"), FreePort(t)
	s := StartServer(t, "mariadbd", port, within,
		"mariadbd", "--no-defaults", "--user=mysql", "--datadir="+filepath.Join(dir, "data"),
		"--tmpdir="+tmp, "--bind-address=127.0.0.1", "--port="+strconv.Itoa(port), "--socket="+sock,
		"--pid-file="+filepath.Join(dir, "mysqld.pid"), "--innodb-buffer-pool-size=64M", "--skip-log-bin")
	cmd := exec.Command("mariadb", "--socket="+sock, "-uroot")
	cmd.Stdin = strings.NewReader(`CREATE USER 'hexapost'@'127.0.0.1' IDENTIFIED BY 'secret';
GRANT ALL PRIVILEGES ON *.* TO 'hexapost'@'127.0.0.1';
CREATE DATABASE hexapost;`)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mariadb: %v\n%s", err, out)
	}
	return s, "hexapost:secret@tcp(" + s.Addr() + ")/hexapost?parseTime=true&interpolateParams=true"
}
