// Package prometheus counts what hexapost does in Prometheus metrics: decorators of the event
// store, the publisher and the projection handler that count and time what passes through
// them, the buses' delivery observer, the reconciler's observer, and collectors that read the
// backends' health and the outbox backlog at scrape time.
package prometheus

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	prom "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"hexapost/core/projection"
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

var deadLetterCauses = []ports.DeadLetterCause{
	ports.CauseUndecodable, ports.CauseAttemptsExhausted, ports.CauseAbandoned,
}

// Config names the label values of the command metrics; every pair is exported from the
// start, at zero, so a rate over it exists before the first failure.
type Config struct {
	CommandTypes    []string
	CommandOutcomes []string
}

// Metrics are a process's Prometheus metrics, in a registry of their own. It is the buses'
// ports.DeliveryObserver.
type Metrics struct {
	reg       *prom.Registry
	handler   http.Handler
	appended  prom.Counter
	published prom.Counter
	projected *prom.CounterVec

	commands        *prom.CounterVec
	commandDuration *prom.HistogramVec
	publishDuration prom.Histogram
	projectionLag   prom.Histogram
	retries         prom.Counter
	deadLetters     *prom.CounterVec
	busLosses       *prom.CounterVec
	backendUp       *prom.GaugeVec

	reconcileEnabled prom.Gauge
	passes           prom.Counter
	drifted          *prom.CounterVec
	repaired         prom.Counter
	// lastPass is when (Unix nanoseconds) this process last completed a pass, or started.
	lastPass atomic.Int64
}

var (
	_ ports.DeliveryObserver       = (*Metrics)(nil)
	_ projection.ReconcileObserver = (*Metrics)(nil)
)

// New registers the metrics, with the Go runtime's and the process's, in a new registry.
func New(cfg Config) (*Metrics, error) {
	reg := prom.NewRegistry()
	m := &Metrics{
		reg:     reg,
		handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		appended: prom.NewCounter(prom.CounterOpts{
			Name: "hexapost_events_appended_total", Help: "Events appended to the event store.",
		}),
		published: prom.NewCounter(prom.CounterOpts{
			Name: "hexapost_events_published_total", Help: "Events the relay published on the bus.",
		}),
		projected: prom.NewCounterVec(prom.CounterOpts{
			Name: "hexapost_projections_total", Help: "Projection attempts by outcome (ok, error).",
		}, []string{"outcome"}),
		commands: prom.NewCounterVec(prom.CounterOpts{
			Name: "hexapost_commands_total",
			Help: "Commands that reached the core, by type (create, update, delete) and outcome " +
				"(ok, invalid, conflict, precondition_failed, not_found, gone, unavailable, canceled, error).",
		}, []string{"type", "outcome"}),
		commandDuration: prom.NewHistogramVec(prom.HistogramOpts{
			Name:    "hexapost_command_duration_seconds",
			Help:    "Time the core took to run a command, whatever its outcome, by type.",
			Buckets: latencyBuckets,
		}, []string{"type"}),
		publishDuration: prom.NewHistogram(prom.HistogramOpts{
			Name:    "hexapost_publish_duration_seconds",
			Help:    "Time the bus took to accept one batch of the relay, failed attempts included.",
			Buckets: latencyBuckets,
		}),
		projectionLag: prom.NewHistogram(prom.HistogramOpts{
			Name: "hexapost_projection_lag_seconds",
			Help: "Time from an event's occurred_at (the command server's clock) to its successful " +
				"application to the read model (this process's clock).",
			Buckets: lagBuckets,
		}),
		retries: prom.NewCounter(prom.CounterOpts{
			Name: "hexapost_projection_retries_total",
			Help: "Changes whose projection failed and that were scheduled for another delivery.",
		}),
		deadLetters: prom.NewCounterVec(prom.CounterOpts{
			Name: "hexapost_dead_letters_total",
			Help: "Messages this process moved to the dead letters, by reason " +
				"(undecodable, attempts_exhausted, abandoned).",
		}, []string{"reason"}),
		busLosses: prom.NewCounterVec(prom.CounterOpts{
			Name: "hexapost_bus_losses_total",
			Help: "Times this process found changes gone from the bus before it was given them, by cause " +
				"(trimmed, stream_gone).",
		}, []string{"cause"}),
		backendUp: prom.NewGaugeVec(prom.GaugeOpts{
			Name: "hexapost_backend_up",
			Help: "1 if the backend answered its last round trip (a /readyz check or a scrape), else 0.",
		}, []string{"backend"}),
		reconcileEnabled: prom.NewGauge(prom.GaugeOpts{
			Name: "hexapost_reconcile_enabled",
			Help: "1 if this process reconciles the read model with the event store (or stands by to), else 0.",
		}),
		passes: prom.NewCounter(prom.CounterOpts{
			Name: "hexapost_reconcile_passes_total",
			Help: "Passes over the whole read model this process completed.",
		}),
		drifted: prom.NewCounterVec(prom.CounterOpts{
			Name: "hexapost_reconcile_drifted_posts_total",
			Help: "Posts this process found behind the event store after the grace, by cause " +
				"(view_missing, view_behind, history_missing).",
		}, []string{"cause"}),
		repaired: prom.NewCounter(prom.CounterOpts{
			Name: "hexapost_reconcile_repaired_posts_total",
			Help: "Drifted posts this process re-projected from the event store.",
		}),
	}
	m.lastPass.Store(time.Now().UnixNano())
	for _, c := range projection.DriftCauses {
		m.drifted.WithLabelValues(string(c))
	}
	for _, t := range cfg.CommandTypes {
		m.commandDuration.WithLabelValues(t)
		for _, o := range cfg.CommandOutcomes {
			m.commands.WithLabelValues(t, o)
		}
	}
	for _, c := range []ports.LossCause{ports.LossTrimmed, ports.LossStreamGone} {
		m.busLosses.WithLabelValues(string(c))
	}
	for _, c := range deadLetterCauses {
		m.deadLetters.WithLabelValues(string(c))
	}
	for _, c := range []prom.Collector{
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.appended, m.published, m.projected, m.commands, m.commandDuration, m.publishDuration,
		m.projectionLag, m.retries, m.deadLetters, m.busLosses,
		m.reconcileEnabled, m.passes, m.drifted, m.repaired,
		prom.NewGaugeFunc(prom.GaugeOpts{
			Name: "hexapost_reconcile_last_pass_age_seconds",
			Help: "Seconds since this process last completed a reconciliation pass, or since it started.",
		}, func() float64 { return time.Since(time.Unix(0, m.lastPass.Load())).Seconds() }),
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// RegisterBuildInfo adds hexapost_build_info, always 1, labelled with the build's version,
// VCS revision and Go version, so that a dashboard tells which build each process runs.
func (m *Metrics) RegisterBuildInfo(version, revision, goVersion string) error {
	info := prom.NewGaugeVec(prom.GaugeOpts{
		Name: "hexapost_build_info", Help: "1, labelled with the version, revision and Go version of the build.",
	}, []string{"version", "revision", "goversion"})
	info.WithLabelValues(version, revision, goVersion).Set(1)
	return m.reg.Register(info)
}

// Registerer is where further metrics of the process (the HTTP servers') are registered.
func (m *Metrics) Registerer() prom.Registerer { return m.reg }

// ServeHTTP serves the metrics in Prometheus's text format.
func (m *Metrics) ServeHTTP(w http.ResponseWriter, r *http.Request) { m.handler.ServeHTTP(w, r) }

// ObserveCommand counts a command that reached the core and the time it took.
func (m *Metrics) ObserveCommand(command, outcome string, took time.Duration) {
	m.commands.WithLabelValues(command, outcome).Inc()
	m.commandDuration.WithLabelValues(command).Observe(took.Seconds())
}

// Retrying counts a projection retry.
func (m *Metrics) Retrying() { m.retries.Inc() }

// DeadLettered counts a dead letter.
func (m *Metrics) DeadLettered(c ports.DeadLetterCause) {
	m.deadLetters.WithLabelValues(string(c)).Inc()
}

// Lost counts changes found gone from the bus (ports.DeliveryObserver).
func (m *Metrics) Lost(c ports.LossCause) {
	m.busLosses.WithLabelValues(string(c)).Inc()
}

// ReconcileEnabled sets hexapost_reconcile_enabled.
func (m *Metrics) ReconcileEnabled(on bool) {
	v := 0.0
	if on {
		v = 1
	}
	m.reconcileEnabled.Set(v)
}

// PassCompleted counts a completed reconciliation pass (projection.ReconcileObserver).
func (m *Metrics) PassCompleted() {
	m.passes.Inc()
	m.lastPass.Store(time.Now().UnixNano())
}

// Drifted counts a post found drifted (projection.ReconcileObserver).
func (m *Metrics) Drifted(c projection.DriftCause) { m.drifted.WithLabelValues(string(c)).Inc() }

// Repaired counts a drifted post re-projected (projection.ReconcileObserver).
func (m *Metrics) Repaired() { m.repaired.Inc() }

// Projection wraps the projector's handler h so that it counts the projector's attempts and, for each
// long after it occurred that was.
func (m *Metrics) Projection(h ports.Handler) ports.Handler {
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

// Ping wraps the ping of a backend so that each round trip sets hexapost_backend_up.
func (m *Metrics) Ping(backend string, ping func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		err := ping(ctx)
		v := 0.0
		if err == nil && ctx.Err() == nil {
			v = 1
		}
		m.backendUp.WithLabelValues(backend).Set(v)
		return err
	}
}

// RegisterBackends makes every scrape ping the backends, concurrently, so hexapost_backend_up
// is fresh even when nothing calls /readyz. pings maps each backend's name to its ping.
func (m *Metrics) RegisterBackends(pings map[string]func(context.Context) error) error {
	observed := make([]func(context.Context) error, 0, len(pings))
	for name, ping := range pings {
		observed = append(observed, m.Ping(name, ping))
	}
	return m.reg.Register(&backendCollector{up: m.backendUp, pings: observed})
}

type backendCollector struct {
	up    *prom.GaugeVec
	pings []func(context.Context) error
}

func (c *backendCollector) Describe(ch chan<- *prom.Desc) { c.up.Describe(ch) }

func (c *backendCollector) Collect(ch chan<- prom.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, ping := range c.pings {
		wg.Go(func() { _ = ping(ctx) })
	}
	wg.Wait()
	c.up.Collect(ch)
}

// RegisterOutbox makes every scrape read the outbox backlog.
func (m *Metrics) RegisterOutbox(stats ports.OutboxStats, log *slog.Logger) error {
	return m.reg.Register(&outboxCollector{
		stats: stats,
		log:   log,
		backlog: prom.NewDesc("hexapost_outbox_backlog",
			"Changes appended but not yet published on the bus.", nil, nil),
		age: prom.NewDesc("hexapost_outbox_oldest_age_seconds",
			"Age of the change first in line for the relay (0 when the outbox is empty).", nil, nil),
	})
}

// outboxCollector reads the backlog once per scrape. When the store does not answer, the two
// gauges are left out of that scrape (and hexapost_backend_up says why) rather than reported
// as an empty outbox.
type outboxCollector struct {
	stats        ports.OutboxStats
	log          *slog.Logger
	backlog, age *prom.Desc
}

func (c *outboxCollector) Describe(ch chan<- *prom.Desc) {
	ch <- c.backlog
	ch <- c.age
}

func (c *outboxCollector) Collect(ch chan<- prom.Metric) {
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
	ch <- prom.MustNewConstMetric(c.backlog, prom.GaugeValue, float64(b.Count))
	ch <- prom.MustNewConstMetric(c.age, prom.GaugeValue, age)
}

// EventStore wraps s so that it counts the events appended.
func (m *Metrics) EventStore(s ports.EventStore) ports.EventStore {
	return countingStore{EventStore: s, appended: m.appended}
}

type countingStore struct {
	ports.EventStore
	appended prom.Counter
}

func (s countingStore) Append(ctx context.Context, a ports.Append) error {
	if err := s.EventStore.Append(ctx, a); err != nil {
		return err
	}
	s.appended.Add(float64(len(a.Changes)))
	return nil
}

// Publisher wraps p so that it counts the events the relay published and times each publish.
func (m *Metrics) Publisher(p ports.Publisher) ports.Publisher {
	return countingPublisher{Publisher: p, m: m}
}

type countingPublisher struct {
	ports.Publisher
	m *Metrics
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
