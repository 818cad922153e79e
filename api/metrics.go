package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// HTTPMetrics counts and times requests by route and status, and gauges those in flight.
type HTTPMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight *prometheus.GaugeVec
}

// NewHTTPMetrics registers the HTTP metrics on reg.
func NewHTTPMetrics(reg prometheus.Registerer) (*HTTPMetrics, error) {
	m := &HTTPMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hexapost_http_requests_total",
			Help: "HTTP requests by server, method, route and status.",
		}, []string{"server", "method", "route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hexapost_http_request_duration_seconds",
			Help:    "HTTP request latency by server, method and route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"server", "method", "route"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hexapost_http_requests_in_flight",
			Help: "HTTP requests being served, by server; a scrape counts itself in the server it asks.",
		}, []string{"server"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.inFlight} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Wrap instruments a server's handler. Routes are the mux patterns and methods the standard
// ones or "other", so the label set stays bounded whatever clients send.
func (m *HTTPMetrics) Wrap(server string, next http.Handler) http.Handler {
	inFlight := m.inFlight.WithLabelValues(server)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inFlight.Inc()
		defer inFlight.Dec()
		start := time.Now()
		sw := newStatusWriter(w)
		next.ServeHTTP(sw, r)
		route := pattern(r)
		method := methodLabel(r.Method)
		m.requests.WithLabelValues(server, method, route, strconv.Itoa(sw.Status)).Inc()
		m.duration.WithLabelValues(server, method, route).Observe(time.Since(start).Seconds())
	})
}

// methodLabel is the method's label: a client may send any token as a method, and each new one
// would otherwise start series of its own that stay for the life of the process.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "other"
}

// statusWriter remembers the status a handler answered with and how much it wrote, for the
// middleware that wraps it (metrics, tracing, access log).
type statusWriter struct {
	http.ResponseWriter
	// Status is the status written, 200 if the handler wrote none.
	Status int
	// Bytes is the length of the body written so far.
	Bytes int64
}

// newStatusWriter wraps w.
func newStatusWriter(w http.ResponseWriter) *statusWriter {
	return &statusWriter{ResponseWriter: w, Status: http.StatusOK}
}

// WriteHeader records code and writes it.
func (w *statusWriter) WriteHeader(code int) {
	w.Status = code
	w.ResponseWriter.WriteHeader(code)
}

// Write counts and writes b.
func (w *statusWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.Bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
