package e2e_test

import (
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
	"hexapost/api/commandapi"
	"hexapost/api/servers"
	"hexapost/core/command"
)

// observed is what a command Observer heard.
type observed struct {
	Command string
	Outcome api.Outcome
}

type observations struct {
	mu  sync.Mutex
	got []observed
}

func (r *observations) observe(c string, o api.Outcome, took time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if took <= 0 {
		o = "non-positive duration"
	}
	r.got = append(r.got, observed{c, o})
}

func (r *observations) take() []observed {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := r.got
	r.got = nil
	return got
}

// TestCommandObserver checks that every command reaching the core is observed once, with the outcome
// its answer shows, and that a request refused before the core is not.
func TestCommandObserver(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	store := memory.NewEventStore(memory.EventStoreConfig{})
	svc := command.NewService(command.NewStreams(store), store, func() string { return uuid.Must(uuid.NewV7()).String() },
		time.Now, log, command.Config{})
	rec := &observations{}
	mux := http.NewServeMux()
	servers.Command(mux, commandapi.NewHandler(svc, log, rec.observe, commandapi.Config{}),
		api.Operations{Spec: func() *huma.OpenAPI { return nil }})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	const valid = `{"title":"t","content":"c","author_name":"a"}`
	deleted := do(t, "POST", srv.URL+"/posts", valid).Must(t, http.StatusCreated).Str("id")
	do(t, "DELETE", srv.URL+"/posts/"+deleted, nil).Must(t, http.StatusOK)
	live := do(t, "POST", srv.URL+"/posts", valid).Must(t, http.StatusCreated).Str("id")
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
			412, []observed{{"update", api.OutcomePreconditionFailed}}},
		{"update of a deleted post", "PATCH", "/posts/" + deleted, `{"title":"u"}`, nil,
			410, []observed{{"update", api.OutcomeGone}}},
		{"delete of a deleted post", "DELETE", "/posts/" + deleted, "", nil, 410, []observed{{"delete", api.OutcomeGone}}},
		{"delete", "DELETE", "/posts/{live}", "", nil, 200, []observed{{"delete", api.OutcomeOK}}},
	}
	for _, tt := range tests {
		path := strings.ReplaceAll(tt.givePath, "{live}", live)

		status := do(t, tt.giveMethod, srv.URL+path, tt.giveBody, tt.giveHeader...).Status

		if got := rec.take(); status != tt.wantStatus || !slices.Equal(got, tt.want) {
			t.Errorf("%s: status %d, observed %v; want %d, %v", tt.name, status, got, tt.wantStatus, tt.want)
		}
	}
}
