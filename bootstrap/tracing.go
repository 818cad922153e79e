package bootstrap

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
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
	if cfg.SDKDisabledOther != "" {
		log.Warn("OTEL_SDK_DISABLED is neither true nor false; taken as false, as OpenTelemetry specifies",
			"OTEL_SDK_DISABLED", cfg.SDKDisabledOther)
	}
	endpoint := otlpTracesURL(cfg)
	if endpoint == "" {
		return noop.NewTracerProvider(), nil
	}
	if cfg.SDKDisabled {
		log.Info("tracing off: OTEL_SDK_DISABLED=true", "endpoint", endpoint)
		return noop.NewTracerProvider(), nil
	}
	if name, protocol := otlpTracesProtocol(cfg); protocol != "http/protobuf" {
		return nil, fmt.Errorf("%s=%s is not supported: hexapost sends spans over OTLP/HTTP with protobuf "+
			"only; set it to http/protobuf or leave it unset", name, protocol)
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

// otlpProtocols are the transports of OTLP the OpenTelemetry specification names.
var otlpProtocols = []string{"grpc", "http/protobuf", "http/json"}

// otlpTracesProtocol returns the variable that chooses the transport of spans and its value:
// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL when set, else OTEL_EXPORTER_OTLP_PROTOCOL.
func otlpTracesProtocol(cfg config) (name, protocol string) {
	if cfg.OTLPTracesProtocol != "" {
		return "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", cfg.OTLPTracesProtocol
	}
	return "OTEL_EXPORTER_OTLP_PROTOCOL", cfg.OTLPProtocol
}

// otlpProtocol checks a protocol that may be unset, to defer to another variable.
func otlpProtocol(set func(c *config, v string)) func(*config, string) error {
	return func(c *config, v string) error {
		if v != "" && !slices.Contains(otlpProtocols, v) {
			return fmt.Errorf("must be one of %s", strings.Join(otlpProtocols, ", "))
		}
		set(c, v)
		return nil
	}
}

// sdkDisabled reads OTEL_SDK_DISABLED as the OpenTelemetry specification defines its booleans:
// true in any case is true, anything else false.
func sdkDisabled(c *config, v string) error {
	c.SDKDisabled = strings.EqualFold(v, "true")
	if !c.SDKDisabled && !strings.EqualFold(v, "false") {
		c.SDKDisabledOther = v
	}
	return nil
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
