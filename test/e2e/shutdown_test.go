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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"hexapost/test/harness"
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
	res, err := harness.Client.Do(req)
	if err != nil {
		return outcome{err: err}
	}
	defer func() { _ = res.Body.Close() }()
	raw, err := io.ReadAll(res.Body)
	r := outcome{response: response{Status: res.StatusCode, Header: res.Header, Raw: raw}, err: err}
	_ = json.Unmarshal(raw, &r.Body)
	return r
}

// awaitInFlight waits until the server (command or query) of p serves n requests besides the
// scrape that asks. The process's metrics are served by its command server when it runs one:
// the scrape counts itself only in that server's gauge.
func awaitInFlight(t *testing.T, p *process, server string, n int) {
	t.Helper()
	metrics, scraped := p.CommandURL, "command"
	if metrics == "" {
		metrics, scraped = p.QueryURL, "query"
	}
	want := float64(n)
	if server == scraped {
		want++
	}
	eventually(t, 10*time.Second, fmt.Sprintf("%d request(s) in flight on the %s server", n, server), func() bool {
		return scrape(t, metrics).value("hexapost_http_requests_in_flight", "server", server) >= want
	})
}

// wait waits for the process to exit, after a signal sent without stop, and returns its code.
func (p *process) wait(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-p.Exited():
	case <-time.After(within):
		t.Fatalf("hexapost did not exit within %s", within)
	}
	return p.Cmd().ProcessState.ExitCode()
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
	}).Must(t, http.StatusCreated).Str("id")

	answered := make(chan outcome, 1)
	go func() { answered <- try("GET", p.QueryURL+"/posts/"+id+"?min_version=2", nil) }()
	awaitInFlight(t, p, "query", 1)
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
	awaitInFlight(t, p, "command", 1)
	if err := p.Cmd().Process.Signal(syscall.SIGTERM); err != nil {
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
	do(t, "GET", again.QueryURL+"/posts/"+r.Str("id")+"?min_version=1", nil).Must(t, http.StatusOK)
}

// loadClient has keep-alive connections for every client of the load, as a load balancer would.
var loadClient = &http.Client{
	Timeout:   30 * time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: 32},
}

// tally counts the outcomes of the load by kind.
type tally struct {
	mu      sync.Mutex
	ok      int // 2xx
	refused int // the connection was refused: the server had stopped accepting
	// unread counts requests the stopping server closed without reading them: sent on a
	// kept-alive connection just as the server closed it as idle (the keep-alive race of
	// HTTP/1.1, RFC 9112 §9.3.1), or on a connection still in the kernel's accept queue when
	// the listener closed. Any server that stops accepting does this; a client retries them
	// with their Idempotency-Key. checkProcessed holds the claim that they were never read.
	unread int
	other  map[string]int // anything else, by status or error; must stay empty
	acked  map[string]int64
}

func (c *tally) record(id string, r outcome) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case r.err == nil && r.Status/100 == 2:
		c.ok++
		v := r.Num("version")
		if id == "" {
			id = r.Str("id")
		}
		if v > c.acked[id] {
			c.acked[id] = v
		}
		return true
	case errors.Is(r.err, syscall.ECONNREFUSED):
		c.refused++
	case r.unread():
		c.unread++
	case r.err != nil:
		c.other[r.err.Error()]++
	default:
		c.other[fmt.Sprintf("status %d: %s", r.Status, r.Raw)]++
	}
	return false
}

func (c *tally) acknowledged() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ok
}

// unread tells whether the connection was reset or closed before any byte of an answer. The
// transport reports it as a reset, an EOF, or its own "server closed idle connection".
func (r outcome) unread() bool {
	return r.err != nil && r.Status == 0 &&
		(errors.Is(r.err, syscall.ECONNRESET) || errors.Is(r.err, io.EOF) ||
			strings.Contains(r.err.Error(), "server closed idle connection"))
}

// tryLoad sends a request of the load.
func tryLoad(method, url, body string) outcome {
	req, err := http.NewRequestWithContext(context.Background(), method, url, strings.NewReader(body))
	if err != nil {
		return outcome{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := loadClient.Do(req)
	if err != nil {
		return outcome{err: err}
	}
	defer func() { _ = res.Body.Close() }()
	raw, err := io.ReadAll(res.Body)
	r := outcome{response: response{Status: res.StatusCode, Raw: raw}, err: err}
	_ = json.Unmarshal(raw, &r.Body)
	return r
}

// commandLoad runs clients that each create a post and update it, until a command is refused
// (the server stopped), or the load has sent max commands, or d has passed.
func commandLoad(commandURL string, clients, max int, d time.Duration) (*tally, func() *tally) {
	c := &tally{other: map[string]int{}, acked: map[string]int64{}}
	var (
		wg   sync.WaitGroup
		sent atomic.Int64
	)
	deadline := time.Now().Add(d)
	more := func() bool { return sent.Add(1) <= int64(max) && time.Now().Before(deadline) }
	for i := range clients {
		wg.Go(func() {
			for more() {
				r := tryLoad("POST", commandURL+"/posts",
					fmt.Sprintf(`{"title": "load %d", "content": "v1", "author_name": "shutdown"}`, i))
				if !c.record("", r) {
					if errors.Is(r.err, syscall.ECONNREFUSED) {
						return
					}
					continue
				}
				id := r.Str("id")
				for v := 2; v <= 5 && more(); v++ {
					r := tryLoad("PATCH", commandURL+"/posts/"+id, fmt.Sprintf(`{"content": "v%d"}`, v))
					if !c.record(id, r) && errors.Is(r.err, syscall.ECONNREFUSED) {
						return
					}
				}
			}
		})
	}
	return c, func() *tally { wg.Wait(); return c }
}

// readLoad runs clients that read the posts acknowledged so far, waiting for their version,
// until stop is closed, a read is refused or d has passed; it returns the outcomes by kind.
func readLoad(queryURL string, acked *tally, clients int, d time.Duration, stop <-chan struct{}) func() map[string]int {
	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	kinds := map[string]int{}
	deadline := time.Now().Add(d)
	for range clients {
		wg.Go(func() {
			for n := 0; n < 1000 && time.Now().Before(deadline); n++ {
				select {
				case <-stop:
					return
				default:
				}
				var id string
				var v int64
				acked.mu.Lock()
				for id, v = range acked.acked {
					break
				}
				acked.mu.Unlock()
				if id == "" {
					continue
				}
				r := tryLoad("GET", fmt.Sprintf("%s/posts/%s?min_version=%d", queryURL, id, v), "")
				var kind string
				switch {
				case r.err == nil:
					kind = strconv.Itoa(r.Status)
				case errors.Is(r.err, syscall.ECONNREFUSED):
					kind = "refused"
				case r.unread():
					kind = "unread"
				default:
					kind = r.err.Error()
				}
				mu.Lock()
				kinds[kind]++
				mu.Unlock()
				if kind == "refused" {
					return
				}
			}
		})
	}
	return func() map[string]int { wg.Wait(); return kinds }
}

// lastLogs returns the last n log lines of p.
func lastLogs(p *process, n int) []map[string]any {
	logs := p.Logs()
	return logs[max(len(logs)-n, 0):]
}

// checkProcessed asserts that the process appended exactly the acknowledged commands, as its
// "event appended" log lines tell: no command was processed and then left unanswered, so the
// requests that failed at the stop were never read.
func checkProcessed(t *testing.T, p *process, acked map[string]int64) {
	t.Helper()
	appended := map[string]int64{}
	for _, l := range p.Logs() {
		if l["msg"] != "event appended" {
			continue
		}
		id, _ := l["post_id"].(string)
		v, _ := l["version"].(float64)
		appended[id] = max(appended[id], int64(v))
	}
	for id, v := range appended {
		if acked[id] != v {
			t.Errorf("post %s: version %d appended, %d acknowledged", id, v, acked[id])
		}
	}
	if len(appended) != len(acked) {
		t.Errorf("%d posts appended, %d acknowledged", len(appended), len(acked))
	}
}

// checkAcknowledged asserts that every acknowledged (id, version) reached the read model and
// that each post's history holds every version exactly once.
func checkAcknowledged(t *testing.T, queryURL string, acked map[string]int64) {
	t.Helper()
	for id, v := range acked {
		got := do(t, "GET", fmt.Sprintf("%s/posts/%s?min_version=%d", queryURL, id, v), nil).Must(t, http.StatusOK)
		if got.Num("version") < v {
			t.Fatalf("post %s at version %d, acknowledged %d", id, got.Num("version"), v)
		}
		history := harness.MustHistory(t, queryURL, id)
		for i, h := range history {
			if n, _ := h["version"].(float64); int64(n) != int64(i+1) {
				t.Fatalf("post %s history entry %d has version %v, want %d (gap or duplicate): %v", id, i, h["version"], i+1, history)
			}
		}
		if int64(len(history)) < got.Num("version") {
			t.Fatalf("post %s at version %d has %d history entries", id, got.Num("version"), len(history))
		}
	}
}

// TestShutdownUnderLoad sends SIGTERM to the command process, then to the query process, while
// clients send commands and reads: each exits 0 within the shutdown timeout, every request is
// answered or refused, and after a restart every acknowledged command is in the read model,
// each version once.
func TestShutdownUnderLoad(t *testing.T) {
	t.Parallel()
	const (
		timeout = 10 * time.Second
		clients = 16
	)
	redis := startPrivateRedis(t)
	commandEnv := map[string]string{
		"POSTS_EVENT_STORE": "mysql", "POSTS_MYSQL_DSN": mysqlDatabase(t),
		"POSTS_BUS": "redis", "POSTS_REDIS_URL": redis.URL(), "POSTS_SHUTDOWN_TIMEOUT": timeout.String(),
	}
	queryEnv := map[string]string{
		"POSTS_READ_MODEL": "mongo", "POSTS_MONGO_URI": mongoDatabase(t),
		"POSTS_BUS": "redis", "POSTS_REDIS_URL": redis.URL(), "POSTS_SHUTDOWN_TIMEOUT": timeout.String(),
		"POSTS_READ_WAIT": "5s",
	}
	query := start(t, queryEnv, "serve", "query")
	command := start(t, commandEnv, "serve", "command")

	commands, waitCommands := commandLoad(command.CommandURL, clients, 600, 20*time.Second)
	eventually(t, 20*time.Second, "100 commands acknowledged", func() bool { return commands.acknowledged() >= 100 })
	stopReads := make(chan struct{})
	waitReads := readLoad(query.QueryURL, commands, 4, 40*time.Second, stopReads)
	eventually(t, 20*time.Second, "200 commands acknowledged", func() bool { return commands.acknowledged() >= 200 })
	code, commandTook := command.stop(t, syscall.SIGTERM, 2*timeout)
	if code != 0 || commandTook >= timeout {
		t.Fatalf("command process: exit code %d (%v) after %v, want 0 within %v; last logs %v", code, command.Cmd().ProcessState, commandTook, timeout, lastLogs(command, 8))
	}
	waitCommands()
	code, queryTook := query.stop(t, syscall.SIGTERM, 2*timeout)
	if code != 0 || queryTook >= timeout {
		t.Fatalf("query process: exit code %d (%v) after %v, want 0 within %v; last logs %v", code, query.Cmd().ProcessState, queryTook, timeout, lastLogs(query, 8))
	}
	close(stopReads)
	reads := waitReads()
	t.Logf("exit 0 in %v (command process) and %v (query process)", commandTook, queryTook)
	checkOutcomes(t, commands, reads, clients)

	checkProcessed(t, command, commands.acked)
	query = start(t, queryEnv, "serve", "query")
	start(t, commandEnv, "serve", "command")
	checkAcknowledged(t, query.QueryURL, commands.acked)
}

// checkOutcomes fails the test for any command answered neither 2xx nor refused (beyond one
// closed unread per client, a request that raced the server closing an idle connection) and
// any read that ended otherwise than 200, 503, refused or closed unread.
func checkOutcomes(t *testing.T, commands *tally, reads map[string]int, clients int) {
	t.Helper()
	t.Logf("commands: %d acknowledged (%d posts), %d refused after the stop, %d closed unread, other %v",
		commands.ok, len(commands.acked), commands.refused, commands.unread, commands.other)
	t.Logf("reads by outcome: %v", reads)
	if len(commands.other) > 0 || commands.unread > clients {
		t.Errorf("commands neither answered 2xx nor refused: %v; %d closed unread, want at most one per client",
			commands.other, commands.unread)
	}
	for kind, n := range reads {
		if kind != "200" && kind != "refused" && kind != "503" && kind != "unread" {
			t.Errorf("%d reads ended with %s", n, kind)
		}
	}
}

// TestShutdownUnderLoadOneProcess is TestShutdownUnderLoad for `serve`, both servers in one
// process over MySQL, Redis and MongoDB.
func TestShutdownUnderLoadOneProcess(t *testing.T) {
	t.Parallel()
	const (
		timeout = 10 * time.Second
		clients = 16
	)
	env := map[string]string{
		"POSTS_EVENT_STORE": "mysql", "POSTS_MYSQL_DSN": mysqlDatabase(t),
		"POSTS_BUS": "redis", "POSTS_REDIS_URL": startPrivateRedis(t).URL(),
		"POSTS_READ_MODEL": "mongo", "POSTS_MONGO_URI": mongoDatabase(t),
		"POSTS_SHUTDOWN_TIMEOUT": timeout.String(), "POSTS_READ_WAIT": "5s",
	}
	p := start(t, env)

	commands, waitCommands := commandLoad(p.CommandURL, clients, 600, 20*time.Second)
	eventually(t, 20*time.Second, "100 commands acknowledged", func() bool { return commands.acknowledged() >= 100 })
	stopReads := make(chan struct{})
	waitReads := readLoad(p.QueryURL, commands, 4, 40*time.Second, stopReads)
	eventually(t, 20*time.Second, "200 commands acknowledged", func() bool { return commands.acknowledged() >= 200 })
	code, took := p.stop(t, syscall.SIGTERM, 2*timeout)
	if code != 0 || took >= timeout {
		t.Fatalf("exit code %d (%v) after %v, want 0 within %v; last logs %v", code, p.Cmd().ProcessState, took, timeout, lastLogs(p, 8))
	}
	waitCommands()
	close(stopReads)
	reads := waitReads()
	t.Logf("exit 0 in %v", took)
	checkOutcomes(t, commands, reads, clients)

	checkProcessed(t, p, commands.acked)
	checkAcknowledged(t, start(t, env).QueryURL, commands.acked)
}
