package e2e_test

import (
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// privateNATS is a nats-server with JetStream of the test's own, which it may kill and restart.
type privateNATS struct {
	dir    string
	port   int
	cmd    *exec.Cmd
	exited chan struct{}
}

func startPrivateNATS(t testing.TB) *privateNATS {
	t.Helper()
	backend(t, "POSTS_NATS_URL") // the real-backend switch: nats-server is installed with it
	n := &privateNATS{dir: t.TempDir(), port: freePort(t)}
	n.start(t)
	t.Cleanup(n.kill)
	return n
}

// URL is the nats:// URL of the server.
func (n *privateNATS) URL() string { return "nats://127.0.0.1:" + strconv.Itoa(n.port) }

func (n *privateNATS) start(t testing.TB) {
	t.Helper()
	n.cmd = exec.Command("nats-server", "-a", "127.0.0.1", "-p", strconv.Itoa(n.port), "-js", "-sd", n.dir)
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(n.cmd, n.exited)
	eventually(t, 10*time.Second, "nats-server to listen", func() bool {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(n.port), time.Second)
		if err != nil {
			return false
		}
		_ = c.Close()
		return true
	})
}

func (n *privateNATS) kill() {
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Kill()
	<-n.exited
	n.cmd = nil
}

// TestWalkthroughSeparateProcesses runs the walkthrough with the command server and the query
// server in separate processes, over each real bus, with the MySQL event store.
func TestWalkthroughSeparateProcesses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		bus  func(t *testing.T) map[string]string
	}{
		{"redis", func(t *testing.T) map[string]string {
			return map[string]string{"POSTS_BUS": "redis", "POSTS_REDIS_URL": startPrivateRedis(t).URL()}
		}},
		{"nats", func(t *testing.T) map[string]string {
			return map[string]string{"POSTS_BUS": "nats", "POSTS_NATS_URL": startPrivateNATS(t).URL()}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := tt.bus(t)
			query := start(t, env, "serve", "query")
			env["POSTS_EVENT_STORE"], env["POSTS_MYSQL_DSN"] = "mysql", mysqlDatabase(t)
			command := start(t, env, "serve", "command")
			Walkthrough(t, command.CommandURL, query.QueryURL)
		})
	}
}
