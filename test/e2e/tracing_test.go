package e2e_test

import (
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// span is what the test needs of an exported span.
type span struct {
	Service, Name, TraceID, SpanID, ParentID string
}

// otlpReceiver is an OTLP/HTTP trace receiver of the test's own: it keeps every span it is sent.
type otlpReceiver struct {
	URL string

	mu    sync.Mutex
	spans []span
}

func startOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	r := &otlpReceiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" {
			http.NotFound(w, req)
			return
		}
		body, err := io.ReadAll(req.Body)
		var msg coltracepb.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(body, &msg)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.keep(&msg)
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

func (r *otlpReceiver) keep(msg *coltracepb.ExportTraceServiceRequest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range msg.GetResourceSpans() {
		service := ""
		for _, a := range rs.GetResource().GetAttributes() {
			if a.GetKey() == "service.name" {
				service = a.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				r.spans = append(r.spans, span{
					Service: service, Name: s.GetName(), TraceID: hex.EncodeToString(s.GetTraceId()),
					SpanID: hex.EncodeToString(s.GetSpanId()), ParentID: hex.EncodeToString(s.GetParentSpanId()),
				})
			}
		}
	}
}

// named returns the spans received so far with the name.
func (r *otlpReceiver) named(name string) []span {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []span
	for _, s := range r.spans {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// trace returns the spans received so far of one trace.
func (r *otlpReceiver) trace(id string) []span {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []span
	for _, s := range r.spans {
		if s.TraceID == id {
			out = append(out, s)
		}
	}
	return out
}

// TestTracingAcrossProcesses: one created post is one trace — the command request, the append
// and the relay's publish in the command process, the projection in the query process — sent
// by both processes over OTLP/HTTP, carried between them by the MySQL store and a real bus.
func TestTracingAcrossProcesses(t *testing.T) {
	t.Parallel()
	for _, tt := range realBuses {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			otlp := startOTLPReceiver(t)
			env := tt.bus(t)
			env["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp.URL
			env["OTEL_BSP_SCHEDULE_DELAY"] = "50" // milliseconds: spans arrive while the test waits
			query := start(t, env, "serve", "query")
			env["POSTS_EVENT_STORE"], env["POSTS_MYSQL_DSN"] = "mysql", mysqlDatabase(t)
			command := start(t, env, "serve", "command")

			created := do(t, "POST", command.CommandURL+"/posts",
				map[string]string{"title": "traced", "content": "body", "author_name": "ann"}).Must(t, 201)
			do(t, "GET", query.QueryURL+"/posts/"+created.Str("id")+"?min_version=1", nil).Must(t, 200)

			var requests []span
			eventually(t, 10*time.Second, "the command request's span", func() bool {
				requests = otlp.named("POST /posts")
				return len(requests) > 0
			})
			if len(requests) != 1 || requests[0].Service != "hexapost-command" {
				t.Fatalf("request spans %+v, want one from hexapost-command", requests)
			}
			traceID := requests[0].TraceID
			want := map[string]string{
				"POST /posts": "hexapost-command", "append": "hexapost-command",
				"publish": "hexapost-command", "project": "hexapost-query",
			}
			var got map[string]string
			eventually(t, 10*time.Second, "request, append, publish and project spans in trace "+traceID, func() bool {
				got = map[string]string{}
				for _, s := range otlp.trace(traceID) {
					if _, ok := want[s.Name]; ok {
						got[s.Name] = s.Service
					}
				}
				return len(got) == len(want)
			})
			for name, service := range want {
				if got[name] != service {
					t.Errorf("span %q of trace %s came from %q, want %q", name, traceID, got[name], service)
				}
			}
			projections := otlp.named("project")
			if i := slices.IndexFunc(projections, func(s span) bool { return s.TraceID != traceID }); i >= 0 {
				t.Errorf("a projection outside the request's trace: %+v", projections[i])
			}
		})
	}
}
