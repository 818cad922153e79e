package e2e_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/fx"

	"hexapost/adapters/memory"
	"hexapost/bootstrap"
	"hexapost/core/post"
	"hexapost/ports"
	"hexapost/test/harness"
)

// TestMetrics runs hexapost in memory mode and checks that /metrics counts what was done to it:
// commands by outcome, their latency, the events appended and projected, the projection lag,
// the outbox draining and every backend up.
func TestMetrics(t *testing.T) {
	t.Parallel()
	p := start(t, nil)
	before := scrape(t, p.CommandURL)
	const creates = 10

	ids := make([]string, creates)
	for i := range ids {
		ids[i] = do(t, "POST", p.CommandURL+"/posts", map[string]string{
			"title": fmt.Sprintf("post %d", i), "content": "counted", "author_name": "metrics",
		}).Must(t, http.StatusCreated).Str("id")
	}
	do(t, "POST", p.CommandURL+"/posts", map[string]string{"title": "   ", "content": "x", "author_name": "y"}).
		Must(t, http.StatusUnprocessableEntity)
	for _, id := range ids {
		do(t, "GET", p.QueryURL+"/posts/"+id+"?min_version=1", nil).Must(t, http.StatusOK)
	}
	// The view is visible a moment before the projector's wrapper observes the lag.
	var after metricFamilies
	eventually(t, 5*time.Second, "the lag of every create to be observed", func() bool {
		after = scrape(t, p.CommandURL)
		return after.count("hexapost_projection_lag_seconds") >= before.count("hexapost_projection_lag_seconds")+creates
	})
	eventually(t, 5*time.Second, "the outbox to drain", func() bool {
		return scrape(t, p.CommandURL).value("hexapost_outbox_backlog") == 0
	})

	tests := []struct {
		name string
		got  float64
		want float64
	}{
		{"created ok", after.delta(before, "hexapost_commands_total", "type", "create", "outcome", "ok"), creates},
		{"created invalid", after.delta(before, "hexapost_commands_total", "type", "create", "outcome", "invalid"), 1},
		{"updated", after.delta(before, "hexapost_commands_total", "type", "update", "outcome", "ok"), 0},
		{"create latencies", after.count("hexapost_command_duration_seconds", "type", "create") -
			before.count("hexapost_command_duration_seconds", "type", "create"), creates + 1},
		{"events appended", after.delta(before, "hexapost_events_appended_total"), creates},
		{"projection lags", after.count("hexapost_projection_lag_seconds") -
			before.count("hexapost_projection_lag_seconds"), creates},
		{"projection retries", after.delta(before, "hexapost_projection_retries_total"), 0},
		{"publishes timed", min(after.count("hexapost_publish_duration_seconds"), 1), 1},
		{"outbox oldest age once drained", scrape(t, p.CommandURL).value("hexapost_outbox_oldest_age_seconds"), 0},
		{"event store up", after.value("hexapost_backend_up", "backend", "event_store"), 1},
		{"bus up", after.value("hexapost_backend_up", "backend", "bus"), 1},
		{"read model up", after.value("hexapost_backend_up", "backend", "read_model"), 1},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}

// TestDeadLetterMetrics assembles hexapost as `serve` does, in memory mode, with a read model
// that refuses one post, and checks the retries and dead letters that /metrics reports for it
// and for a message that cannot be decoded.
func TestDeadLetterMetrics(t *testing.T) {
	t.Parallel()
	const doomed = "doomed by the read model"
	urls := &listenURLs{}
	log := slog.New(slog.NewJSONHandler(urls, nil))
	cfg, err := bootstrap.LoadConfig(func(k string) string {
		return map[string]string{
			"POSTS_COMMAND_ADDR": "127.0.0.1:0", "POSTS_QUERY_ADDR": "127.0.0.1:0",
			"POSTS_MAX_ATTEMPTS": "3", "POSTS_RETRY_BACKOFF": "20ms", "POSTS_ADMIN_TOKEN": harness.AdminToken,
		}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	opts, err := bootstrap.Options(cfg, bootstrap.Roles{Command: true, Query: true}, log)
	if err != nil {
		t.Fatal(err)
	}
	var bus *memory.Bus
	app := fx.New(opts, fx.Populate(&bus), fx.Decorate(func(v ports.ViewWriter) ports.ViewWriter {
		return refusingViews{ViewWriter: v, title: doomed}
	}))
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
	commandURL, queryURL := urls.get("command"), urls.get("query")
	if commandURL == "" || queryURL == "" {
		t.Fatalf("servers logged no URL: command %q, query %q", commandURL, queryURL)
	}
	before := scrape(t, queryURL)

	do(t, "POST", commandURL+"/posts", map[string]string{"title": doomed, "content": "x", "author_name": "y"}).
		Must(t, http.StatusCreated)
	waitDeadLetters(t, queryURL, 1)
	if err := bus.PublishRaw(t.Context(), []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	waitDeadLetters(t, queryURL, 2)
	var after metricFamilies
	eventually(t, 5*time.Second, "both dead letters to be counted", func() bool {
		after = scrape(t, queryURL)
		return after.delta(before, "hexapost_dead_letters_total", "reason", "undecodable") >= 1 &&
			after.delta(before, "hexapost_dead_letters_total", "reason", "attempts_exhausted") >= 1
	})

	tests := []struct {
		name string
		got  float64
		want float64
	}{
		{"undecodable", after.delta(before, "hexapost_dead_letters_total", "reason", "undecodable"), 1},
		{"attempts exhausted", after.delta(before, "hexapost_dead_letters_total", "reason", "attempts_exhausted"), 1},
		{"abandoned", after.delta(before, "hexapost_dead_letters_total", "reason", "abandoned"), 0},
		{"retries", after.delta(before, "hexapost_projection_retries_total"), 2},
		{"failed projections", after.delta(before, "hexapost_projections_total", "outcome", "error"), 3},
		{"projection lags", after.count("hexapost_projection_lag_seconds") -
			before.count("hexapost_projection_lag_seconds"), 0},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}

// waitDeadLetters waits until the query server lists n dead letters.
func waitDeadLetters(t *testing.T, queryURL string, n int) {
	t.Helper()
	eventually(t, 10*time.Second, fmt.Sprintf("%d dead letters", n), func() bool {
		return len(do(t, "GET", queryURL+"/admin/dead-letters", nil, harness.AdminAuth()...).Must(t, http.StatusOK).Items()) == n
	})
}

// refusingViews fails every write of the current view of a post with the given title.
type refusingViews struct {
	ports.ViewWriter
	title string
}

var errRefused = errors.New("injected fault: the read model refuses this post")

func (v refusingViews) PutCurrent(ctx context.Context, s post.State) (bool, error) {
	if s.Title == v.title {
		return false, errRefused
	}
	return v.ViewWriter.PutCurrent(ctx, s)
}

// listenURLs is a log destination that remembers the URL each server logged it listens on.
type listenURLs struct {
	mu   sync.Mutex
	urls map[string]string
}

func (l *listenURLs) Write(b []byte) (int, error) {
	var line struct {
		Server string `json:"server"`
		URL    string `json:"url"`
	}
	if json.Unmarshal(b, &line) == nil && line.Server != "" && line.URL != "" {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.urls == nil {
			l.urls = map[string]string{}
		}
		l.urls[line.Server] = line.URL
	}
	return len(b), nil
}

// get returns the server's URL; the servers log it before the app's Start returns.
func (l *listenURLs) get(server string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.urls[server]
}

// metricFamilies is one scrape of /metrics.
type metricFamilies map[string]*dto.MetricFamily

// scrape reads /metrics and parses the Prometheus text format.
func scrape(t *testing.T, baseURL string) metricFamilies {
	t.Helper()
	res := do(t, "GET", baseURL+"/metrics", nil).Must(t, http.StatusOK)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(string(res.Raw)))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// metric returns the series of the family with the given label pairs; nil if there is none.
func (f metricFamilies) metric(name string, labels ...string) *dto.Metric {
	fam := f[name]
	if fam == nil {
		return nil
	}
	for _, m := range fam.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		if slices.IndexFunc(pairs(labels), func(p [2]string) bool { return have[p[0]] != p[1] }) < 0 {
			return m
		}
	}
	return nil
}

func pairs(labels []string) [][2]string {
	var out [][2]string
	for i := 0; i+1 < len(labels); i += 2 {
		out = append(out, [2]string{labels[i], labels[i+1]})
	}
	return out
}

// value is a counter's or gauge's value; -1 when the series is missing, so a missing series
// never passes for zero.
func (f metricFamilies) value(name string, labels ...string) float64 {
	m := f.metric(name, labels...)
	switch {
	case m == nil:
		return -1
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	}
	return -1
}

// count is a histogram's number of observations; -1 when the series is missing.
func (f metricFamilies) count(name string, labels ...string) float64 {
	m := f.metric(name, labels...)
	if m == nil || m.GetHistogram() == nil {
		return -1
	}
	return float64(m.GetHistogram().GetSampleCount())
}

// delta is how much a counter rose since an earlier scrape, where it may not have existed yet;
// NaN, which equals nothing, when it does not exist now.
func (f metricFamilies) delta(earlier metricFamilies, name string, labels ...string) float64 {
	now := f.value(name, labels...)
	if now < 0 {
		return math.NaN()
	}
	return now - max(earlier.value(name, labels...), 0)
}
