package fault_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"hexapost/adapters/mongo"
	"hexapost/test/contract"
)

// backend returns the address of a real backend from its env variable, or skips the test —
// except under CI=true, where a missing backend fails it.
func backend(t testing.TB, variable string) string {
	t.Helper()
	return contract.Backend(t, variable)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// freePort returns a loopback port nobody listens on right now.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().(*net.TCPAddr).Port
}

// mysqlDatabase creates a throwaway database on the server of POSTS_MYSQL_DSN and returns a DSN
// for it; the database is dropped when the test ends.
func mysqlDatabase(t testing.TB) string {
	t.Helper()
	base, err := mysql.ParseDSN(backend(t, "POSTS_MYSQL_DSN"))
	if err != nil {
		t.Fatal(err)
	}
	name := "hexapost_fault_" + randomHex(6)
	admin := base.Clone()
	admin.DBName = ""
	db, err := sql.Open("mysql", admin.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name)
		_ = db.Close()
	})
	dsn := base.Clone()
	dsn.DBName = name
	return dsn.FormatDSN()
}

// mongoDatabase returns a URI for a throwaway database on the server of base (POSTS_MONGO_URI
// when empty), dropped when the test ends.
func mongoDatabase(t testing.TB, base string) string {
	t.Helper()
	if base == "" {
		base = backend(t, "POSTS_MONGO_URI")
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/hexapost_fault_" + randomHex(6)
	uri := u.String()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		v, err := mongo.Open(ctx, mongo.Config{URI: uri})
		if err != nil {
			return
		}
		_ = v.Drop(ctx)
		_ = v.Close()
	})
	return uri
}

// server is a backend server of the test's own (redis-server, nats-server, FerretDB, mariadbd)
// that the test may kill (SIGKILL: a crash, not a polite stop) and start again on the same port
// and data.
type server struct {
	name   string
	port   int
	args   func() []string
	cmd    *exec.Cmd
	exited chan struct{}
}

func (s *server) start(t testing.TB) {
	t.Helper()
	args := s.args()
	s.cmd = exec.Command(args[0], args[1:]...)
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(s.cmd, s.exited)
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(s.port), time.Second)
		if err == nil {
			_ = c.Close()
			return
		}
		select {
		case <-s.exited:
			t.Fatalf("%s exited while starting", s.name)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not listen within 30s", s.name)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
}

func (s *server) kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

func startServer(t testing.TB, s *server) *server {
	t.Helper()
	s.start(t)
	t.Cleanup(s.kill)
	return s
}

// startRedis starts a private redis-server whose append-only file brings the stream and the
// consumer group back after a restart.
func startRedis(t testing.TB) (*server, string) {
	t.Helper()
	backend(t, "POSTS_REDIS_URL") // the real-backend switch: redis-server is installed with it
	dir, port := t.TempDir(), freePort(t)
	s := startServer(t, &server{name: "redis-server", port: port, args: func() []string {
		return []string{"redis-server", "--bind", "127.0.0.1", "--port", strconv.Itoa(port),
			"--dir", dir, "--save", "", "--appendonly", "yes", "--appendfsync", "always"}
	}})
	return s, "redis://127.0.0.1:" + strconv.Itoa(port) + "/0"
}

// startNATS starts a private nats-server with file-backed JetStream.
func startNATS(t testing.TB) (*server, string) {
	t.Helper()
	backend(t, "POSTS_NATS_URL")
	dir, port := t.TempDir(), freePort(t)
	s := startServer(t, &server{name: "nats-server", port: port, args: func() []string {
		return []string{"nats-server", "-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", dir}
	}})
	return s, "nats://127.0.0.1:" + strconv.Itoa(port)
}

// startFerretDB starts a private MongoDB-wire server: the FerretDB that test/backends/up.sh
// builds, storing in the PostgreSQL database of POSTS_TEST_POSTGRES_URL (the one up.sh runs
// it on). It returns the server, its URI and that database's URL.
func startFerretDB(t testing.TB) (*server, string, string) {
	t.Helper()
	backend(t, "POSTS_MONGO_URI")
	pgURL := backend(t, "POSTS_TEST_POSTGRES_URL")
	bin, err := filepath.Abs(filepath.Join("..", "backends", ".state", "ferretdb"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("FerretDB binary: %v (test/backends/up.sh builds it)", err)
	}
	port := freePort(t)
	s := startServer(t, &server{name: "ferretdb", port: port, args: func() []string {
		return []string{bin, "serve", "-listen", "127.0.0.1:" + strconv.Itoa(port), "-postgresql-url", pgURL}
	}})
	return s, "mongodb://127.0.0.1:" + strconv.Itoa(port) + "/hexapost", pgURL
}

// startMariaDB initialises a data directory and starts a private mariadbd on a free loopback
// port with a user hexapost/secret, and returns its DSN. It needs the mariadb-server package
// and root (as in CI).
func startMariaDB(t testing.TB) (*server, string) {
	t.Helper()
	backend(t, "POSTS_MYSQL_DSN") // the real-backend switch: the package is installed with it
	dir, err := os.MkdirTemp("", "hexapost-mariadb-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if out, err := exec.Command("chown", "-R", "mysql:mysql", dir).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v\n%s", err, out)
	}
	install := exec.Command("mariadb-install-db", "--user=mysql", "--datadir="+filepath.Join(dir, "data"),
		"--auth-root-authentication-method=socket", "--skip-test-db")
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	sock, port := filepath.Join(dir, "mysqld.sock"), freePort(t)
	s := startServer(t, &server{name: "mariadbd", port: port, args: func() []string {
		return []string{"mariadbd", "--no-defaults", "--user=mysql", "--datadir=" + filepath.Join(dir, "data"),
			"--bind-address=127.0.0.1", "--port=" + strconv.Itoa(port), "--socket=" + sock,
			"--pid-file=" + filepath.Join(dir, "mysqld.pid"), "--innodb-buffer-pool-size=64M", "--skip-log-bin"}
	}})
	cmd := exec.Command("mariadb", "--socket="+sock, "-uroot")
	cmd.Stdin = strings.NewReader(`CREATE USER 'hexapost'@'127.0.0.1' IDENTIFIED BY 'secret';
GRANT ALL PRIVILEGES ON *.* TO 'hexapost'@'127.0.0.1';
CREATE DATABASE hexapost;`)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mariadb: %v\n%s", err, out)
	}
	return s, "hexapost:secret@tcp(127.0.0.1:" + strconv.Itoa(port) + ")/hexapost?parseTime=true&interpolateParams=true"
}
