package bootstrap

import (
	"context"
	"log/slog"

	"go.uber.org/fx"

	"hexapost/adapters/prometheus"
	"hexapost/api"
	"hexapost/ports"
)

// metricsOption provides the process's metrics and registers what is read at scrape time: the
// readiness of every backend and, where the relay runs, the outbox backlog.
func metricsOption(r roles) fx.Option {
	opts := []fx.Option{fx.Provide(newMetrics, newHTTPMetrics, newDeliveryObserver), fx.Invoke(registerBackends),
		fx.Invoke(func(m *prometheus.Metrics) error { return m.RegisterBuildInfo(build()) })}
	if r.Command {
		opts = append(opts, fx.Invoke(func(m *prometheus.Metrics, stats ports.OutboxStats, log *slog.Logger) error {
			return m.RegisterOutbox(stats, log)
		}))
	}
	return fx.Module("metrics", opts...)
}

func newMetrics() (*prometheus.Metrics, error) {
	outcomes := []string{}
	for _, o := range []api.Outcome{
		api.OutcomeOK, api.OutcomeInvalid, api.OutcomeConflict, api.OutcomePreconditionFailed, api.OutcomeNotFound, api.OutcomeGone,
		api.OutcomeUnavailable, api.OutcomeCanceled, api.OutcomeError,
	} {
		outcomes = append(outcomes, string(o))
	}
	return prometheus.New(prometheus.Config{CommandTypes: []string{"create", "update", "delete"}, CommandOutcomes: outcomes})
}

func newHTTPMetrics(m *prometheus.Metrics) (*api.HTTPMetrics, error) {
	return api.NewHTTPMetrics(m.Registerer())
}

func registerBackends(m *prometheus.Metrics, checks struct {
	fx.In
	All []api.Check `group:"checks"`
}) error {
	pings := map[string]func(context.Context) error{}
	for _, c := range checks.All {
		pings[c.Name] = c.Ping
	}
	return m.RegisterBackends(pings)
}

// observedChecks returns the checks, each setting hexapost_backend_up when /readyz runs it.
func observedChecks(m *prometheus.Metrics, checks []api.Check) []api.Check {
	out := make([]api.Check, len(checks))
	for i, c := range checks {
		out[i] = api.Check{Name: c.Name, Ping: m.Ping(c.Name, c.Ping)}
	}
	return out
}
