package bootstrap

import (
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"testing"
)

// messages returns the msg of every JSON log line, in order.
func (b *lockedBuffer) messages(t *testing.T) []string {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for line := range strings.SplitSeq(strings.TrimSpace(b.buf.String()), "\n") {
		var l struct{ Msg string }
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, l.Msg)
	}
	return out
}

// TestStopOrder: at stop both servers stop taking requests first, together, then the relay
// stops, and the projector last, so that what the last commands appended can still be
// published and applied by the process that acknowledged them.
func TestStopOrder(t *testing.T) {
	t.Parallel()
	cfg, err := loadConfig(env(map[string]string{
		"POSTS_COMMAND_ADDR": "127.0.0.1:0", "POSTS_QUERY_ADDR": "127.0.0.1:0",
	}))
	if err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	startStop(t, cfg, slog.New(slog.NewJSONHandler(&logs, nil)))

	var got []string
	for _, m := range logs.messages(t) {
		if strings.HasSuffix(m, " stopping") || strings.HasSuffix(m, " stopped") {
			got = append(got, m)
		}
	}
	logged := slices.Clone(got)
	slices.Sort(got[:min(2, len(got))]) // the servers stop together, in any order
	want := []string{"command server stopping", "query server stopping", "relay stopped", "projector stopped"}
	if !slices.Equal(got, want) {
		t.Errorf("stop order %q, want %q (the two servers in any order)", logged, want)
	}
}

// startStop starts the whole process of cfg, logging to log, and stops it.
func startStop(t *testing.T, cfg config, log *slog.Logger) {
	t.Helper()
	app, err := newApp(cfg, roles{Command: true, Query: true}, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := app.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := app.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
}
