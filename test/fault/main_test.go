// Package fault runs hexapost's fault suite (issue 6): scripted scenarios over real hexapost
// processes and real backends on loopback — processes and servers killed under load, poison
// messages, competing servers, floods of bad requests — each bounded in time and count and each
// ending with a consistency check of the read model against the event store. The suite prints
// one table with a row per scenario.
//
// The CI form runs in the normal `go test ./...`; HEXAPOST_FAULT_SCALE=full (make fault) runs
// the bigger form.
package fault_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"
)

// binary is the hexapost executable built once for the package.
var binary string

func TestMain(m *testing.M) {
	flag.Parse()
	// The scenarios spend most of their time waiting on processes, servers and timeouts, not
	// on the CPU: run more of them at once than the default of GOMAXPROCS, unless told otherwise.
	parallelSet := false
	flag.Visit(func(f *flag.Flag) { parallelSet = parallelSet || f.Name == "test.parallel" })
	if !parallelSet {
		_ = flag.Set("test.parallel", "8")
	}
	dir, err := os.MkdirTemp("", "hexapost-fault-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "hexapost")
	build := exec.Command("go", "build", "-race", "-o", binary, ".")
	build.Dir = filepath.Join("..", "..")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build hexapost:", err)
		os.Exit(1)
	}
	code := m.Run()
	printTable(os.Stdout)
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// row is one line of the suite's table.
type row struct {
	Scenario            string
	Sent, Acked, Stored int
	Matching, Posts     int
	Lost, Duplicated    int
	Converged           time.Duration
}

var (
	rowsMu sync.Mutex
	rows   []row
)

func record(r row) {
	rowsMu.Lock()
	defer rowsMu.Unlock()
	rows = append(rows, r)
}

func printTable(w io.Writer) {
	rowsMu.Lock()
	defer rowsMu.Unlock()
	if len(rows) == 0 {
		return
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Scenario < rows[j].Scenario })
	fmt.Fprintf(w, "\nfault suite (%s scale)\n", scaleName())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tsent\tacknowledged\tevents stored\tviews matching\tlost\tduplicated\tconverged in\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d/%d\t%d\t%d\t%s\t\n", r.Scenario, r.Sent, r.Acked, r.Stored,
			r.Matching, r.Posts, r.Lost, r.Duplicated, r.Converged.Round(time.Millisecond))
	}
	_ = tw.Flush()
}

// process is a running hexapost.
type process struct {
	cmd        *exec.Cmd
	CommandURL string
	QueryURL   string
	exited     chan struct{}

	mu   sync.Mutex
	logs []string
}

// start runs hexapost with args and extra env on free loopback ports and waits until the servers
// it runs have logged that they listen.
func start(t testing.TB, env map[string]string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(binary, args...)
	// Reads with min_version wait long: the suite checks what the read model converges to under
	// faults on a shared machine, and polls with its own deadline.
	cmd.Env = append(os.Environ(),
		"POSTS_COMMAND_ADDR=127.0.0.1:0", "POSTS_QUERY_ADDR=127.0.0.1:0", "POSTS_LOG_FORMAT=json",
		"POSTS_LOG_LEVEL=info", "POSTS_READ_WAIT=5s")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	ready := make(chan struct{}, 2)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var line map[string]any
			_ = json.Unmarshal(sc.Bytes(), &line)
			p.mu.Lock()
			if len(p.logs) < 1000 { // bounded: a fault can make a process log a lot
				p.logs = append(p.logs, sc.Text())
			}
			switch line["server"] {
			case "command":
				if u, ok := line["url"].(string); ok && p.CommandURL == "" {
					p.CommandURL = u
					ready <- struct{}{}
				}
			case "query":
				if u, ok := line["url"].(string); ok && p.QueryURL == "" {
					p.QueryURL = u
					ready <- struct{}{}
				}
			}
			p.mu.Unlock()
		}
	}()
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.exited
	})
	want := 0
	if len(args) < 2 || args[1] == "command" {
		want++
	}
	if len(args) < 2 || args[1] == "query" {
		want++
	}
	timeout := time.After(30 * time.Second)
	for range want {
		select {
		case <-ready:
		case <-p.exited:
			t.Fatalf("hexapost %v exited before listening; logs:\n%s", args, p.Logs())
		case <-timeout:
			t.Fatalf("hexapost %v did not listen within 30s; logs:\n%s", args, p.Logs())
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p
}

// Logs returns the log lines kept so far.
func (p *process) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.logs, "\n")
}

// kill sends SIGKILL and waits for the process to exit.
func (p *process) kill(t testing.TB) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("hexapost did not exit within 10s of SIGKILL")
	}
}

// alive reports whether the process is still running.
func (p *process) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// response is an HTTP answer with its decoded JSON body.
type response struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    []byte
}

var client = &http.Client{Timeout: 30 * time.Second}

// send sends a request with a body (a string or []byte as it is, any other value as JSON) and
// returns the answer, or the transport error (expected while a process or server is killed).
func send(method, url string, body any, headers ...string) (response, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			return response{}, err
		}
		rd = bytes.NewReader(enc)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, url, rd)
	if err != nil {
		return response{}, err
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer func() { _ = res.Body.Close() }()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return response{}, err
	}
	r := response{Status: res.StatusCode, Header: res.Header, Raw: raw}
	_ = json.Unmarshal(raw, &r.Body)
	return r, nil
}

// do is send for requests that must reach the server.
func do(t testing.TB, method, url string, body any, headers ...string) response {
	t.Helper()
	r, err := send(method, url, body, headers...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return r
}

// must fails the test unless the response has the status.
func (r response) must(t testing.TB, status int) response {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d; body %s", r.Status, status, r.Raw)
	}
	return r
}

func (r response) str(key string) string {
	s, _ := r.Body[key].(string)
	return s
}

func (r response) num(key string) int64 {
	f, _ := r.Body[key].(float64)
	return int64(f)
}

func (r response) items() []map[string]any {
	raw, _ := r.Body["items"].([]any)
	out := make([]map[string]any, 0, len(raw))
	for _, it := range raw {
		m, _ := it.(map[string]any)
		out = append(out, m)
	}
	return out
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
}
