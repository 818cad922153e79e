package bootstrap

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/fx"

	"hexapost/api"
	"hexapost/core/post"
	"hexapost/ports"
)

// Span names. One change makes one trace across both processes: the command request, the
// append that stores the change, the relay's publish of it and its projection.
const (
	spanAppend  = "append"
	spanLoad    = "load"
	spanPublish = "publish"
	spanProject = "project"
)

// tracing is the process's tracer and the W3C trace-context propagator. It is off unless an
// OTLP endpoint is configured; off, nothing is wrapped and no span is ever made.
type tracing struct {
	on     bool
	tracer trace.Tracer
	prop   propagation.TraceContext
}

// tracingOption provides the process's trace.TracerProvider — a no-op one unless an OTLP
// endpoint is configured — and the *tracing made from it. A test can replace the provider with
// fx.Decorate. The SDK provider is shut down, flushing the spans it holds, after every worker
// and server that uses it has stopped (fx stops in reverse order of start).
func tracingOption(cfg Config, r Roles) fx.Option {
	return fx.Options(
		fx.Provide(func(lc fx.Lifecycle, log *slog.Logger) (trace.TracerProvider, error) {
			return newTracerProvider(lc, cfg, r, log)
		}),
		fx.Provide(newTracing),
	)
}

func newTracing(tp trace.TracerProvider) *tracing {
	if _, off := tp.(noop.TracerProvider); off {
		return &tracing{}
	}
	return &tracing{on: true, tracer: tp.Tracer("hexapost")}
}

func newTracerProvider(lc fx.Lifecycle, cfg Config, r Roles, log *slog.Logger) (trace.TracerProvider, error) {
	endpoint := otlpTracesURL(cfg)
	if endpoint == "" {
		return noop.NewTracerProvider(), nil
	}
	ctx := context.Background()
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(endpoint))
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter for %s: %w", endpoint, err)
	}
	// The service name says which process a span came from; OTEL_SERVICE_NAME and
	// OTEL_RESOURCE_ATTRIBUTES, read after it, override it.
	res, err := resource.New(ctx,
		resource.WithSchemaURL(semconv.SchemaURL),
		resource.WithAttributes(semconv.ServiceName(serviceName(r))),
		resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	// The batch processor reads OTEL_BSP_* (schedule delay, queue and batch sizes) itself, and
	// the exporter OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT and _COMPRESSION.
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	// The SDK reports failed exports through this process-wide handler; without it they would
	// bypass the structured log.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("tracing: spans not exported", "endpoint", endpoint, "error", err)
	}))
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
func otlpTracesURL(cfg Config) string {
	switch {
	case cfg.OTLPTracesEndpoint != "":
		return cfg.OTLPTracesEndpoint
	case cfg.OTLPEndpoint != "":
		return strings.TrimRight(cfg.OTLPEndpoint, "/") + "/v1/traces"
	}
	return ""
}

// otlpURL checks an OTLP/HTTP endpoint: an http or https URL with a host.
func otlpURL(set func(c *Config, v string)) func(*Config, string) error {
	return func(c *Config, v string) error {
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

func serviceName(r Roles) string {
	switch {
	case r.Command && r.Query:
		return "hexapost"
	case r.Command:
		return "hexapost-command"
	}
	return "hexapost-query"
}

// metadata returns the trace context of ctx's span as change metadata.
func (t *tracing) metadata(ctx context.Context) ports.Metadata {
	c := propagation.MapCarrier{}
	t.prop.Inject(ctx, c)
	return ports.Metadata{TraceParent: c.Get("traceparent"), TraceState: c.Get("tracestate")}
}

// continued returns ctx with the trace context carried by md as its remote parent; ctx as it is
// when md carries none.
func (t *tracing) continued(ctx context.Context, md ports.Metadata) context.Context {
	if md.TraceParent == "" {
		return ctx
	}
	return t.prop.Extract(ctx, propagation.MapCarrier{"traceparent": md.TraceParent, "tracestate": md.TraceState})
}

func changeAttrs(e post.Event) []attribute.KeyValue {
	return []attribute.KeyValue{
		attribute.String("hexapost.post.id", e.PostID),
		attribute.Int64("hexapost.post.version", e.Version),
		attribute.String("hexapost.event.type", string(e.Type)),
		semconv.MessagingMessageID(e.ID),
	}
}

// end ends span, marking it failed with err when err is not nil.
func end(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// store wraps s so that every load and append is a span, and every appended change carries the
// trace context of its append: that is what the relay and the projector continue.
func (t *tracing) store(s ports.EventStore) ports.EventStore {
	if !t.on {
		return s
	}
	return tracingStore{EventStore: s, t: t}
}

type tracingStore struct {
	ports.EventStore
	t *tracing
}

func (s tracingStore) Load(ctx context.Context, postID string, after int64) ([]post.Event, error) {
	ctx, span := s.t.tracer.Start(ctx, spanLoad, trace.WithAttributes(attribute.String("hexapost.post.id", postID),
		attribute.Int64("hexapost.after_version", after)))
	events, err := s.EventStore.Load(ctx, postID, after)
	span.SetAttributes(attribute.Int("hexapost.events", len(events)))
	end(span, err)
	return events, err
}

func (s tracingStore) Append(ctx context.Context, a ports.Append) error {
	ctx, span := s.t.tracer.Start(ctx, spanAppend, trace.WithAttributes(
		attribute.String("hexapost.post.id", a.PostID),
		attribute.Int64("hexapost.post.expected_version", a.ExpectedVersion),
		attribute.Int("hexapost.events", len(a.Changes)),
	))
	md := s.t.metadata(ctx)
	a.Changes = slices.Clone(a.Changes) // the caller's slice is left as it was
	for i := range a.Changes {
		if a.Changes[i].Metadata == (ports.Metadata{}) {
			a.Changes[i].Metadata = md
		}
	}
	err := s.EventStore.Append(ctx, a)
	end(span, err)
	return err
}

// publisher wraps p so that each change published is a span continuing the change's trace, and
// the change goes on the bus with that span's context.
func (t *tracing) publisher(p ports.Publisher) ports.Publisher {
	if !t.on {
		return p
	}
	return tracingPublisher{Publisher: p, t: t}
}

type tracingPublisher struct {
	ports.Publisher
	t *tracing
}

// Publish makes one span per change, all covering the one call that publishes the batch, so
// every change's trace shows when it went on the bus.
func (p tracingPublisher) Publish(ctx context.Context, changes []ports.Change) error {
	spans := make([]trace.Span, len(changes))
	sent := make([]ports.Change, len(changes))
	for i, c := range changes {
		sctx, span := p.t.tracer.Start(p.t.continued(ctx, c.Metadata), spanPublish,
			trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(changeAttrs(c.Event)...),
			trace.WithAttributes(semconv.MessagingOperationTypeSend, semconv.MessagingBatchMessageCount(len(changes))))
		spans[i] = span
		c.Metadata = p.t.metadata(sctx)
		sent[i] = c
	}
	err := p.Publisher.Publish(ctx, sent)
	for _, span := range spans {
		end(span, err)
	}
	return err
}

// handler wraps h so that applying a delivered change is a span continuing the change's trace:
// one per delivery, so retries show as spans of their own.
func (t *tracing) handler(h ports.Handler) ports.Handler {
	if !t.on {
		return h
	}
	return func(ctx context.Context, c ports.Change, later *ports.Change) error {
		ctx, span := t.tracer.Start(t.continued(ctx, c.Metadata), spanProject,
			trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(changeAttrs(c.Event)...),
			trace.WithAttributes(semconv.MessagingOperationTypeProcess))
		err := h(ctx, c, later)
		end(span, err)
		return err
	}
}

// server wraps a server's handler so that each request is a server span, a child of the caller's
// traceparent when it sent one, named by its route once the mux has matched it. Probes and
// metrics scrapes are not traced. It must be the outermost wrapper: it hands the handlers a
// request with the span in its context, and reads the route the mux set on that request.
func (t *tracing) server(name string, next http.Handler) http.Handler {
	if !t.on {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz", "/readyz", "/metrics":
			next.ServeHTTP(w, r)
			return
		}
		ctx := t.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := t.tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(
				attribute.String("hexapost.server", name),
				semconv.HTTPRequestMethodKey.String(r.Method),
				semconv.URLPath(r.URL.Path),
			))
		defer span.End()
		r = r.WithContext(ctx)
		sw := api.NewStatusWriter(w)
		next.ServeHTTP(sw, r)
		if r.Pattern != "" && r.Pattern != "/" {
			span.SetName(r.Pattern)
			span.SetAttributes(semconv.HTTPRoute(strings.TrimPrefix(r.Pattern, r.Method+" ")))
		}
		span.SetAttributes(semconv.HTTPResponseStatusCode(sw.Status))
		if sw.Status >= http.StatusInternalServerError {
			span.SetStatus(codes.Error, http.StatusText(sw.Status))
		}
	})
}
