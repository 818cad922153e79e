package command_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"hexapost/adapters/memory"
	"hexapost/api"
	apicommand "hexapost/api/command"
	"hexapost/api/servers"
	"hexapost/core/command"
)

// observed is what an Observer heard.
type observed struct {
	Command string
	Outcome api.Outcome
}

type recorder struct {
	mu  sync.Mutex
	got []observed
}

func (r *recorder) observe(c string, o api.Outcome, took time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if took <= 0 {
		o = "non-positive duration"
	}
	r.got = append(r.got, observed{c, o})
}

func (r *recorder) take() []observed {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := r.got
	r.got = nil
	return got
}

// TestObserver checks that every command reaching the core is observed once, with the outcome
// its answer shows, and that a request refused before the core is not.
func TestObserver(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	store := memory.NewEventStore(memory.EventStoreConfig{})
	svc := command.NewService(store, store, func() string { return uuid.Must(uuid.NewV7()).String() },
		time.Now, log, command.Config{})
	rec := &recorder{}
	mux := http.NewServeMux()
	servers.Command(mux, apicommand.NewHandler(svc, log, rec.observe),
		api.Operations{Spec: func() *huma.OpenAPI { return nil }})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	send := func(method, path, body string, headers ...string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = res.Body.Close() }()
		var out struct {
			ID string `json:"id"`
		}
		_ = json.NewDecoder(res.Body).Decode(&out)
		return res.StatusCode, out.ID
	}
	const valid = `{"title":"t","content":"c","author_name":"a"}`
	_, deleted := send("POST", "/posts", valid)
	send("DELETE", "/posts/"+deleted, "")
	_, live := send("POST", "/posts", valid)
	if deleted == "" || live == "" {
		t.Fatal("setup: no post created")
	}
	rec.take()

	tests := []struct {
		name       string
		giveMethod string
		givePath   string
		giveBody   string
		giveHeader []string
		wantStatus int
		want       []observed
	}{
		{"create", "POST", "/posts", valid, nil, 201, []observed{{"create", api.OutcomeOK}}},
		{"create breaking a rule", "POST", "/posts", `{"title":"  ","content":"c","author_name":"a"}`, nil,
			422, []observed{{"create", api.OutcomeInvalid}}},
		{"create with a malformed body", "POST", "/posts", `{"title":`, nil, 400, nil},
		{"update", "PATCH", "/posts/{live}", `{"title":"u"}`, nil, 200, []observed{{"update", api.OutcomeOK}}},
		{"update of an unknown post", "PATCH", "/posts/" + uuid.NewString(), `{"title":"u"}`, nil,
			404, []observed{{"update", api.OutcomeNotFound}}},
		{"update at another version", "PATCH", "/posts/{live}", `{"title":"v"}`, []string{"If-Match", `"99"`},
			409, []observed{{"update", api.OutcomeConflict}}},
		{"update of a deleted post", "PATCH", "/posts/" + deleted, `{"title":"u"}`, nil,
			410, []observed{{"update", api.OutcomeGone}}},
		{"delete of a deleted post", "DELETE", "/posts/" + deleted, "", nil, 410, []observed{{"delete", api.OutcomeGone}}},
		{"delete", "DELETE", "/posts/{live}", "", nil, 200, []observed{{"delete", api.OutcomeOK}}},
	}
	for _, tt := range tests {
		path := strings.ReplaceAll(tt.givePath, "{live}", live)

		status, _ := send(tt.giveMethod, path, tt.giveBody, tt.giveHeader...)

		if got := rec.take(); status != tt.wantStatus || !slices.Equal(got, tt.want) {
			t.Errorf("%s: status %d, observed %v; want %d, %v", tt.name, status, got, tt.wantStatus, tt.want)
		}
	}
}
