package api

import (
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Traced wraps a server's handler so that each request is a server span of tp, a child of the
// caller's traceparent when it sent one, named by its route once the mux has matched it.
// Probes and metrics scrapes are not traced; with a no-op provider nothing is wrapped. It must
// be the outermost wrapper: it hands the handlers a request with the span in its context, and
// reads the route the mux set on that request.
func Traced(tp trace.TracerProvider, server string, next http.Handler) http.Handler {
	if _, off := tp.(noop.TracerProvider); off {
		return next
	}
	tracer := tp.Tracer("hexapost")
	var prop propagation.TraceContext
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz", "/readyz", "/metrics":
			next.ServeHTTP(w, r)
			return
		}
		ctx := prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(
				attribute.String("hexapost.server", server),
				semconv.HTTPRequestMethodKey.String(r.Method),
				semconv.URLPath(tracedPath(r.URL.Path)),
			))
		defer span.End()
		r = r.WithContext(ctx)
		sw := newStatusWriter(w)
		next.ServeHTTP(sw, r)
		if route := route(r); route != "unmatched" {
			span.SetName(r.Pattern)
			span.SetAttributes(semconv.HTTPRoute(route))
		}
		span.SetAttributes(semconv.HTTPResponseStatusCode(sw.Status))
		if sw.Status >= http.StatusInternalServerError {
			span.SetStatus(codes.Error, http.StatusText(sw.Status))
		}
	})
}
