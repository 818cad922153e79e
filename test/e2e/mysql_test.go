package e2e_test

import (
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"hexapost/test/harness"
)

func TestWalkthroughMySQLAndRestart(t *testing.T) {
	t.Parallel()
	env := map[string]string{"POSTS_EVENT_STORE": "mysql", "POSTS_MYSQL_DSN": mysqlDatabase(t)}
	p := start(t, env)
	Walkthrough(t, p.CommandURL, p.QueryURL)

	r := do(t, "POST", p.CommandURL+"/posts", map[string]string{
		"title": "durable", "content": "survives a restart", "author_name": "restart",
	}).Must(t, http.StatusCreated)
	id := r.Str("id")
	do(t, "PATCH", p.CommandURL+"/posts/"+id, map[string]string{"content": "v2"}).Must(t, http.StatusOK)
	if code, _ := p.stop(t, syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}

	p = start(t, env)
	got := do(t, "GET", p.QueryURL+"/posts/"+id+"?min_version=2", nil).Must(t, http.StatusOK)
	if got.Str("content") != "v2" {
		t.Fatalf("after restart: %s", got.Raw)
	}
	next := do(t, "PATCH", p.CommandURL+"/posts/"+id, map[string]string{"content": "v3"}, "If-Match", `"2"`).
		Must(t, http.StatusOK)
	if next.Num("version") != 3 {
		t.Fatalf("version after restart %d, want 3 (versions continue)", next.Num("version"))
	}
	if n := len(harness.MustHistory(t, p.QueryURL, id)); n < 2 {
		t.Fatalf("history after restart has %d entries", n)
	}
}

// TestMySQLStartupErrors runs the binary against DSNs that cannot work: it must exit non-zero,
// quickly, with one line naming POSTS_MYSQL_DSN and never the password.
func TestMySQLStartupErrors(t *testing.T) {
	t.Parallel()
	backend(t, "POSTS_MYSQL_DSN")
	tests := []struct {
		name    string
		giveDSN string
		want    string
	}{
		{"malformed", "this is not a dsn", "POSTS_MYSQL_DSN"},
		{"unreachable", "hexapost:sesame-open@tcp(127.0.0.1:1)/hexapost", "POSTS_MYSQL_DSN"},
		{"wrong password", "hexapost:sesame-open@tcp(127.0.0.1:3306)/hexapost", "POSTS_MYSQL_DSN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(binary)
			cmd.Env = append(cmd.Environ(), "POSTS_EVENT_STORE=mysql", "POSTS_MYSQL_DSN="+tt.giveDSN,
				"POSTS_COMMAND_ADDR=127.0.0.1:0", "POSTS_QUERY_ADDR=127.0.0.1:0")
			begin := time.Now()
			out, err := cmd.CombinedOutput()
			took := time.Since(begin)
			if err == nil {
				t.Fatalf("started with DSN %q", tt.giveDSN)
			}
			text := string(out)
			last := strings.TrimSpace(text[strings.LastIndex(strings.TrimSpace(text), "\n")+1:])
			if !strings.Contains(last, tt.want) || strings.Contains(text, "sesame-open") {
				t.Fatalf("output %q: want a last line naming %s and no password", text, tt.want)
			}
			if took > 15*time.Second {
				t.Fatalf("took %s to fail", took)
			}
			t.Logf("%s: %q after %s", tt.name, last, took.Round(time.Millisecond))
		})
	}
}

// TestMySQLLostAtRuntime kills the process's MariaDB under it: commands must fail with 503 in
// bounded time, /readyz must name the event store, and service must resume by itself.
func TestMySQLLostAtRuntime(t *testing.T) {
	t.Parallel()
	db := startPrivateMariaDB(t)
	p := start(t, map[string]string{"POSTS_EVENT_STORE": "mysql", "POSTS_MYSQL_DSN": db.DSN()})
	body := map[string]string{"title": "t", "content": "c", "author_name": "outage"}
	do(t, "POST", p.CommandURL+"/posts", body).Must(t, http.StatusCreated)

	db.stop(t)
	begin := time.Now()
	r := do(t, "POST", p.CommandURL+"/posts", body)
	took := time.Since(begin)
	if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
		t.Fatalf("with MySQL down: status %d (Retry-After %q), want 503; body %s",
			r.Status, r.Header.Get("Retry-After"), r.Raw)
	}
	if took > 15*time.Second {
		t.Fatalf("503 took %s", took)
	}
	ready := do(t, "GET", p.CommandURL+"/readyz", nil)
	if ready.Status != http.StatusServiceUnavailable || !strings.Contains(string(ready.Raw), "event_store") {
		t.Fatalf("readyz with MySQL down: %d %s, want 503 naming event_store", ready.Status, ready.Raw)
	}
	t.Logf("503 after %s; readyz: %s", took.Round(time.Millisecond), ready.Raw)

	db.start(t)
	eventually(t, 30*time.Second, "commands to succeed again", func() bool {
		return do(t, "POST", p.CommandURL+"/posts", body).Status == http.StatusCreated
	})
	do(t, "GET", p.CommandURL+"/readyz", nil).Must(t, http.StatusOK)
}
