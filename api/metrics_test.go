package api_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"hexapost/api"
)

// TestHTTPMetricsInFlight shows the gauge an operator watches while a server drains at
// shutdown: it counts a request from its start to its answer.
func TestHTTPMetricsInFlight(t *testing.T) {
	t.Parallel()
	reg, m := newHTTPMetrics(t)
	entered, release := make(chan struct{}), make(chan struct{})
	h := m.Wrap("command", http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		entered <- struct{}{}
		<-release
	}))
	inFlight := func() float64 {
		t.Helper()
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			if f.GetName() == "hexapost_http_requests_in_flight" && len(f.GetMetric()) == 1 {
				return f.GetMetric()[0].GetGauge().GetValue()
			}
		}
		return -1 // missing, or not one series
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/posts", nil))
	}()
	<-entered
	during := inFlight()
	close(release)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the request did not finish")
	}
	after := inFlight()

	if during != 1 || after != 0 {
		t.Errorf("in flight = %v during the request and %v after it, want 1 and 0", during, after)
	}
}

// TestHTTPMetricsBoundMethods: methods a client makes up share one label, so they cannot grow
// the metrics without bound.
func TestHTTPMetricsBoundMethods(t *testing.T) {
	t.Parallel()
	reg, m := newHTTPMetrics(t)
	h := m.Wrap("command", http.NotFoundHandler())
	for _, method := range []string{"FOOA", "FOOB", "FOOC", http.MethodGet} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(method, "/posts", nil))
	}

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "hexapost_http_requests_total" {
			continue
		}
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "method" {
					got[l.GetValue()] += s.GetCounter().GetValue()
				}
			}
		}
	}
	if len(got) != 2 || got["other"] != 3 || got[http.MethodGet] != 1 {
		t.Errorf("requests by method label = %v, want other: 3 and GET: 1", got)
	}
}

// newHTTPMetrics returns HTTP metrics registered on a registry of their own.
func newHTTPMetrics(t *testing.T) (*prometheus.Registry, *api.HTTPMetrics) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := api.NewHTTPMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	return reg, m
}
