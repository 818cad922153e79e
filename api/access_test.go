package api_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"hexapost/api"
)

// TestRequestIDs: a sane X-Request-Id of the client is kept, anything else replaced by a new
// one; the handler sees on the request the id the response returns.
func TestRequestIDs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		give     []string
		wantKept bool
	}{
		{name: "kept", give: []string{"abc-123"}, wantKept: true},
		{name: "visible ASCII of the longest length kept", give: []string{strings.Repeat("~!", 64)}, wantKept: true},
		{name: "absent"},
		{name: "empty", give: []string{""}},
		{name: "too long", give: []string{strings.Repeat("a", 129)}},
		{name: "with a space", give: []string{"abc 123"}},
		{name: "with a control character", give: []string{"abc\x01"}},
		{name: "not ASCII", give: []string{"abc-é"}},
		{name: "sent twice", give: []string{"one", "two"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var seen []string
			h := api.RequestIDs(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				seen = r.Header.Values(api.RequestIDHeader)
				w.WriteHeader(http.StatusTeapot)
			}))
			req := httptest.NewRequest(http.MethodGet, "/posts", nil)
			for _, v := range tt.give {
				req.Header.Add(api.RequestIDHeader, v)
			}
			rec := httptest.NewRecorder()

			h.ServeHTTP(rec, req)

			got := rec.Header().Values(api.RequestIDHeader)
			switch {
			case len(got) != 1 || len(seen) != 1 || got[0] != seen[0]:
				t.Fatalf("response ids %q, handler saw %q; want one id, the same", got, seen)
			case tt.wantKept && got[0] != tt.give[0]:
				t.Errorf("id %q, want the client's %q", got[0], tt.give[0])
			case !tt.wantKept && (len(got[0]) < 16 || strings.ContainsAny(got[0], " \x01é") || got[0] == "one"):
				t.Errorf("id %q, want a new random one", got[0])
			}
		})
	}
}

// TestRequestIDsDiffer: generated ids are not reused across requests.
func TestRequestIDsDiffer(t *testing.T) {
	t.Parallel()
	h := api.RequestIDs(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	seen := map[string]bool{}
	for range 100 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		seen[rec.Header().Get(api.RequestIDHeader)] = true
	}
	if len(seen) != 100 {
		t.Errorf("%d different ids for 100 requests, want 100", len(seen))
	}
}

// TestAccessLog: one line per request, naming the route pattern rather than the path, with the
// status, size and id of the answer.
func TestAccessLog(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&out, nil))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /posts/{id}", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte("not here"))
	})
	mux.HandleFunc("POST /posts", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("{}")) })
	h := api.RequestIDs(api.AccessLog(log, "query", mux))

	for _, r := range []*http.Request{
		httptest.NewRequest(http.MethodGet, "/posts/0193c0de-0000-7000-8000-000000000001", nil),
		httptest.NewRequest(http.MethodPost, "/posts", nil),
		httptest.NewRequest("BREW", "/nowhere", nil),
	} {
		r.Header.Set(api.RequestIDHeader, "req-"+r.Method)
		h.ServeHTTP(httptest.NewRecorder(), r)
	}

	want := []map[string]any{
		{"level": "INFO", "msg": "request", "server": "query", "method": "GET", "route": "/posts/{id}",
			"status": 404.0, "bytes": 8.0, "request_id": "req-GET"},
		{"level": "INFO", "msg": "request", "server": "query", "method": "POST", "route": "/posts",
			"status": 200.0, "bytes": 2.0, "request_id": "req-POST"},
		{"level": "INFO", "msg": "request", "server": "query", "method": "other", "route": "unmatched",
			"status": 404.0, "bytes": 19.0, "request_id": "req-BREW"},
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), out.String())
	}
	for i, line := range lines {
		var got map[string]any
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if d, ok := got["duration"].(float64); !ok || d <= 0 {
			t.Errorf("line %d: duration %v, want a positive number", i, got["duration"])
		}
		delete(got, "time")
		delete(got, "duration")
		if !reflect.DeepEqual(got, want[i]) {
			t.Errorf("line %d:\n got %v\nwant %v", i, got, want[i])
		}
	}
}
