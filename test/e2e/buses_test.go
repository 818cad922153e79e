package e2e_test

import (
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// startPrivateNATS runs a nats-server with JetStream of the test's own on a free port.
func startPrivateNATS(t *testing.T) string {
	t.Helper()
	backend(t, "POSTS_NATS_URL") // the real-backend switch: nats-server is installed with it
	port := freePort(t)
	cmd := exec.Command("nats-server", "-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	eventually(t, 10*time.Second, "nats-server to listen", func() bool {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
		if err != nil {
			return false
		}
		_ = c.Close()
		return true
	})
	return "nats://127.0.0.1:" + strconv.Itoa(port)
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
			return map[string]string{"POSTS_BUS": "nats", "POSTS_NATS_URL": startPrivateNATS(t)}
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
