package bootstrap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/fx"

	"hexapost/adapters/memory"
	"hexapost/core/post"
	"hexapost/ports"
)

// TestDeadLetterMetrics assembles hexapost as `serve` does, in memory mode, with a read model
// that refuses one post, and checks the retries and dead letters that /metrics reports for it
// and for a message that cannot be decoded.
func TestDeadLetterMetrics(t *testing.T) {
	t.Parallel()
	const doomed = "doomed by the read model"
	var bus *memory.Bus
	logs := startApp(t, map[string]string{"POSTS_MAX_ATTEMPTS": "3", "POSTS_RETRY_BACKOFF": "20ms"},
		fx.Populate(&bus), fx.Decorate(func(v ports.ViewWriter) ports.ViewWriter {
			return refusingViews{ViewWriter: v, title: doomed}
		}))
	commandURL, queryURL := logs.url("command"), logs.url("query")
	if commandURL == "" || queryURL == "" {
		t.Fatalf("servers logged no URL: command %q, query %q", commandURL, queryURL)
	}
	before := scrape(t, commandURL) // it serves the metrics of both servers

	res, err := http.Post(commandURL+"/posts", "application/json",
		strings.NewReader(`{"title":"`+doomed+`","content":"x","author_name":"y"}`))
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("create: status %d, want 201", res.StatusCode)
	}
	waitDeadLetters(t, bus, 1)
	if err := bus.PublishRaw(t.Context(), []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	waitDeadLetters(t, bus, 2)
	var after metricFamilies
	deadline := time.Now().Add(5 * time.Second)
	for {
		after = scrape(t, commandURL)
		if after.delta(before, "hexapost_dead_letters_total", "reason", "undecodable") >= 1 &&
			after.delta(before, "hexapost_dead_letters_total", "reason", "attempts_exhausted") >= 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond) // polling the counters, bounded by the deadline
	}

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

// waitDeadLetters waits until the bus holds n dead letters.
func waitDeadLetters(t *testing.T, bus *memory.Bus, n int) {
	t.Helper()
	waitUntil(t, fmt.Sprint(n, " dead letters"), func() bool {
		got, err := bus.List(t.Context())
		return err == nil && len(got) == n
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

// metricFamilies is one scrape of /metrics: each series' value (a histogram's count), keyed by
// its name and labels as the text format writes them.
type metricFamilies map[string]float64

func scrape(t *testing.T, baseURL string) metricFamilies {
	t.Helper()
	res, err := http.Get(baseURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	var body bytes.Buffer
	if _, err := body.ReadFrom(res.Body); err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(&body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	out := metricFamilies{}
	for name, fam := range fams {
		for _, m := range fam.GetMetric() {
			key := name
			for _, l := range m.GetLabel() {
				key += " " + l.GetName() + "=" + l.GetValue()
			}
			switch {
			case m.GetCounter() != nil:
				out[key] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[key] = m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				out[key] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

func seriesKey(name string, labels []string) string {
	for i := 0; i+1 < len(labels); i += 2 {
		name += " " + labels[i] + "=" + labels[i+1]
	}
	return name
}

// count is a histogram's number of observations; NaN, which equals nothing, when it is missing.
func (f metricFamilies) count(name string, labels ...string) float64 {
	v, ok := f[seriesKey(name, labels)]
	if !ok {
		return math.NaN()
	}
	return v
}

// delta is how much a counter rose since an earlier scrape, where it may not have existed yet;
// NaN when it does not exist now.
func (f metricFamilies) delta(earlier metricFamilies, name string, labels ...string) float64 {
	now, ok := f[seriesKey(name, labels)]
	if !ok {
		return math.NaN()
	}
	return now - earlier[seriesKey(name, labels)]
}
