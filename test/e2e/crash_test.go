package e2e_test

import (
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// privateRedis is a redis-server of the test's own, which the test may kill and restart.
type privateRedis struct {
	dir    string
	port   int
	cmd    *exec.Cmd
	exited chan struct{}
}

func startPrivateRedis(t testing.TB) *privateRedis {
	t.Helper()
	backend(t, "POSTS_REDIS_URL") // the real-backend switch: redis-server is installed with it
	r := &privateRedis{dir: t.TempDir(), port: freePort(t)}
	r.start(t)
	t.Cleanup(func() { r.kill() })
	return r
}

// URL is the redis:// URL of the server.
func (r *privateRedis) URL() string { return "redis://127.0.0.1:" + strconv.Itoa(r.port) + "/0" }

func (r *privateRedis) start(t testing.TB) {
	t.Helper()
	// The append-only file brings the stream and the consumer group back after a restart.
	r.cmd = exec.Command("redis-server", "--bind", "127.0.0.1", "--port", strconv.Itoa(r.port),
		"--dir", r.dir, "--save", "", "--appendonly", "yes", "--appendfsync", "always")
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(r.cmd, r.exited)
	eventually(t, 10*time.Second, "redis-server to listen", func() bool {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(r.port), time.Second)
		if err != nil {
			return false
		}
		_ = c.Close()
		return true
	})
}

func (r *privateRedis) kill() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	<-r.exited
	r.cmd = nil
}

// TestCommandServerCrashBetweenAppendAndPublish shows the outbox's promise over real processes:
// changes appended and acknowledged while the bus is unreachable, then lost from the command
// process by SIGKILL before its relay could publish them, all reach the read side after a
// restart — each exactly once in the history.
func TestCommandServerCrashBetweenAppendAndPublish(t *testing.T) {
	t.Parallel()
	redis := startPrivateRedis(t)
	dsn := mysqlDatabase(t)
	commandEnv := map[string]string{
		"POSTS_EVENT_STORE": "mysql", "POSTS_MYSQL_DSN": dsn, "POSTS_BUS": "redis", "POSTS_REDIS_URL": redis.URL(),
	}
	queryEnv := map[string]string{"POSTS_BUS": "redis", "POSTS_REDIS_URL": redis.URL()}
	query := start(t, queryEnv, "serve", "query")
	command := start(t, commandEnv, "serve", "command")

	create := func(i int) string {
		return do(t, "POST", command.CommandURL+"/posts", map[string]string{
			"title": fmt.Sprintf("post %d", i), "content": "c", "author_name": "crash",
		}).must(t, http.StatusCreated).str("id")
	}
	var ids []string
	for i := range 10 {
		ids = append(ids, create(i))
	}
	for _, id := range ids {
		do(t, "GET", query.QueryURL+"/posts/"+id+"?min_version=1", nil).must(t, http.StatusOK)
	}

	// The bus goes away: appends still succeed (they are only in MySQL and its outbox), and
	// the command process dies before its relay can publish them.
	redis.kill()
	var pending []string
	for i := 10; i < 30; i++ {
		pending = append(pending, create(i))
	}
	_, _ = command.stop(t, syscall.SIGKILL, 10*time.Second)
	for _, id := range pending {
		if r := do(t, "GET", query.QueryURL+"/posts/"+id, nil); r.Status != http.StatusNotFound {
			t.Fatalf("post %s visible before it could have been published: %d", id, r.Status)
		}
	}

	redis.start(t)
	start(t, commandEnv, "serve", "command")
	for _, id := range append(ids, pending...) {
		do(t, "GET", query.QueryURL+"/posts/"+id+"?min_version=1", nil).must(t, http.StatusOK)
		history := do(t, "GET", query.QueryURL+"/posts/"+id+"/history", nil).must(t, http.StatusOK).items()
		if len(history) != 1 {
			t.Fatalf("post %s has %d history entries, want exactly 1", id, len(history))
		}
	}
	t.Logf("%d changes before the crash, %d appended during the outage and published after restart; none lost, none twice",
		len(ids), len(pending))
}
