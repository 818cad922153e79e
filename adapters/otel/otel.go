// Package otel traces hexapost with OpenTelemetry: decorators of the event store, the publisher
// and the projection handler that make one trace of a change across both processes (the
// append, the relay's publish, the projection), carrying the W3C trace context in the change's
// metadata; and the OTLP/HTTP exporter the spans go out through.
package otel

import (
	"context"
	"fmt"
	"log/slog"
	"slices"

	otelglobal "go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

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

// ExporterConfig says where spans go.
type ExporterConfig struct {
	// Endpoint is the full OTLP/HTTP traces URL, e.g. http://127.0.0.1:4318/v1/traces.
	Endpoint string
	// ServiceName says which process a span came from; OTEL_SERVICE_NAME and
	// OTEL_RESOURCE_ATTRIBUTES override it.
	ServiceName string
	// Log receives the exports that fail.
	Log *slog.Logger
}

// NewProvider returns a tracer provider that batches spans to an OTLP/HTTP endpoint. The
// batch processor reads OTEL_BSP_* (schedule delay, queue and batch sizes) itself, and the
// exporter OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT and _COMPRESSION. Shut it down to flush the
// spans it holds.
func NewProvider(ctx context.Context, cfg ExporterConfig) (*sdktrace.TracerProvider, error) {
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(cfg.Endpoint))
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter for %s: %w", cfg.Endpoint, err)
	}
	res, err := resource.New(ctx,
		resource.WithSchemaURL(semconv.SchemaURL),
		resource.WithAttributes(semconv.ServiceName(cfg.ServiceName)),
		resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	// The SDK reports failed exports through this process-wide handler; without it they would
	// bypass the structured log.
	otelglobal.SetErrorHandler(otelglobal.ErrorHandlerFunc(func(err error) {
		cfg.Log.Warn("tracing: spans not exported", "endpoint", cfg.Endpoint, "error", err)
	}))
	return tp, nil
}

// Tracing makes the spans of the ports it wraps. Made from a no-op provider, it wraps nothing,
// so no span is ever made.
type Tracing struct {
	on     bool
	tracer trace.Tracer
	prop   propagation.TraceContext
}

// New returns the Tracing of tp.
func New(tp trace.TracerProvider) *Tracing {
	if _, off := tp.(noop.TracerProvider); off {
		return &Tracing{}
	}
	return &Tracing{on: true, tracer: tp.Tracer("hexapost")}
}

// traced returns md with the trace context of ctx's span in place of its own; the rest of
// md (the request id) stays as it was.
func (t *Tracing) traced(ctx context.Context, md ports.Metadata) ports.Metadata {
	c := propagation.MapCarrier{}
	t.prop.Inject(ctx, c)
	md.TraceParent, md.TraceState = c.Get("traceparent"), c.Get("tracestate")
	return md
}

// continued returns ctx with the trace context carried by md as its remote parent; ctx as it is
// when md carries none.
func (t *Tracing) continued(ctx context.Context, md ports.Metadata) context.Context {
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

// EventStore wraps s so that every load and append is a span, and every appended change
// carries the trace context of its append: that is what the relay and the projector continue.
func (t *Tracing) EventStore(s ports.EventStore) ports.EventStore {
	if !t.on {
		return s
	}
	return tracingStore{EventStore: s, t: t}
}

type tracingStore struct {
	ports.EventStore
	t *Tracing
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
	a.Changes = slices.Clone(a.Changes) // the caller's slice is left as it was
	for i, c := range a.Changes {
		if c.Metadata.TraceParent == "" {
			a.Changes[i].Metadata = s.t.traced(ctx, c.Metadata)
		}
	}
	err := s.EventStore.Append(ctx, a)
	end(span, err)
	return err
}

// Publisher wraps p so that each change published is a span continuing the change's trace,
// and the change goes on the bus with that span's context.
func (t *Tracing) Publisher(p ports.Publisher) ports.Publisher {
	if !t.on {
		return p
	}
	return tracingPublisher{Publisher: p, t: t}
}

type tracingPublisher struct {
	ports.Publisher
	t *Tracing
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
		c.Metadata = p.t.traced(sctx, c.Metadata)
		sent[i] = c
	}
	err := p.Publisher.Publish(ctx, sent)
	for _, span := range spans {
		end(span, err)
	}
	return err
}

// Projection wraps the projector's handler h so that applying a delivered change is a span
// continuing the change's trace: one per delivery, so retries show as spans of their own.
func (t *Tracing) Projection(h ports.Handler) ports.Handler {
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
