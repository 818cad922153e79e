package e2e_test

import (
	"encoding/json"
	"os/exec"
	"testing"

	"hexapost/bootstrap"
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
	var r bootstrap.BenchResult
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
	t.Logf("bench: %d commands at %.0f/s, p50 %.2f ms, p99 %.2f ms; visible p99 %.2f ms",
		r.Commands, r.PerSecond, r.Command.P50, r.Command.P99, r.Visibility.P99)
}
