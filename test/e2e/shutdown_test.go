package e2e_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"testing"
	"time"
)

// outcome is an HTTP answer, or the error that came instead.
type outcome struct {
	response
	err error
}

// try sends a request like do, from any goroutine: an error is returned, not fatal.
func try(method, url string, body io.Reader) outcome {
	req, err := http.NewRequestWithContext(context.Background(), method, url, body)
	if err != nil {
		return outcome{err: err}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := client.Do(req)
	if err != nil {
		return outcome{err: err}
	}
	defer func() { _ = res.Body.Close() }()
	raw, err := io.ReadAll(res.Body)
	r := outcome{response: response{Status: res.StatusCode, Header: res.Header, Raw: raw}, err: err}
	_ = json.Unmarshal(raw, &r.Body)
	return r
}

// awaitInFlight waits until the server (command or query) at baseURL serves n requests besides
// the scrape that asks.
func awaitInFlight(t *testing.T, baseURL, server string, n int) {
	t.Helper()
	eventually(t, 10*time.Second, fmt.Sprintf("%d request(s) in flight on the %s server", n, server), func() bool {
		return scrape(t, baseURL).value("hexapost_http_requests_in_flight", "server", server) >= float64(n+1)
	})
}

// wait waits for the process to exit, after a signal sent without stop, and returns its code.
func (p *process) wait(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(within):
		t.Fatalf("hexapost did not exit within %s", within)
	}
	return p.cmd.ProcessState.ExitCode()
}

// awaitRefused waits until a new connection to baseURL is refused: the server stopped accepting.
func awaitRefused(t *testing.T, baseURL string) {
	t.Helper()
	u, err := url.Parse(baseURL)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "new connections to "+baseURL+" to be refused", func() bool {
		c, err := net.DialTimeout("tcp", u.Host, time.Second)
		if err == nil {
			_ = c.Close()
			return false
		}
		return errors.Is(err, syscall.ECONNREFUSED)
	})
}

// TestShutdownAnswersAReadWaitingForAVersion: a read waiting for a version that does not come
// must not hold the shutdown up for its whole wait, here longer than the shutdown timeout. It is
// answered at once with 503 and Retry-After, and the process exits 0 in time.
func TestShutdownAnswersAReadWaitingForAVersion(t *testing.T) {
	t.Parallel()
	const timeout = 5 * time.Second
	p := start(t, map[string]string{"POSTS_READ_WAIT": "60s", "POSTS_SHUTDOWN_TIMEOUT": timeout.String()})
	id := do(t, "POST", p.CommandURL+"/posts", map[string]string{
		"title": "t", "content": "c", "author_name": "a",
	}).must(t, http.StatusCreated).str("id")

	answered := make(chan outcome, 1)
	go func() { answered <- try("GET", p.QueryURL+"/posts/"+id+"?min_version=2", nil) }()
	awaitInFlight(t, p.QueryURL, "query", 1)
	code, took := p.stop(t, syscall.SIGTERM, 2*timeout)

	if code != 0 || took >= timeout {
		t.Errorf("exit code %d after %v, want 0 within %v; logs %v", code, took, timeout, p.Logs())
	}
	select {
	case r := <-answered:
		if r.err != nil || r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
			t.Errorf("waiting read answered %d (Retry-After %q, error %v), want 503 with Retry-After; body %s",
				r.Status, r.Header.Get("Retry-After"), r.err, r.Raw)
		}
	case <-time.After(timeout):
		t.Fatal("the waiting read had no answer")
	}
}

// TestShutdownFinishesACommandInFlight: a command whose body is still arriving when SIGTERM
// comes is finished and answered while new connections are refused, and what it acknowledged
// is there after a restart.
func TestShutdownFinishesACommandInFlight(t *testing.T) {
	t.Parallel()
	env := map[string]string{"POSTS_EVENT_STORE": "mysql", "POSTS_MYSQL_DSN": mysqlDatabase(t)}
	p := start(t, env)

	body, rest := io.Pipe()
	answered := make(chan outcome, 1)
	go func() { answered <- try("POST", p.CommandURL+"/posts", body) }()
	if _, err := io.WriteString(rest, `{"title": "in flight", "content": `); err != nil {
		t.Fatal(err)
	}
	awaitInFlight(t, p.CommandURL, "command", 1)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	awaitRefused(t, p.CommandURL)
	awaitRefused(t, p.QueryURL)
	if _, err := io.WriteString(rest, `"c", "author_name": "a"}`); err != nil {
		t.Fatal(err)
	}
	_ = rest.Close()
	r := <-answered
	code := p.wait(t, 10*time.Second)

	if r.err != nil || r.Status != http.StatusCreated {
		t.Fatalf("command in flight answered %d, error %v, want 201; body %s", r.Status, r.err, r.Raw)
	}
	if code != 0 {
		t.Fatalf("exit code %d, want 0; logs %v", code, p.Logs())
	}
	again := start(t, env)
	do(t, "GET", again.QueryURL+"/posts/"+r.str("id")+"?min_version=1", nil).must(t, http.StatusOK)
}
