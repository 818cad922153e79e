package bootstrap

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/fx"
)

// lockedBuffer is a log destination safe for the app's goroutines and the test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// url returns the url the named server logged that it listens on.
func (b *lockedBuffer) url(server string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	sc := bufio.NewScanner(bytes.NewReader(b.buf.Bytes()))
	for sc.Scan() {
		var line struct{ Server, URL string }
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Server == server && line.URL != "" {
			return line.URL
		}
	}
	return ""
}

// startApp starts the whole process (both roles, memory backends unless env says otherwise)
// on free ports, with the extra options (fx.Decorate, fx.Populate) applied, stops it when the
// test ends, and returns its log.
func startApp(t *testing.T, env map[string]string, extra ...fx.Option) *lockedBuffer {
	t.Helper()
	environ := []string{"POSTS_COMMAND_ADDR=127.0.0.1:0", "POSTS_QUERY_ADDR=127.0.0.1:0"}
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	cfg, err := loadConfig(environ)
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	opt, err := options(cfg, roles{Command: true, Query: true}, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	app := fx.New(append([]fx.Option{opt}, extra...)...)
	if err := app.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := app.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return logs
}

// startTraced starts the whole process with its tracer provider replaced by one that records
// into exp, and returns the command server's URL.
func startTraced(t *testing.T, env map[string]string, exp *tracetest.InMemoryExporter) string {
	t.Helper()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	return startApp(t, env, fx.Decorate(func(trace.TracerProvider) trace.TracerProvider { return tp })).url("command")
}

// TestTracingFollowsOneChange: a command request that carries a traceparent gives one trace
// with the request, the load and append, the relay's publish and the projection, each the
// child of the one before.
func TestTracingFollowsOneChange(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	commandURL := startTraced(t, nil, exp)
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"

	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, commandURL+"/posts",
		strings.NewReader(`{"title":"t","content":"c","author_name":"a"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("POST /posts = %d, want 201", res.StatusCode)
	}

	wantChain := []string{"POST /posts", "append", "publish", "project"}
	var byName map[string]tracetest.SpanStub
	deadline := time.Now().Add(10 * time.Second)
	for {
		byName = map[string]tracetest.SpanStub{}
		for _, s := range exp.GetSpans() {
			if s.SpanContext.TraceID().String() == traceID {
				byName[s.Name] = s
			}
		}
		if len(byName) >= len(wantChain) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond) // polling the exporter, bounded by the deadline
	}
	for i, name := range wantChain {
		s, ok := byName[name]
		if !ok {
			t.Fatalf("no %q span in trace %s; spans %v", name, traceID, names(byName))
		}
		if i == 0 {
			if got := s.Parent.SpanID().String(); got != "00f067aa0ba902b7" {
				t.Errorf("request span's parent = %s, want the caller's 00f067aa0ba902b7", got)
			}
			continue
		}
		if parent := byName[wantChain[i-1]]; s.Parent.SpanID() != parent.SpanContext.SpanID() {
			t.Errorf("%q span's parent = %s, want the %q span %s", name, s.Parent.SpanID(),
				wantChain[i-1], parent.SpanContext.SpanID())
		}
	}
}

func names(m map[string]tracetest.SpanStub) []string {
	out := make([]string, 0, len(m))
	for n := range m {
		out = append(out, n)
	}
	return out
}

// TestTracingOnOnlyWithAnEndpoint: the process's tracer provider makes spans that record only
// when an OTLP endpoint is set and OTEL_SDK_DISABLED is not true, as OpenTelemetry defines it.
func TestTracingOnOnlyWithAnEndpoint(t *testing.T) {
	t.Parallel()
	const endpoint = "http://127.0.0.1:1"
	tests := []struct {
		name          string
		giveEnv       map[string]string
		wantRecording bool
	}{
		{"no endpoint", nil, false},
		{"base endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}, true},
		{"traces endpoint, http/protobuf", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": endpoint + "/v1/traces",
			"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, true},
		{"traces protocol wins", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
			"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}, true},
		{"SDK disabled", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_SDK_DISABLED": "true"}, false},
		{"SDK disabled, any case", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": endpoint,
			"OTEL_SDK_DISABLED": "TRUE"}, false},
		{"SDK disabled, unsupported protocol unused", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
			"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, false},
		{"SDK not disabled", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_SDK_DISABLED": "false"}, true},
		{"SDK disabled by no true value", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
			"OTEL_SDK_DISABLED": "yes"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tp, err := tracerProvider(t, tt.giveEnv)
			if err != nil {
				t.Fatal(err)
			}
			_, span := tp.Tracer("test").Start(t.Context(), "x")
			if span.IsRecording() != tt.wantRecording {
				t.Errorf("span recording = %v, want %v", span.IsRecording(), tt.wantRecording)
			}
		})
	}
}

// TestTracingProtocolsRefused: an OTLP protocol the exporter does not speak stops the start-up
// with an error that names the variable and the protocol it does speak; one that OpenTelemetry
// does not name is a configuration error.
func TestTracingProtocolsRefused(t *testing.T) {
	t.Parallel()
	const endpoint = "http://127.0.0.1:1"
	tests := []struct {
		name    string
		giveEnv map[string]string
		wantErr string
	}{
		{"grpc", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
			"OTEL_EXPORTER_OTLP_PROTOCOL=grpc is not supported: hexapost sends spans over OTLP/HTTP with protobuf only"},
		{"http/json", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
			"OTEL_EXPORTER_OTLP_PROTOCOL=http/json is not supported"},
		{"traces protocol grpc", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": endpoint,
			"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=grpc is not supported"},
		{"unknown protocol", map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http"},
			`OTEL_EXPORTER_OTLP_PROTOCOL="http": must be one of grpc, http/protobuf, http/json`},
		{"unknown traces protocol", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "udp"},
			`OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="udp": must be one of grpc, http/protobuf, http/json`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := tracerProvider(t, tt.giveEnv)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one with %q", err, tt.wantErr)
			}
		})
	}
}

// tracerProvider assembles the whole process from env, as Main does, and returns its tracer
// provider or the error that stops the start-up.
func tracerProvider(t *testing.T, env map[string]string) (trace.TracerProvider, error) {
	t.Helper()
	var environ []string
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	cfg, err := loadConfig(environ)
	if err != nil {
		return nil, err
	}
	opt, err := options(cfg, roles{Command: true, Query: true}, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	var tp trace.TracerProvider
	if err := fx.New(opt, fx.Populate(&tp)).Err(); err != nil {
		return nil, err
	}
	return tp, nil
}

// TestTracingWarnsOfAnSDKDisabledThatIsNoBoolean: a value of OTEL_SDK_DISABLED other than true
// or false leaves tracing on, and the log says so, as OpenTelemetry asks.
func TestTracingWarnsOfAnSDKDisabledThatIsNoBoolean(t *testing.T) {
	t.Parallel()
	cfg, err := loadConfig([]string{"OTEL_SDK_DISABLED=yes"})
	if err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	opt, err := options(cfg, roles{Command: true, Query: true}, slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := fx.New(opt, fx.Populate(new(trace.TracerProvider))).Err(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), `"level":"WARN","msg":"OTEL_SDK_DISABLED is neither true nor false; taken as false`) ||
		!strings.Contains(logs.String(), `"OTEL_SDK_DISABLED":"yes"`) {
		t.Fatalf("no warning naming OTEL_SDK_DISABLED=yes in the log:\n%s", logs.String())
	}
}
