package bootstrap

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/fx"

	"hexapost/api"
	"hexapost/ports"
)

// scrapeTimeout bounds what a scrape asks the backends (a ping each, the outbox backlog), so a
// backend that hangs slows /metrics by at most this much.
const scrapeTimeout = 2 * time.Second

// latencyBuckets fit calls that take a millisecond when all is well and seconds when not.
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// lagBuckets fit the projection lag: milliseconds in steady state, up to minutes while the
// read side is down or catching up.
var lagBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900}

// commandTypes and commandOutcomes are the label values of the command metrics; every pair is
// exported from the start, at zero, so a rate over it exists before the first failure.
var (
	commandTypes    = []string{"create", "update", "delete"}
	commandOutcomes = []api.Outcome{
		api.OutcomeOK, api.OutcomeInvalid, api.OutcomeConflict, api.OutcomeNotFound, api.OutcomeGone,
		api.OutcomeUnavailable, api.OutcomeCanceled, api.OutcomeError,
	}
	deadLetterCauses = []ports.DeadLetterCause{
		ports.CauseUndecodable, ports.CauseAttemptsExhausted, ports.CauseAbandoned,
	}
)

// metricsOption provides the process's metrics and registers what is read at scrape time: the
// readiness of every backend and, where the relay runs, the outbox backlog.
func metricsOption(r Roles) fx.Option {
	opts := []fx.Option{fx.Provide(newMetrics), fx.Invoke(registerBackends)}
	if r.Command {
		opts = append(opts, fx.Invoke(registerOutbox))
	}
	return fx.Module("metrics", opts...)
}

// metrics are the process's Prometheus metrics. It is the buses' ports.DeliveryObserver.
type metrics struct {
	reg       *prometheus.Registry
	handler   http.Handler
	http      *api.HTTPMetrics
	appended  prometheus.Counter
	published prometheus.Counter
	projected *prometheus.CounterVec

	commands        *prometheus.CounterVec
	commandDuration *prometheus.HistogramVec
	publishDuration prometheus.Histogram
	projectionLag   prometheus.Histogram
	retries         prometheus.Counter
	deadLetters     *prometheus.CounterVec
	backendUp       *prometheus.GaugeVec
}

var _ ports.DeliveryObserver = (*metrics)(nil)

func newMetrics() (*metrics, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	h, err := api.NewHTTPMetrics(reg)
	if err != nil {
		return nil, err
	}
	m := &metrics{
		reg:     reg,
		handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		http:    h,
		appended: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hexapost_events_appended_total", Help: "Events appended to the event store.",
		}),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hexapost_events_published_total", Help: "Events the relay published on the bus.",
		}),
		projected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hexapost_projections_total", Help: "Projection attempts by outcome (ok, error).",
		}, []string{"outcome"}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hexapost_commands_total",
			Help: "Commands that reached the core, by type (create, update, delete) and outcome " +
				"(ok, invalid, conflict, not_found, gone, unavailable, canceled, error).",
		}, []string{"type", "outcome"}),
		commandDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hexapost_command_duration_seconds",
			Help:    "Time the core took to run a command, whatever its outcome, by type.",
			Buckets: latencyBuckets,
		}, []string{"type"}),
		publishDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "hexapost_publish_duration_seconds",
			Help:    "Time the bus took to accept one batch of the relay, failed attempts included.",
			Buckets: latencyBuckets,
		}),
		projectionLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hexapost_projection_lag_seconds",
			Help: "Time from an event's occurred_at (the command server's clock) to its successful " +
				"application to the read model (this process's clock).",
			Buckets: lagBuckets,
		}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hexapost_projection_retries_total",
			Help: "Changes whose projection failed and that were scheduled for another delivery.",
		}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hexapost_dead_letters_total",
			Help: "Messages this process moved to the dead letters, by reason " +
				"(undecodable, attempts_exhausted, abandoned).",
		}, []string{"reason"}),
		backendUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hexapost_backend_up",
			Help: "1 if the backend answered its last round trip (a /readyz check or a scrape), else 0.",
		}, []string{"backend"}),
	}
	for _, t := range commandTypes {
		m.commandDuration.WithLabelValues(t)
		for _, o := range commandOutcomes {
			m.commands.WithLabelValues(t, string(o))
		}
	}
	for _, c := range deadLetterCauses {
		m.deadLetters.WithLabelValues(string(c))
	}
	for _, c := range []prometheus.Collector{
		m.appended, m.published, m.projected, m.commands, m.commandDuration, m.publishDuration,
		m.projectionLag, m.retries, m.deadLetters,
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// observeCommand is the command handler's observer.
func (m *metrics) observeCommand(command string, o api.Outcome, took time.Duration) {
	m.commands.WithLabelValues(command, string(o)).Inc()
	m.commandDuration.WithLabelValues(command).Observe(took.Seconds())
}

// Retrying counts a projection retry.
func (m *metrics) Retrying() { m.retries.Inc() }

// DeadLettered counts a dead letter.
func (m *metrics) DeadLettered(c ports.DeadLetterCause) {
	m.deadLetters.WithLabelValues(string(c)).Inc()
}

// countApply counts the projector's attempts and, for each change applied, how long after it
// occurred that was.
func (m *metrics) countApply(h ports.Handler) ports.Handler {
	return func(ctx context.Context, c ports.Change, later *ports.Change) error {
		err := h(ctx, c, later)
		outcome := "ok"
		if err != nil {
			outcome = "error"
		} else {
			m.projectionLag.Observe(max(time.Since(c.Event.OccurredAt).Seconds(), 0))
		}
		m.projected.WithLabelValues(outcome).Inc()
		return err
	}
}

// observeChecks returns the checks, each setting hexapost_backend_up when /readyz runs it.
func (m *metrics) observeChecks(checks []api.Check) []api.Check {
	out := make([]api.Check, len(checks))
	for i, c := range checks {
		out[i] = api.Check{Name: c.Name, Ping: func(ctx context.Context) error {
			err := c.Ping(ctx)
			m.setUp(c.Name, err == nil && ctx.Err() == nil)
			return err
		}}
	}
	return out
}

func (m *metrics) setUp(backend string, up bool) {
	v := 0.0
	if up {
		v = 1
	}
	m.backendUp.WithLabelValues(backend).Set(v)
}

// registerBackends makes every scrape ping the backends, so hexapost_backend_up is fresh even
// when nothing calls /readyz.
func registerBackends(m *metrics, checks struct {
	fx.In
	All []api.Check `group:"checks"`
}) error {
	return m.reg.Register(&backendCollector{m: m, checks: checks.All})
}

// backendCollector pings every backend, concurrently, when it is collected.
type backendCollector struct {
	m      *metrics
	checks []api.Check
}

func (c *backendCollector) Describe(ch chan<- *prometheus.Desc) { c.m.backendUp.Describe(ch) }

func (c *backendCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, check := range c.m.observeChecks(c.checks) {
		wg.Go(func() { _ = check.Ping(ctx) })
	}
	wg.Wait()
	c.m.backendUp.Collect(ch)
}

// registerOutbox makes every scrape read the outbox backlog.
func registerOutbox(m *metrics, stats ports.OutboxStats, log *slog.Logger) error {
	return m.reg.Register(&outboxCollector{
		stats: stats,
		log:   log,
		backlog: prometheus.NewDesc("hexapost_outbox_backlog",
			"Changes appended but not yet published on the bus.", nil, nil),
		age: prometheus.NewDesc("hexapost_outbox_oldest_age_seconds",
			"Age of the change first in line for the relay (0 when the outbox is empty).", nil, nil),
	})
}

// outboxCollector reads the backlog once per scrape. When the store does not answer, the two
// gauges are left out of that scrape (and hexapost_backend_up says why) rather than reported
// as an empty outbox.
type outboxCollector struct {
	stats        ports.OutboxStats
	log          *slog.Logger
	backlog, age *prometheus.Desc
}

func (c *outboxCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.backlog
	ch <- c.age
}

func (c *outboxCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	b, err := c.stats.Backlog(ctx)
	if err != nil {
		c.log.Warn("outbox backlog left out of the metrics", "error", err)
		return
	}
	age := 0.0
	if b.Count > 0 {
		age = max(time.Since(b.Oldest).Seconds(), 0)
	}
	ch <- prometheus.MustNewConstMetric(c.backlog, prometheus.GaugeValue, float64(b.Count))
	ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, age)
}

// countingStore counts appended events.
type countingStore struct {
	ports.EventStore
	m *metrics
}

func (s countingStore) Append(ctx context.Context, a ports.Append) error {
	if err := s.EventStore.Append(ctx, a); err != nil {
		return err
	}
	s.m.appended.Add(float64(len(a.Changes)))
	return nil
}

// countingPublisher counts the events the relay published and times each publish.
type countingPublisher struct {
	ports.Publisher
	m *metrics
}

func (p countingPublisher) Publish(ctx context.Context, changes []ports.Change) error {
	begin := time.Now()
	err := p.Publisher.Publish(ctx, changes)
	p.m.publishDuration.Observe(time.Since(begin).Seconds())
	if err != nil {
		return err
	}
	p.m.published.Add(float64(len(changes)))
	return nil
}
