package bootstrap

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"hexapost/adapters/prometheus"
	"hexapost/core/post"
	"hexapost/ports"
)

// droppingViews loses every write while drop is set, as a read model that a bus never told
// of a change.
type droppingViews struct {
	ports.ViewWriter
	drop    *atomic.Bool
	dropped *atomic.Int64
}

func (v droppingViews) PutCurrent(ctx context.Context, s post.State) (bool, error) {
	if v.drop.Load() {
		v.dropped.Add(1)
		return false, nil
	}
	return v.ViewWriter.PutCurrent(ctx, s)
}

func (v droppingViews) PutHistory(ctx context.Context, h ports.HistoryEntry) error {
	if v.drop.Load() {
		return nil
	}
	return v.ViewWriter.PutHistory(ctx, h)
}

// TestOneProcessReconcilesItsOwnStore: `hexapost` with the in-memory store repairs a change its
// read model never got, at once when a bus reports a loss, and counts it.
func TestOneProcessReconcilesItsOwnStore(t *testing.T) {
	t.Parallel()
	var (
		drop    atomic.Bool
		dropped atomic.Int64
		obs     *deliveryObserver
	)
	drop.Store(true)
	logs := startApp(t, map[string]string{"POSTS_RECONCILE_INTERVAL": "1h", "POSTS_RECONCILE_GRACE": "10ms"},
		fx.Populate(&obs), fx.Decorate(func(v ports.ViewWriter) ports.ViewWriter {
			return droppingViews{ViewWriter: v, drop: &drop, dropped: &dropped}
		}))
	commandURL, queryURL := logs.url("command"), logs.url("query")
	res, err := http.Post(commandURL+"/posts", "application/json",
		strings.NewReader(`{"title":"lost","content":"x","author_name":"y"}`))
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	loc := res.Header.Get("Location")
	id := loc[strings.LastIndex(loc, "/")+1:]
	waitUntil(t, "the projector to lose the change", func() bool { return dropped.Load() > 0 })
	drop.Store(false)

	obs.Lost(ports.LossTrimmed)

	waitUntil(t, "the post to be repaired", func() bool {
		res, err := http.Get(queryURL + "/posts/" + id)
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		return res.StatusCode == http.StatusOK
	})
	got := scrape(t, commandURL) // one process: its metrics are served by the command server
	for _, tt := range []struct {
		name string
		want float64
	}{
		{seriesKey("hexapost_bus_losses_total", []string{"cause", "trimmed"}), 1},
		{seriesKey("hexapost_reconcile_drifted_posts_total", []string{"cause", "view_missing"}), 1},
		{"hexapost_reconcile_repaired_posts_total", 1},
		{"hexapost_reconcile_enabled", 1},
	} {
		if got[tt.name] != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, got[tt.name], tt.want)
		}
	}
}

// A query server alone with the in-memory store cannot read the store: it runs, says so in
// one line and exports hexapost_reconcile_enabled 0.
func TestQueryServerWithoutAStoreSaysSo(t *testing.T) {
	t.Parallel()
	cfg, err := loadConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	logger := slog.New(slog.NewTextHandler(&log, nil))
	opt, err := storeAccessOption(cfg, roles{Query: true}, logger)
	if err != nil {
		t.Fatal(err)
	}
	var access storeAccess
	fx.New(opt, fx.NopLogger, fx.Populate(&access))
	m, err := prometheus.New(prometheus.Config{})
	if err != nil {
		t.Fatal(err)
	}
	lc := fxtest.NewLifecycle(t)

	runReconciler(lc, cfg, access, nil, nil, newDeliveryObserver(m), m, logger)

	lc.RequireStart().RequireStop()
	if n := strings.Count(log.String(), "\n"); n != 1 || !strings.Contains(log.String(), "will not be repaired") {
		t.Errorf("logged %d lines, want one saying that drift will not be repaired:\n%s", n, log.String())
	}
	rec := httptest.NewRecorder()
	m.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if !strings.Contains(rec.Body.String(), "hexapost_reconcile_enabled 0\n") {
		t.Errorf("metrics page lacks hexapost_reconcile_enabled 0")
	}
}

// waitUntil polls cond until it holds, failing the test after 10 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling, bounded by the deadline
	}
}

func TestVerifySaysWhatItNeeds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		giveArgs   []string
		wantCode   int
		wantStderr string
	}{
		{[]string{"verify"}, 1, "verify needs POSTS_EVENT_STORE=mysql and POSTS_READ_MODEL=mongo"},
		{[]string{"verify", "--repair"}, 1, "verify needs POSTS_EVENT_STORE=mysql and POSTS_READ_MODEL=mongo"},
		{[]string{"verify", "--fix"}, 2, `unknown command "verify --fix"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.giveArgs, " "), func(t *testing.T) {
			t.Parallel()
			var stdout, stderr strings.Builder
			code := Main(tt.giveArgs, nil, &stdout, &stderr)
			if code != tt.wantCode || !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Fatalf("exit %d, stderr %q; want %d, %q", code, stderr.String(), tt.wantCode, tt.wantStderr)
			}
		})
	}
}
