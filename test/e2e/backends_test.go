package e2e_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"hexapost/test/contract"
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
	base, err := mysql.ParseDSN(backend(t, "POSTS_MYSQL_DSN"))
	if err != nil {
		t.Fatal(err)
	}
	name := "hexapost_e2e_" + randomHex(6)
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

// privateMariaDB is a MariaDB server of the test's own, so that the test can stop and start it
// without disturbing other tests that share the one of test/backends.
type privateMariaDB struct {
	dir, sock string
	port      int
	cmd       *exec.Cmd
	exited    chan struct{}
}

// startPrivateMariaDB initialises a data directory and starts mariadbd on a free loopback port,
// with a user hexapost/secret. It needs the mariadb-server package and root (as in CI).
func startPrivateMariaDB(t *testing.T) *privateMariaDB {
	t.Helper()
	backend(t, "POSTS_MYSQL_DSN") // the real-backend switch: the package is installed with it
	if _, err := exec.LookPath("mariadbd"); err != nil {
		t.Fatalf("mariadbd not found: %v", err)
	}
	dir, err := os.MkdirTemp("", "hexapost-mariadb-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := exec.Command("chown", "-R", "mysql:mysql", dir).Run(); err != nil {
		t.Fatal(err)
	}
	m := &privateMariaDB{dir: dir, sock: filepath.Join(dir, "mysqld.sock"), port: freePort(t)}
	install := exec.Command("mariadb-install-db", "--user=mysql", "--datadir="+filepath.Join(dir, "data"),
		"--auth-root-authentication-method=socket", "--skip-test-db")
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	m.start(t)
	t.Cleanup(func() { m.stop(t) })
	sqlAsRoot(t, m.sock, `CREATE USER 'hexapost'@'127.0.0.1' IDENTIFIED BY 'secret';
GRANT ALL PRIVILEGES ON *.* TO 'hexapost'@'127.0.0.1';
CREATE DATABASE hexapost;`)
	return m
}

// DSN is the DSN of the private server.
func (m *privateMariaDB) DSN() string {
	return "hexapost:secret@tcp(127.0.0.1:" + strconv.Itoa(m.port) + ")/hexapost?parseTime=true&interpolateParams=true"
}

func (m *privateMariaDB) start(t *testing.T) {
	t.Helper()
	m.cmd = exec.Command("mariadbd", "--no-defaults", "--user=mysql", "--datadir="+filepath.Join(m.dir, "data"),
		"--bind-address=127.0.0.1", "--port="+strconv.Itoa(m.port), "--socket="+m.sock,
		"--pid-file="+filepath.Join(m.dir, "mysqld.pid"), "--innodb-buffer-pool-size=64M", "--skip-log-bin")
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	m.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(m.cmd, m.exited)
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(m.port), time.Second)
		if err == nil {
			_ = conn.Close()
			return
		}
		select {
		case <-m.exited:
			t.Fatal("private mariadbd exited while starting")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("private mariadbd did not listen within 30s")
		}
		time.Sleep(50 * time.Millisecond) // polling a condition with a deadline
	}
}

// stop kills the server (SIGKILL: a crash, not a polite shutdown) and waits for it to exit.
func (m *privateMariaDB) stop(t *testing.T) {
	t.Helper()
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Kill()
	<-m.exited
	m.cmd = nil
}

func sqlAsRoot(t *testing.T, sock, script string) {
	t.Helper()
	cmd := exec.Command("mariadb", "--socket="+sock, "-uroot")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mariadb: %v\n%s", err, out)
	}
}
