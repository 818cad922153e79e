package harness

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Options says how Start runs hexapost; the suites differ in how long they let reads and
// startup wait and in how much log they keep.
type Options struct {
	// Binary is the hexapost executable, usually from Build.
	Binary string
	// ReadWait is POSTS_READ_WAIT, how long a read with min_version waits for the read model.
	// A test that needs another wait sets it in env, which comes later and wins.
	ReadWait time.Duration
	// ListenWithin bounds the wait for the servers to log that they listen.
	ListenWithin time.Duration
	// MaxLogLines bounds the log lines kept (a fault can make a process log a lot); 0 keeps all.
	MaxLogLines int
}

// AdminToken is the admin token of the processes Start runs, unless env sets another.
const AdminToken = "test-admin-token"

// AdminAuth returns the header, as a name and a value, that opens their admin operations.
func AdminAuth() []string { return []string{"Authorization", "Bearer " + AdminToken} }

// Process is a running hexapost, killed when the test ends.
type Process struct {
	// CommandURL and QueryURL are the base URLs the servers logged, empty for a server the
	// process does not run.
	CommandURL string
	QueryURL   string

	cmd    *exec.Cmd
	exited chan struct{}

	mu   sync.Mutex
	logs []string
}

// Start runs hexapost with args and extra env on free loopback ports with JSON logs, and waits
// until the servers it runs have logged that they listen: both with no subcommand, the one
// named by "serve command" or "serve query".
func Start(t testing.TB, opts Options, env map[string]string, args ...string) *Process {
	t.Helper()
	cmd := exec.Command(opts.Binary, args...)
	cmd.Env = append(os.Environ(),
		"POSTS_COMMAND_ADDR=127.0.0.1:0", "POSTS_QUERY_ADDR=127.0.0.1:0", "POSTS_LOG_FORMAT=json",
		"POSTS_LOG_LEVEL=info", "POSTS_READ_WAIT="+opts.ReadWait.String(), "POSTS_ADMIN_TOKEN="+AdminToken)
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
	p := &Process{cmd: cmd, exited: make(chan struct{})}
	ready := make(chan struct{}, 2)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var line map[string]any
			// Only the lines of a server that has not told its URL yet are decoded here: under
			// a load, decoding every line would cost the machine what the load measures.
			if bytes.Contains(sc.Bytes(), []byte(`"server"`)) {
				_ = json.Unmarshal(sc.Bytes(), &line)
			}
			p.mu.Lock()
			if opts.MaxLogLines == 0 || len(p.logs) < opts.MaxLogLines {
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
	timeout := time.After(opts.ListenWithin)
	for range want {
		select {
		case <-ready:
		case <-p.exited:
			t.Fatalf("hexapost %v exited before listening; logs:\n%s", args, p.LogText())
		case <-timeout:
			t.Fatalf("hexapost %v did not listen within %s; logs:\n%s", args, opts.ListenWithin, p.LogText())
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p
}

// Cmd is the process's command, for what the harness does not cover (its pid, say).
func (p *Process) Cmd() *exec.Cmd { return p.cmd }

// Logs returns the log lines kept so far, each decoded from JSON; a line that is not JSON (a
// startup error, say) comes as {"raw": line}.
func (p *Process) Logs() []map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]map[string]any, 0, len(p.logs))
	for _, l := range p.logs {
		var line map[string]any
		if json.Unmarshal([]byte(l), &line) != nil {
			line = map[string]any{"raw": l}
		}
		out = append(out, line)
	}
	return out
}

// LogText returns the log lines kept so far as they were written, one a line.
func (p *Process) LogText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.logs, "\n")
}

// Stop sends sig and returns the exit code and how long the process took to exit; it fails the
// test if the process has not exited within the given time.
func (p *Process) Stop(t testing.TB, sig syscall.Signal, within time.Duration) (int, time.Duration) {
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

// Kill sends SIGKILL (a crash, not a polite stop) and waits up to 10s for the process to exit;
// it may already have.
func (p *Process) Kill(t testing.TB) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("hexapost did not exit within 10s of SIGKILL")
	}
}

// Exited is closed when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Alive reports whether the process is still running.
func (p *Process) Alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}
