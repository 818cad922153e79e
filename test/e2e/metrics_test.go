package e2e_test

import (
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
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

// TestMetricsCountOnce: a Prometheus that scrapes both servers of one process counts each
// event once. The command server serves the process's metrics, the query server's requests
// and projections included; the query server's /metrics is a 404 problem that names it.
func TestMetricsCountOnce(t *testing.T) {
	t.Parallel()
	p := start(t, nil)
	const creates = 3
	for i := range creates {
		id := do(t, "POST", p.CommandURL+"/posts", map[string]string{
			"title": fmt.Sprintf("post %d", i), "content": "counted once", "author_name": "metrics",
		}).Must(t, http.StatusCreated).Str("id")
		do(t, "GET", p.QueryURL+"/posts/"+id+"?min_version=1", nil).Must(t, http.StatusOK)
	}

	// What a Prometheus with both targets stores: the sum over the targets that answered.
	var total metricFamilies
	eventually(t, 5*time.Second, "the lag of every create to be observed", func() bool {
		total = scrape(t, p.CommandURL)
		return total.count("hexapost_projection_lag_seconds") >= creates
	})
	elsewhere := do(t, "GET", p.QueryURL+"/metrics", nil).Must(t, http.StatusNotFound)

	tests := []struct {
		name string
		got  float64
		want float64
	}{
		{"creates", total.value("hexapost_commands_total", "type", "create", "outcome", "ok"), creates},
		{"events appended", total.value("hexapost_events_appended_total"), creates},
		{"projections", total.count("hexapost_projection_lag_seconds"), creates},
		{"query server's reads", total.value("hexapost_http_requests_total",
			"server", "query", "method", "GET", "route", "GET /posts/{id}", "status", "200"), creates},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	if ct, detail := elsewhere.Header.Get("Content-Type"), elsewhere.Str("detail"); ct != "application/problem+json" ||
		!strings.Contains(detail, p.CommandURL+"/metrics") {
		t.Errorf("query server's /metrics: %s %q, want a problem naming %s/metrics", ct, detail, p.CommandURL)
	}
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
