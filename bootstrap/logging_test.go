package bootstrap

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net"
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
	startStop(t, cfg, log)

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

// TestMainFatalErrorFollowsLogFormat: the error that stops the start-up is a JSON line like
// every other with POSTS_LOG_FORMAT=json, also when the rest of the configuration is invalid,
// and the plain "hexapost: …" line it always was in text.
func TestMainFatalErrorFollowsLogFormat(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = taken.Close() })
	tests := []struct {
		name     string
		giveEnv  map[string]string
		wantJSON bool
		wantMsg  string
		wantErr  string
	}{
		{
			name:     "invalid configuration, json",
			giveEnv:  map[string]string{"POSTS_LOG_FORMAT": "json", "POSTS_BUS": "kafka"},
			wantJSON: true, wantMsg: "hexapost: configuration", wantErr: `POSTS_BUS="kafka": must be one of`,
		},
		{
			name:     "unknown variable, json",
			giveEnv:  map[string]string{"POSTS_LOG_FORMAT": " json ", "POSTS_EVENTSTORE": "mysql"},
			wantJSON: true, wantMsg: "hexapost: configuration", wantErr: "POSTS_EVENTSTORE is not a setting",
		},
		{
			name:    "invalid log format itself: text",
			giveEnv: map[string]string{"POSTS_LOG_FORMAT": "yaml"},
			wantMsg: "hexapost: configuration", wantErr: `POSTS_LOG_FORMAT="yaml": must be one of text, json`,
		},
		{
			name:    "invalid configuration, text",
			giveEnv: map[string]string{"POSTS_BUS": "kafka"},
			wantMsg: "hexapost: configuration", wantErr: `POSTS_BUS="kafka": must be one of`,
		},
		{
			name:     "assembly refused, json",
			giveEnv:  map[string]string{"POSTS_LOG_FORMAT": "json", "POSTS_EVENT_STORE": "mysql"},
			wantJSON: true, wantMsg: "hexapost", wantErr: "POSTS_EVENT_STORE=mysql needs POSTS_MYSQL_DSN",
		},
		{
			name: "port taken, json",
			giveEnv: map[string]string{"POSTS_LOG_FORMAT": "json",
				"POSTS_COMMAND_ADDR": taken.Addr().String(), "POSTS_QUERY_ADDR": "127.0.0.1:0"},
			wantJSON: true, wantMsg: "hexapost: start", wantErr: "command server cannot listen on POSTS_COMMAND_ADDR=",
		},
		{
			name: "port taken, text",
			giveEnv: map[string]string{
				"POSTS_COMMAND_ADDR": taken.Addr().String(), "POSTS_QUERY_ADDR": "127.0.0.1:0"},
			wantMsg: "hexapost: start", wantErr: "command server cannot listen on POSTS_COMMAND_ADDR=",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			if code := Main(nil, env(tt.giveEnv), &stdout, &stderr); code != 1 {
				t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr.String())
			}
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			last := lines[len(lines)-1]
			if !tt.wantJSON {
				if !strings.HasPrefix(last, tt.wantMsg+": ") || !strings.Contains(last, tt.wantErr) {
					t.Fatalf("last line %q, want %q followed by an error with %q", last, tt.wantMsg+": ", tt.wantErr)
				}
				return
			}
			for _, line := range lines {
				if !json.Valid([]byte(line)) {
					t.Errorf("line is not JSON: %s", line)
				}
			}
			var rec struct{ Level, Msg, Error string }
			if err := json.Unmarshal([]byte(last), &rec); err != nil {
				t.Fatalf("last line %q: %v", last, err)
			}
			if rec.Level != "ERROR" || rec.Msg != tt.wantMsg || !strings.Contains(rec.Error, tt.wantErr) {
				t.Fatalf("last line %s, want level ERROR, msg %q and an error with %q", last, tt.wantMsg, tt.wantErr)
			}
		})
	}
}
