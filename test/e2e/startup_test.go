package e2e_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStartupErrorIsJSON: with POSTS_LOG_FORMAT=json every line hexapost writes is JSON, the
// error that stops the start-up included — a taken port, an invalid configuration, an OTLP
// protocol the exporter does not speak — and it names the variable at fault.
func TestStartupErrorIsJSON(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = taken.Close() })
	tests := []struct {
		name    string
		giveEnv []string
		wantMsg string
		wantErr string
	}{
		{"port taken", []string{"POSTS_QUERY_ADDR=" + taken.Addr().String()},
			"hexapost: start", "query server cannot listen on POSTS_QUERY_ADDR=" + taken.Addr().String()},
		{"invalid setting", []string{"POSTS_READ_WAIT=soon"},
			"hexapost: configuration", `POSTS_READ_WAIT="soon": must be a positive duration`},
		{"unsupported OTLP protocol", []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL=grpc"},
			"hexapost", "OTEL_EXPORTER_OTLP_PROTOCOL=grpc is not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(binary)
			cmd.Env = append(cmd.Environ(), "POSTS_COMMAND_ADDR=127.0.0.1:0", "POSTS_QUERY_ADDR=127.0.0.1:0",
				"POSTS_LOG_FORMAT=json")
			cmd.Env = append(cmd.Env, tt.giveEnv...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			done := make(chan error, 1)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			go func() { done <- cmd.Wait() }()
			var exit *exec.ExitError
			select {
			case err := <-done:
				if !errors.As(err, &exit) || exit.ExitCode() != 1 {
					t.Fatalf("exit %v, want 1; stderr:\n%s", err, stderr.String())
				}
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				t.Fatalf("still running after 30s; stderr:\n%s", stderr.String())
			}
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			for _, line := range lines {
				if !json.Valid([]byte(line)) {
					t.Errorf("not a JSON line: %s", line)
				}
			}
			var last struct{ Level, Msg, Error string }
			if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil ||
				last.Level != "ERROR" || last.Msg != tt.wantMsg || !strings.Contains(last.Error, tt.wantErr) {
				t.Fatalf("last line %s; want level ERROR, msg %q, an error with %q", lines[len(lines)-1], tt.wantMsg, tt.wantErr)
			}
		})
	}
}

// TestTracingOffWhenSDKDisabled: OTEL_SDK_DISABLED=true keeps a process with an OTLP endpoint
// from sending a single span, where the same process without it sends the request's.
func TestTracingOffWhenSDKDisabled(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		giveEnv   map[string]string
		wantSpans bool
	}{
		{"enabled", map[string]string{}, true},
		{"disabled", map[string]string{"OTEL_SDK_DISABLED": "true"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			otlp := startOTLPReceiver(t)
			tt.giveEnv["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp.URL
			p := start(t, tt.giveEnv)
			do(t, "POST", p.CommandURL+"/posts",
				map[string]string{"title": "traced", "content": "body", "author_name": "ann"}).Must(t, 201)
			// A graceful stop flushes the spans the process holds.
			if code, _ := p.stop(t, syscall.SIGTERM, 15*time.Second); code != 0 {
				t.Fatalf("exit %d after SIGTERM", code)
			}
			if got := len(otlp.named("POST /posts")) > 0; got != tt.wantSpans {
				t.Fatalf("request span received %v, want %v", got, tt.wantSpans)
			}
			shown := false
			for _, l := range p.Logs() {
				if l["msg"] == "configuration" {
					shown = l["OTEL_SDK_DISABLED"] == strconv.FormatBool(!tt.wantSpans)
				}
			}
			if !shown {
				t.Errorf("no configuration line shows OTEL_SDK_DISABLED=%v", !tt.wantSpans)
			}
		})
	}
}
