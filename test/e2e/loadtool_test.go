package e2e_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"hexapost/api/tooling/load"
)

// TestBenchCommand runs `hexapost bench` against a running hexapost and checks its report
// against what the server itself counted: every command it says it sent was received, with
// the outcomes it reports, and every sampled version became visible.
func TestBenchCommand(t *testing.T) {
	t.Parallel()
	p := start(t, nil)
	before := scrape(t, p.CommandURL)
	const requests, posts = 300, 20
	cmd := exec.Command(binary, "bench", "-command", p.CommandURL, "-query", p.QueryURL,
		"-requests", "300", "-posts", "20", "-duration", "60s", "-concurrency", "8",
		"-mix", "create=2,update=6,delete=2", "-sample", "1", "-json", "-quiet")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("hexapost bench: %v\n%s", err, out)
	}
	var r load.Result
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("bench -json printed %q: %v", out, err)
	}
	after := scrape(t, p.CommandURL)
	served := func(kind, outcome string) int {
		return int(after.value("hexapost_commands_total", "type", kind, "outcome", outcome) -
			before.value("hexapost_commands_total", "type", kind, "outcome", outcome))
	}

	if r.Commands != requests || r.ByKind["create"]+r.ByKind["update"]+r.ByKind["delete"] != requests {
		t.Errorf("bench sent %d commands (%v), want %d", r.Commands, r.ByKind, requests)
	}
	if r.Errors != 0 || r.ByStatus["200"]+r.ByStatus["201"] != requests {
		t.Errorf("answers by status %v, want %d successes", r.ByStatus, requests)
	}
	for _, kind := range []string{"update", "delete"} {
		if got := served(kind, "ok"); got != r.ByKind[kind] {
			t.Errorf("server counted %d %ss, bench says it sent %d", got, kind, r.ByKind[kind])
		}
	}
	if got := served("create", "ok"); got != r.ByKind["create"]+posts {
		t.Errorf("server counted %d creates, bench says %d plus %d set-up posts", got, r.ByKind["create"], posts)
	}
	if r.Visibility.Count != requests || r.VisibilityFailed != 0 {
		t.Errorf("visibility measured for %d (%d failed), want all %d", r.Visibility.Count, r.VisibilityFailed, requests)
	}
	if r.PerSecond <= 0 || r.Command.P50 <= 0 || r.Command.P50 > r.Command.P99 || r.Command.P99 > r.Command.Max {
		t.Errorf("latency figures out of order: %+v at %.0f/s", r.Command, r.PerSecond)
	}
	if r.CatchUpFailed != "" || r.CaughtUp <= 0 || r.EndToEnd <= 0 || r.EndToEnd > r.PerSecond {
		t.Errorf("caught up after %.3f s (failed: %q), end to end %.0f/s against %.0f/s sent; want a catch-up and at most the command rate",
			r.CaughtUp, r.CatchUpFailed, r.EndToEnd, r.PerSecond)
	}
	t.Logf("bench: %d commands at %.0f/s, p50 %.2f ms, p99 %.2f ms; visible p99 %.2f ms; caught up %.3f s after, end to end %.0f/s",
		r.Commands, r.PerSecond, r.Command.P50, r.Command.P99, r.Visibility.P99, r.CaughtUp, r.EndToEnd)
}

// TestBenchCeilingServerRunsInAProcessOfItsOwn checks the bare server that `bench -ceiling`
// loads: started as `bench -serve-ceiling`, it prints its URL, answers a create as a JSON API
// does, and exits once its standard input closes, as it does when the bench that started it
// ends; and `bench -ceiling` measures it without errors.
func TestBenchCeilingServerRunsInAProcessOfItsOwn(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(binary, "bench", "-serve-ceiling", "127.0.0.1:0")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	url, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("no URL printed: %v", err)
	}
	status, err := postJSON(strings.TrimSpace(url)+"/posts", `{"title":"t","content":"c","author_name":"a"}`)
	if err != nil || status != http.StatusCreated {
		t.Fatalf("create: status %d, %v; want 201", status, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	_ = stdin.Close()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after its standard input closed: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still running 10 s after its standard input closed")
	}

	out, err := exec.Command(binary, "bench", "-ceiling", "-duration", "1s", "-concurrency", "2", "-json", "-quiet").Output()
	if err != nil {
		t.Fatalf("hexapost bench -ceiling: %v\n%s", err, out)
	}
	var r load.Result
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("bench -json printed %q: %v", out, err)
	}
	if r.Commands == 0 || r.Errors != 0 || r.ByStatus["201"] != r.Commands {
		t.Errorf("bench -ceiling: %d commands, answers %v; want only 201s", r.Commands, r.ByStatus)
	}
}
