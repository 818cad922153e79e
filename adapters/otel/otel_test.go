package otel_test

import (
	"context"
	"errors"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace/noop"

	"hexapost/adapters/otel"
	"hexapost/core/post"
	"hexapost/ports"
)

// recordingStore keeps the changes appended to it.
type recordingStore struct {
	ports.EventStore
	appended []ports.Change
}

func (s *recordingStore) Append(_ context.Context, a ports.Append) error {
	s.appended = append(s.appended, a.Changes...)
	return nil
}

// recordingPublisher keeps the changes published on it.
type recordingPublisher struct{ published []ports.Change }

func (p *recordingPublisher) Publish(_ context.Context, changes []ports.Change) error {
	p.published = append(p.published, changes...)
	return nil
}

// TestOneTraceFollowsAChange: the append's span context travels in the change's metadata, the
// publish continues it and hands its own on, and the projection continues that: one trace,
// each span the child of the one before. The request id beside it travels unchanged.
func TestOneTraceFollowsAChange(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	tr := otel.New(sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp)))
	store, bus := &recordingStore{}, &recordingPublisher{}
	given := ports.Metadata{RequestID: "abc-123"}
	change := ports.Change{Event: post.Event{ID: "e1", PostID: "p1", Version: 1, Type: post.EventCreated},
		Metadata: given}

	if err := tr.EventStore(store).Append(t.Context(), ports.Append{PostID: "p1", Changes: []ports.Change{change}}); err != nil {
		t.Fatal(err)
	}
	if err := tr.Publisher(bus).Publish(t.Context(), store.appended); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := tr.Projection(func(context.Context, ports.Change, *ports.Change) error { return boom })(t.Context(), bus.published[0], nil)
	if !errors.Is(err, boom) {
		t.Fatalf("projection returned %v, want the handler's error", err)
	}

	spans := exp.GetSpans()
	if len(spans) != 3 {
		t.Fatalf("%d spans, want append, publish, project", len(spans))
	}
	for i, name := range []string{"append", "publish", "project"} {
		s := spans[i]
		if s.Name != name || s.SpanContext.TraceID() != spans[0].SpanContext.TraceID() {
			t.Errorf("span %d: %q in trace %s, want %q in trace %s", i, s.Name, s.SpanContext.TraceID(), name,
				spans[0].SpanContext.TraceID())
		}
		if i > 0 && s.Parent.SpanID() != spans[i-1].SpanContext.SpanID() {
			t.Errorf("%q span's parent = %s, want the %q span", name, s.Parent.SpanID(), spans[i-1].Name)
		}
	}
	if got := spans[2].Status.Description; got != "boom" {
		t.Errorf("project span's status %q, want the handler's error", got)
	}
	for _, c := range []ports.Change{store.appended[0], bus.published[0]} {
		if c.Metadata.RequestID != given.RequestID || c.Metadata.TraceParent == "" {
			t.Errorf("metadata %+v, want a traceparent and request id %q", c.Metadata, given.RequestID)
		}
	}
	if change.Metadata != given {
		t.Error("the caller's change was given metadata; want its slice left as it was")
	}
}

// TestOffWrapsNothing: with a no-op provider the ports are returned as they are.
func TestOffWrapsNothing(t *testing.T) {
	t.Parallel()
	tr := otel.New(noop.NewTracerProvider())
	store, bus := &recordingStore{}, &recordingPublisher{}
	if got := tr.EventStore(store); got != ports.EventStore(store) {
		t.Errorf("EventStore wrapped the store: %T", got)
	}
	if got := tr.Publisher(bus); got != ports.Publisher(bus) {
		t.Errorf("Publisher wrapped the publisher: %T", got)
	}
}
