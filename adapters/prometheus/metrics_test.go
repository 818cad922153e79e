package prometheus_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"hexapost/adapters/prometheus"
	"hexapost/core/post"
	"hexapost/core/projection"
	"hexapost/ports"
)

type okStore struct{ ports.EventStore }

func (okStore) Append(context.Context, ports.Append) error { return nil }

type okPublisher struct{}

func (okPublisher) Publish(context.Context, []ports.Change) error { return nil }

type okStats struct{}

func (okStats) Backlog(context.Context) (ports.Backlog, error) { return ports.Backlog{Count: 2}, nil }

// TestMetricsCountWhatPassesThroughTheDecorators drives each decorator and the delivery
// observer and reads the counts back from the metrics page, as Prometheus does.
func TestMetricsCountWhatPassesThroughTheDecorators(t *testing.T) {
	t.Parallel()
	m, err := prometheus.New(prometheus.Config{CommandTypes: []string{"create"}, CommandOutcomes: []string{"ok", "invalid"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	changes := []ports.Change{{Event: post.Event{OccurredAt: time.Now()}}, {Event: post.Event{OccurredAt: time.Now()}}}
	if err := m.EventStore(okStore{}).Append(ctx, ports.Append{Changes: changes}); err != nil {
		t.Fatal(err)
	}
	if err := m.Publisher(okPublisher{}).Publish(ctx, changes); err != nil {
		t.Fatal(err)
	}
	apply := m.Projection(func(_ context.Context, c ports.Change, _ *ports.Change) error {
		if c.Event.PostID == "bad" {
			return errors.New("refused")
		}
		return nil
	})
	_ = apply(ctx, changes[0], nil)
	_ = apply(ctx, ports.Change{Event: post.Event{PostID: "bad"}}, nil)
	m.Retrying()
	m.DeadLettered(ports.CauseAttemptsExhausted)
	m.ObserveCommand("create", "ok", time.Millisecond)
	if err := m.RegisterBackends(map[string]func(context.Context) error{
		"bus": func(context.Context) error { return errors.New("down") },
	}); err != nil {
		t.Fatal(err)
	}
	if err := m.RegisterOutbox(okStats{}, nil); err != nil {
		t.Fatal(err)
	}
	_ = m.Ping("event_store", func(context.Context) error { return nil })(ctx)

	rec := httptest.NewRecorder()
	m.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	page := rec.Body.String()
	for _, want := range []string{
		"hexapost_events_appended_total 2",
		"hexapost_events_published_total 2",
		"hexapost_publish_duration_seconds_count 1",
		`hexapost_projections_total{outcome="ok"} 1`,
		`hexapost_projections_total{outcome="error"} 1`,
		"hexapost_projection_lag_seconds_count 1",
		"hexapost_projection_retries_total 1",
		`hexapost_dead_letters_total{reason="attempts_exhausted"} 1`,
		`hexapost_dead_letters_total{reason="undecodable"} 0`,
		`hexapost_commands_total{outcome="ok",type="create"} 1`,
		`hexapost_commands_total{outcome="invalid",type="create"} 0`,
		`hexapost_backend_up{backend="bus"} 0`,
		`hexapost_backend_up{backend="event_store"} 1`,
		"hexapost_outbox_backlog 2",
	} {
		if !strings.Contains(page, want+"\n") {
			t.Errorf("metrics page lacks %q", want)
		}
	}
}

func TestBuildInfo(t *testing.T) {
	t.Parallel()
	m, err := prometheus.New(prometheus.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.RegisterBuildInfo("v1.2.3", "abc123", "go1.27.3"); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	m.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	want := `hexapost_build_info{goversion="go1.27.3",revision="abc123",version="v1.2.3"} 1`
	if !strings.Contains(rec.Body.String(), want) {
		t.Fatalf("metrics page lacks %s:\n%s", want, rec.Body.String())
	}
}

// The reconcile metrics exist from the start, every cause at zero, and count what the
// reconciler tells.
func TestReconcileMetrics(t *testing.T) {
	t.Parallel()
	m, err := prometheus.New(prometheus.Config{})
	if err != nil {
		t.Fatal(err)
	}
	page := func() string {
		rec := httptest.NewRecorder()
		m.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		return rec.Body.String()
	}
	before := page()
	m.ReconcileEnabled(true)
	m.Drifted(projection.DriftViewBehind)
	m.Drifted(projection.DriftViewBehind)
	m.Drifted(projection.DriftHistoryMissing)
	m.Repaired()
	m.Repaired()
	m.Repaired()
	m.PassCompleted()
	after := page()

	tests := []struct {
		page, want string
	}{
		{before, "hexapost_reconcile_enabled 0"},
		{before, "hexapost_reconcile_passes_total 0"},
		{before, `hexapost_reconcile_drifted_posts_total{cause="view_missing"} 0`},
		{before, `hexapost_reconcile_drifted_posts_total{cause="view_behind"} 0`},
		{before, `hexapost_reconcile_drifted_posts_total{cause="history_missing"} 0`},
		{before, "hexapost_reconcile_repaired_posts_total 0"},
		{after, "hexapost_reconcile_enabled 1"},
		{after, "hexapost_reconcile_passes_total 1"},
		{after, `hexapost_reconcile_drifted_posts_total{cause="view_missing"} 0`},
		{after, `hexapost_reconcile_drifted_posts_total{cause="view_behind"} 2`},
		{after, `hexapost_reconcile_drifted_posts_total{cause="history_missing"} 1`},
		{after, "hexapost_reconcile_repaired_posts_total 3"},
	}
	for _, tt := range tests {
		if !strings.Contains(tt.page, tt.want+"\n") {
			t.Errorf("metrics page lacks %q", tt.want)
		}
	}
	_, rest, _ := strings.Cut(after, "\nhexapost_reconcile_last_pass_age_seconds ")
	line, _, _ := strings.Cut(rest, "\n")
	if age, err := strconv.ParseFloat(line, 64); err != nil || age < 0 || age > 60 {
		t.Errorf("age of the last pass %q, want the seconds since the pass just completed", line)
	}
}
