package e2e_test

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// privateFerretDB is a MongoDB-wire server of the test's own (the FerretDB that
// test/backends/up.sh builds, on its PostgreSQL), which the test may kill and restart.
type privateFerretDB struct {
	bin    string
	port   int
	cmd    *exec.Cmd
	exited chan struct{}
}

func startPrivateFerretDB(t *testing.T) *privateFerretDB {
	t.Helper()
	backend(t, "POSTS_MONGO_URI")
	bin, err := filepath.Abs(filepath.Join("..", "backends", ".state", "ferretdb"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("FerretDB binary: %v (test/backends/up.sh builds it)", err)
	}
	f := &privateFerretDB{bin: bin, port: freePort(t)}
	f.start(t)
	t.Cleanup(f.kill)
	return f
}

// URI is a mongodb:// URI for a throwaway database on the server.
func (f *privateFerretDB) URI() string {
	return "mongodb://127.0.0.1:" + strconv.Itoa(f.port) + "/hexapost_e2e_" + randomHex(6)
}

func (f *privateFerretDB) start(t *testing.T) {
	t.Helper()
	f.cmd = exec.Command(f.bin, "serve", "-listen", "127.0.0.1:"+strconv.Itoa(f.port))
	if err := f.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(f.cmd, f.exited)
	eventually(t, 15*time.Second, "FerretDB to listen", func() bool {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(f.port), time.Second)
		if err != nil {
			return false
		}
		_ = c.Close()
		return true
	})
}

func (f *privateFerretDB) kill() {
	if f.cmd == nil {
		return
	}
	_ = f.cmd.Process.Kill()
	<-f.exited
	f.cmd = nil
}

// TestMongoLostAtRuntime kills the read model's server under a running hexapost: reads answer
// 503 in bounded time, /readyz names the read model, and reads recover by themselves.
func TestMongoLostAtRuntime(t *testing.T) {
	t.Parallel()
	f := startPrivateFerretDB(t)
	p := start(t, map[string]string{"POSTS_READ_MODEL": "mongo", "POSTS_MONGO_URI": f.URI()})
	id := do(t, "POST", p.CommandURL+"/posts", map[string]string{
		"title": "t", "content": "c", "author_name": "outage",
	}).must(t, http.StatusCreated).str("id")
	do(t, "GET", p.QueryURL+"/posts/"+id+"?min_version=1", nil).must(t, http.StatusOK)

	f.kill()
	begin := time.Now()
	r := do(t, "GET", p.QueryURL+"/posts/"+id, nil)
	took := time.Since(begin)
	if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" || took > 15*time.Second {
		t.Fatalf("with the read model down: %d after %s (Retry-After %q), want 503 in bounded time; %s",
			r.Status, took, r.Header.Get("Retry-After"), r.Raw)
	}
	ready := do(t, "GET", p.QueryURL+"/readyz", nil)
	if ready.Status != http.StatusServiceUnavailable || !strings.Contains(string(ready.Raw), "read_model") {
		t.Fatalf("readyz with the read model down: %d %s", ready.Status, ready.Raw)
	}
	t.Logf("503 after %s; readyz: %s", took.Round(time.Millisecond), ready.Raw)

	f.start(t)
	eventually(t, 30*time.Second, "reads to recover", func() bool {
		return do(t, "GET", p.QueryURL+"/posts/"+id, nil).Status == http.StatusOK
	})
	do(t, "GET", p.QueryURL+"/readyz", nil).must(t, http.StatusOK)
}
