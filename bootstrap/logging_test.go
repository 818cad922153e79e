package bootstrap

import (
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"testing"
)

// TestDebugLogHasNoFxEvents: at debug level a start and a stop log hexapost's own lines, not
// one line per constructor and hook of the dependency-injection container.
func TestDebugLogHasNoFxEvents(t *testing.T) {
	t.Parallel()
	cfg, err := loadConfig(env(map[string]string{
		"POSTS_COMMAND_ADDR": "127.0.0.1:0", "POSTS_QUERY_ADDR": "127.0.0.1:0",
		"POSTS_LOG_LEVEL": "debug", "POSTS_LOG_FORMAT": "json",
	}))
	if err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	log := newLogger(cfg, &logs)
	if !log.Enabled(t.Context(), slog.LevelDebug) {
		t.Fatal("the logger does not log at debug level")
	}
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

	fxEvents := []string{"provided", "supplied", "decorated", "invoked", "run", "started",
		"OnStart hook executing", "OnStart hook executed", "OnStop hook executing", "OnStop hook executed",
		"initialized custom fxevent.Logger", "running"}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	for _, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		msg, _ := rec["msg"].(string)
		_, hasConstructor := rec["constructor"]
		_, hasCallee := rec["callee"]
		if slices.Contains(fxEvents, msg) || hasConstructor || hasCallee {
			t.Errorf("fx event logged: %s", line)
		}
	}
	if !strings.Contains(logs.String(), `"msg":"relay started"`) {
		t.Fatalf("the log lacks hexapost's own lines:\n%s", logs.String())
	}
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
