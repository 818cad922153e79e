package e2e_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"hexapost/adapters/memory"
	"hexapost/adapters/wakeup"
	"hexapost/api"
	"hexapost/api/commandapi"
	"hexapost/api/queryapi"
	"hexapost/api/servers"
	"hexapost/core/command"
	"hexapost/core/post"
	"hexapost/core/projection"
	"hexapost/core/query"
	"hexapost/ports"
	"hexapost/test/harness"
)

// faultyViews fails every PutCurrent while broken, recording when each attempt came.
type faultyViews struct {
	ports.ViewWriter
	mu       sync.Mutex
	broken   bool
	attempts []time.Time
}

var errInjected = errors.New("injected fault: view store rejects writes")

func (v *faultyViews) PutCurrent(ctx context.Context, s post.State) (bool, error) {
	v.mu.Lock()
	broken := v.broken
	if broken {
		v.attempts = append(v.attempts, time.Now())
	}
	v.mu.Unlock()
	if broken {
		return false, errInjected
	}
	return v.ViewWriter.PutCurrent(ctx, s)
}

func (v *faultyViews) setBroken(b bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.broken = b
}

func (v *faultyViews) attemptTimes() []time.Time {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]time.Time(nil), v.attempts...)
}

// TestFailingProjectionIsDeadLetteredAndRedriven wires the real in-memory pieces — store, relay,
// bus, projector, both HTTP servers — with a view store that fails, and follows one change from
// its retries to the dead letters and, once the fault is gone, through a redrive to the view.
func TestFailingProjectionIsDeadLetteredAndRedriven(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	store := memory.NewEventStore(memory.EventStoreConfig{})
	bus := memory.NewBus(memory.BusConfig{MaxAttempts: 3, Backoff: 40 * time.Millisecond, Log: log})
	views := memory.NewViews()
	faulty := &faultyViews{ViewWriter: views, broken: true}

	signal := wakeup.New()
	projector := projection.NewProjector(signal.Writer(faulty), log)
	reader := query.NewReader(views, signal.Changes(query.Recheck{Every: 50 * time.Millisecond}), 2*time.Second)
	svc := command.NewService(command.NewStreams(store), store, newUUID, time.Now, log, command.Config{})
	relay := command.NewRelay(store, bus, log, command.RelayConfig{})

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { relay.Run(ctx) })
	wg.Go(func() { _ = bus.Subscribe(ctx, projector.ApplyWaiting) })
	t.Cleanup(func() { cancel(); wg.Wait() })

	ops := api.Operations{Spec: func() *huma.OpenAPI { return nil }}
	cmdMux, qryMux := http.NewServeMux(), http.NewServeMux()
	servers.Command(cmdMux, commandapi.NewHandler(svc, log, nil, commandapi.Config{}), ops)
	servers.Query(qryMux, queryapi.NewHandler(reader, views, bus, queryapi.Feed{}, log), ops, api.Admin{Token: harness.AdminToken})
	cmdSrv, qrySrv := httptest.NewServer(cmdMux), httptest.NewServer(qryMux)
	t.Cleanup(cmdSrv.Close)
	t.Cleanup(qrySrv.Close)

	id := do(t, "POST", cmdSrv.URL+"/posts", map[string]string{
		"title": "doomed", "content": "at first", "author_name": "dlq",
	}).Must(t, http.StatusCreated).Str("id")

	var dead []map[string]any
	eventually(t, 10*time.Second, "the change to be dead-lettered", func() bool {
		dead = do(t, "GET", qrySrv.URL+"/admin/dead-letters", nil, harness.AdminAuth()...).Must(t, http.StatusOK).Items()
		return len(dead) == 1
	})
	d := dead[0]
	if d["post_id"] != id || d["attempts"] != float64(3) || !contains(d["reason"], errInjected.Error()) {
		t.Fatalf("dead letter %v, want post %s after 3 attempts with the injected reason", d, id)
	}
	at := faulty.attemptTimes()
	if len(at) != 3 {
		t.Fatalf("%d attempts, want 3", len(at))
	}
	// Each retry waits at least its delay, 40 ms doubling (a timer never fires early; a loaded
	// machine only makes it later, so the gaps themselves are not compared).
	gap1, gap2 := at[1].Sub(at[0]), at[2].Sub(at[1])
	if gap1 < 40*time.Millisecond || gap2 < 80*time.Millisecond {
		t.Fatalf("retry delays %s then %s, want at least 40 ms then 80 ms", gap1, gap2)
	}
	t.Logf("attempts at +0, +%s, +%s", gap1, gap1+gap2)
	do(t, "GET", qrySrv.URL+"/posts/"+id, nil).Must(t, http.StatusNotFound)

	// A message that cannot be decoded is dead-lettered at once, and blocks nothing behind it.
	if err := bus.PublishRaw(ctx, []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the poison message to be dead-lettered", func() bool {
		return len(do(t, "GET", qrySrv.URL+"/admin/dead-letters", nil, harness.AdminAuth()...).Must(t, http.StatusOK).Items()) == 2
	})

	faulty.setBroken(false)
	do(t, "POST", qrySrv.URL+"/admin/dead-letters/"+d["id"].(string)+"/redrive", nil, harness.AdminAuth()...).Must(t, http.StatusAccepted)
	got := do(t, "GET", qrySrv.URL+"/posts/"+id+"?min_version=1", nil).Must(t, http.StatusOK)
	if got.Str("title") != "doomed" {
		t.Fatalf("after redrive: %s", got.Raw)
	}

	remaining := do(t, "GET", qrySrv.URL+"/admin/dead-letters", nil, harness.AdminAuth()...).Must(t, http.StatusOK).Items()
	if len(remaining) != 1 || remaining[0]["attempts"] != float64(1) {
		t.Fatalf("dead letters after redrive: %v, want only the poison message", remaining)
	}
	do(t, "DELETE", qrySrv.URL+"/admin/dead-letters/"+remaining[0]["id"].(string), nil, harness.AdminAuth()...).Must(t, http.StatusNoContent)
	if n := len(do(t, "GET", qrySrv.URL+"/admin/dead-letters", nil, harness.AdminAuth()...).Must(t, http.StatusOK).Items()); n != 0 {
		t.Fatalf("%d dead letters after discard, want 0", n)
	}
}

func contains(v any, sub string) bool {
	s, _ := v.(string)
	return sub != "" && strings.Contains(s, sub)
}

func newUUID() string { return uuid.Must(uuid.NewV7()).String() }
