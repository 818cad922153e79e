// Package e2e tests hexapost from the outside: it builds the binary, runs it as a real process
// and talks to it over real HTTP on loopback.
package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the hexapost executable built once for the package.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hexapost-e2e-")
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
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// process is a running hexapost.
type process struct {
	cmd        *exec.Cmd
	CommandURL string
	QueryURL   string
	exited     chan struct{}

	mu   sync.Mutex
	logs []map[string]any
}

// start runs hexapost with args and extra env on free loopback ports and waits until the servers
// it runs have logged that they listen.
func start(t testing.TB, env map[string]string, args ...string) *process {
	t.Helper()
	return startBinary(t, binary, env, args...)
}

// startBinary is start with another build of hexapost.
func startBinary(t testing.TB, bin string, env map[string]string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	// Reads with min_version wait longer than the 2s default: these tests check what the read
	// model converges to, not how fast, and they share two cores with race-built processes and
	// every backend. A test that needs another wait sets it in env, which comes later and wins.
	cmd.Env = append(os.Environ(),
		"POSTS_COMMAND_ADDR=127.0.0.1:0", "POSTS_QUERY_ADDR=127.0.0.1:0", "POSTS_LOG_FORMAT=json",
		"POSTS_LOG_LEVEL=info", "POSTS_READ_WAIT=20s")
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
			if json.Unmarshal(sc.Bytes(), &line) != nil {
				line = map[string]any{"raw": sc.Text()} // e.g. a startup error
			}
			p.mu.Lock()
			p.logs = append(p.logs, line)
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
	if len(args) == 0 || len(args) == 1 || args[1] == "command" {
		want++
	}
	if len(args) == 0 || len(args) == 1 || args[1] == "query" {
		want++
	}
	timeout := time.After(10 * time.Second)
	for range want {
		select {
		case <-ready:
		case <-p.exited:
			t.Fatalf("hexapost exited before listening; logs: %v", p.Logs())
		case <-timeout:
			t.Fatalf("hexapost did not listen within 10s; logs: %v", p.Logs())
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p
}

// Logs returns the structured log lines so far.
func (p *process) Logs() []map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]map[string]any(nil), p.logs...)
}

// stop sends sig and returns the exit code and how long the process took to exit.
func (p *process) stop(t testing.TB, sig syscall.Signal, within time.Duration) (int, time.Duration) {
	t.Helper()
	begin := time.Now()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(within):
		t.Fatalf("hexapost did not exit within %s of %s", within, sig)
	}
	return p.cmd.ProcessState.ExitCode(), time.Since(begin)
}

// response is an HTTP answer with its decoded JSON body.
type response struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    []byte
}

var client = &http.Client{Timeout: 30 * time.Second}

// do sends a request with a JSON body (a string, sent as it is, or a value to encode).
func do(t testing.TB, method, url string, body any, headers ...string) response {
	t.Helper()
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
			t.Fatal(err)
		}
		rd = bytes.NewReader(enc)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer func() { _ = res.Body.Close() }()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := response{Status: res.StatusCode, Header: res.Header, Raw: raw}
	_ = json.Unmarshal(raw, &r.Body)
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
