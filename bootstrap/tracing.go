package bootstrap

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/fx"

	"hexapost/adapters/otel"
)

// tracingOption provides the process's trace.TracerProvider — a no-op one unless an OTLP
// endpoint is configured — and the *otel.Tracing made from it. A test can replace the provider
// with fx.Decorate. The SDK provider is shut down, flushing the spans it holds, after every
// worker and server that uses it has stopped (fx stops in reverse order of start).
func tracingOption(cfg config, r roles) fx.Option {
	return fx.Options(
		fx.Provide(func(lc fx.Lifecycle, log *slog.Logger) (trace.TracerProvider, error) {
			return newTracerProvider(lc, cfg, r, log)
		}),
		fx.Provide(otel.New),
	)
}

func newTracerProvider(lc fx.Lifecycle, cfg config, r roles, log *slog.Logger) (trace.TracerProvider, error) {
	endpoint := otlpTracesURL(cfg)
	if endpoint == "" {
		return noop.NewTracerProvider(), nil
	}
	tp, err := otel.NewProvider(context.Background(), otel.ExporterConfig{Endpoint: endpoint, ServiceName: serviceName(r), Log: log})
	if err != nil {
		return nil, err
	}
	lc.Append(fx.StopHook(func(ctx context.Context) {
		// Spans lost at shutdown do not make the stop unclean; they are reported.
		if err := tp.Shutdown(ctx); err != nil {
			log.Warn("tracing: spans not flushed at shutdown", "endpoint", endpoint, "error", err)
		}
	}))
	log.Info("tracing on", "endpoint", endpoint)
	return tp, nil
}

// otlpTracesURL returns where spans go: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as it is, else
// OTEL_EXPORTER_OTLP_ENDPOINT with /v1/traces appended, as the OTLP/HTTP specification says;
// empty when neither is set.
func otlpTracesURL(cfg config) string {
	switch {
	case cfg.OTLPTracesEndpoint != "":
		return cfg.OTLPTracesEndpoint
	case cfg.OTLPEndpoint != "":
		return strings.TrimRight(cfg.OTLPEndpoint, "/") + "/v1/traces"
	}
	return ""
}

// otlpURL checks an OTLP/HTTP endpoint: an http or https URL with a host.
func otlpURL(set func(c *config, v string)) func(*config, string) error {
	return func(c *config, v string) error {
		if v == "" {
			return nil
		}
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("must be an http or https URL such as http://127.0.0.1:4318")
		}
		set(c, v)
		return nil
	}
}

func serviceName(r roles) string {
	switch {
	case r.Command && r.Query:
		return "hexapost"
	case r.Command:
		return "hexapost-command"
	}
	return "hexapost-query"
}
