package wire_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"hexapost/adapters/wire"
	"hexapost/core/post"
	"hexapost/ports"
)

func ptr[T any](v T) *T { return &v }

var (
	createdAt = time.Date(2025, 3, 1, 10, 0, 0, 123456000, time.UTC)
	updatedAt = time.Date(2025, 3, 1, 10, 5, 7, 654321000, time.UTC)
)

func TestRoundTrip(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name       string
		giveChange ports.Change
	}{
		{
			name: "created, every field set, times with microseconds",
			giveChange: ports.Change{
				Event: post.Event{
					ID: "0190a0b1-0000-7000-8000-000000000001", PostID: "0190a0b1-0000-7000-8000-0000000000aa",
					Version: 1, Type: post.EventCreated, OccurredAt: createdAt,
					Title: ptr("Héllo"), Content: ptr("  Body\n\"quoted\" <b>&</b> ✓ \u2028"), AuthorName: ptr("Ann"),
				},
				State: post.State{
					ID: "0190a0b1-0000-7000-8000-0000000000aa", Version: 1, Title: "Héllo",
					Content: "  Body\n\"quoted\" <b>&</b> ✓ \u2028", AuthorName: "Ann",
					CreatedAt: createdAt, UpdatedAt: createdAt,
				},
			},
		},
		{
			name: "updated, some fields unchanged (nil) and one set to the empty string",
			giveChange: ports.Change{
				Event: post.Event{
					ID: "e2", PostID: "p1", Version: 2, Type: post.EventUpdated, OccurredAt: updatedAt,
					Title: ptr("New"), Content: nil, AuthorName: ptr(""),
				},
				State: post.State{
					ID: "p1", Version: 2, Title: "New", Content: "Body", AuthorName: "",
					CreatedAt: createdAt, UpdatedAt: updatedAt,
				},
			},
		},
		{
			name: "deleted, no fields in the event",
			giveChange: ports.Change{
				Event: post.Event{ID: "e3", PostID: "p1", Version: 3, Type: post.EventDeleted, OccurredAt: updatedAt},
				State: post.State{
					ID: "p1", Version: 3, Title: "New", Content: "Body", AuthorName: "Ann",
					CreatedAt: createdAt, UpdatedAt: updatedAt, Deleted: true,
				},
			},
		},
		{
			name: "with W3C trace context: traceparent and tracestate",
			giveChange: ports.Change{
				Event: post.Event{ID: "e4", PostID: "p2", Version: 1, Type: post.EventCreated, OccurredAt: createdAt,
					Title: ptr("T"), Content: ptr("C"), AuthorName: ptr("A")},
				State: post.State{ID: "p2", Version: 1, Title: "T", Content: "C", AuthorName: "A",
					CreatedAt: createdAt, UpdatedAt: createdAt},
				Metadata: ports.Metadata{
					TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
					TraceState:  "vendor=a,other=b",
				},
			},
		},
		{
			name: "with a traceparent only",
			giveChange: ports.Change{
				Event:    post.Event{ID: "e5", PostID: "p2", Version: 2, Type: post.EventDeleted, OccurredAt: updatedAt},
				State:    post.State{ID: "p2", Version: 2, CreatedAt: createdAt, UpdatedAt: updatedAt, Deleted: true},
				Metadata: ports.Metadata{TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"},
			},
		},
		{
			name: "with a request id, traced or not",
			giveChange: ports.Change{
				Event:    post.Event{ID: "e6", PostID: "p2", Version: 3, Type: post.EventDeleted, OccurredAt: updatedAt},
				State:    post.State{ID: "p2", Version: 3, CreatedAt: createdAt, UpdatedAt: updatedAt, Deleted: true},
				Metadata: ports.Metadata{RequestID: "abc-123"},
			},
		},
		{
			name: "an erasure with its actor",
			giveChange: ports.Change{
				Event: post.Event{ID: "e7", PostID: "p2", Version: 4, Type: post.EventErased, OccurredAt: updatedAt},
				State: post.State{ID: "p2", Version: 4, CreatedAt: createdAt, UpdatedAt: updatedAt, Deleted: true,
					Erased: true},
				Metadata: ports.Metadata{RequestID: "abc-124", Actor: "admin-token:0123abcd"},
			},
		},
		{
			name: "zero times and a large version",
			giveChange: ports.Change{
				Event: post.Event{ID: "e", PostID: "p", Version: 1 << 53, Type: post.EventUpdated},
				State: post.State{ID: "p", Version: 1 << 53},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			b, err := wire.Encode(tt.giveChange)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			got, err := wire.Decode(b)

			if err != nil {
				t.Fatalf("Decode(%s): %v", b, err)
			}
			if !reflect.DeepEqual(got, tt.giveChange) {
				t.Errorf("round trip of %s\ngot  %+v\nwant %+v", b, got, tt.giveChange)
			}
		})
	}
}

// TestEncodeFormat pins the field names of schema 1: other processes, possibly of an older
// release, read them.
func TestEncodeFormat(t *testing.T) {
	t.Parallel()
	c := ports.Change{
		Event: post.Event{
			ID: "e2", PostID: "p1", Version: 2, Type: post.EventUpdated, OccurredAt: updatedAt, Title: ptr("New"),
		},
		State: post.State{
			ID: "p1", Version: 2, Title: "New", Content: "Body", AuthorName: "Ann",
			CreatedAt: createdAt, UpdatedAt: updatedAt,
		},
	}

	b, err := wire.Encode(c)

	if err != nil {
		t.Fatal(err)
	}
	want := `{"schema":1,` +
		`"event":{"id":"e2","post_id":"p1","version":2,"type":"post.updated",` +
		`"occurred_at":"2025-03-01T10:05:07.654321Z","title":"New"},` +
		`"state":{"id":"p1","version":2,"title":"New","content":"Body","author_name":"Ann",` +
		`"created_at":"2025-03-01T10:00:00.123456Z","updated_at":"2025-03-01T10:05:07.654321Z","deleted":false}}`
	if string(b) != want {
		t.Errorf("Encode =\n%s\nwant\n%s", b, want)
	}
}

// TestEncodeFormatTrace pins where the trace context goes: beside event and state, named as the
// W3C headers, and left out when there is none (as TestEncodeFormat shows).
func TestEncodeFormatTrace(t *testing.T) {
	t.Parallel()
	c := ports.Change{
		Event: post.Event{ID: "e3", PostID: "p1", Version: 3, Type: post.EventDeleted, OccurredAt: updatedAt},
		State: post.State{ID: "p1", Version: 3, CreatedAt: createdAt, UpdatedAt: updatedAt, Deleted: true},
		Metadata: ports.Metadata{
			TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", TraceState: "vendor=a",
		},
	}

	b, err := wire.Encode(c)

	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Trace map[string]string `json:"trace"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "tracestate": "vendor=a",
	}
	if !reflect.DeepEqual(got.Trace, want) {
		t.Errorf("trace of %s = %v, want %v", b, got.Trace, want)
	}
}

func TestDecodeRejects(t *testing.T) {
	t.Parallel()
	valid := map[string]any{
		"schema": 1,
		"event": map[string]any{
			"id": "e1", "post_id": "p1", "version": 1, "type": "post.created",
			"occurred_at": "2025-03-01T10:00:00.123456Z", "title": "T", "content": "C", "author_name": "A",
		},
		"state": map[string]any{
			"id": "p1", "version": 1, "title": "T", "content": "C", "author_name": "A",
			"created_at": "2025-03-01T10:00:00.123456Z", "updated_at": "2025-03-01T10:00:00.123456Z",
		},
	}
	// with returns the valid message with one field of part ("" for the top level) set to value,
	// or removed when value is nil.
	with := func(part, field string, value any) []byte {
		m := map[string]any{}
		for k, v := range valid {
			m[k] = v
		}
		target := m
		if part != "" {
			target = map[string]any{}
			for k, v := range valid[part].(map[string]any) {
				target[k] = v
			}
			m[part] = target
		}
		target[field] = value
		if value == nil {
			delete(target, field)
		}
		b, err := json.Marshal(m)
		if err != nil {
			panic(err)
		}
		return b
	}

	if _, err := wire.Decode(with("", "schema", 1)); err != nil {
		t.Fatalf("the valid message the cases derive from is refused: %v", err)
	}

	tests := []struct {
		name        string
		giveMessage []byte
	}{
		{name: "empty", giveMessage: nil},
		{name: "not JSON", giveMessage: []byte("post created")},
		{name: "truncated", giveMessage: with("", "schema", 1)[:40]},
		{name: "JSON null", giveMessage: []byte("null")},
		{name: "JSON array", giveMessage: []byte(`[1,2]`)},
		{name: "empty object", giveMessage: []byte(`{}`)},
		{name: "no schema", giveMessage: with("", "schema", nil)},
		{name: "older schema", giveMessage: with("", "schema", 0)},
		{name: "newer schema", giveMessage: with("", "schema", 2)},
		{name: "schema as a string", giveMessage: with("", "schema", "1")},
		{name: "no event", giveMessage: with("", "event", nil)},
		{name: "no event id", giveMessage: with("event", "id", nil)},
		{name: "empty event id", giveMessage: with("event", "id", "")},
		{name: "no post id", giveMessage: with("event", "post_id", nil)},
		{name: "empty post id", giveMessage: with("event", "post_id", "")},
		{name: "no event type", giveMessage: with("event", "type", nil)},
		{name: "unknown event type", giveMessage: with("event", "type", "post.renamed")},
		{name: "event type in other case", giveMessage: with("event", "type", "Post.Created")},
		{name: "version as a string", giveMessage: with("event", "version", "1")},
		{name: "fractional version", giveMessage: with("event", "version", 1.5)},
		{name: "time that is not RFC 3339", giveMessage: with("event", "occurred_at", "yesterday")},
		{name: "title that is not a string", giveMessage: with("event", "title", 42)},
		{name: "state that is not an object", giveMessage: with("", "state", "p1")},
		{name: "deleted that is not a boolean", giveMessage: with("state", "deleted", "yes")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			got, err := wire.Decode(tt.giveMessage)

			if !errors.Is(err, wire.ErrUndecodable) {
				t.Errorf("Decode(%s) error = %v, want %v", tt.giveMessage, err, wire.ErrUndecodable)
			}
			if !reflect.DeepEqual(got, ports.Change{}) {
				t.Errorf("Decode(%s) = %+v, want the zero change", tt.giveMessage, got)
			}
		})
	}
}

// FuzzDecode holds Decode to its promises for any input: it never panics, every refusal wraps
// ErrUndecodable, and what it accepts has ids and a known type and survives another round trip
// unchanged.
func FuzzDecode(f *testing.F) {
	seed, err := wire.Encode(ports.Change{
		Event: post.Event{
			ID: "e1", PostID: "p1", Version: 1, Type: post.EventCreated, OccurredAt: createdAt,
			Title: ptr("T"), Content: ptr("C"), AuthorName: ptr("A"),
		},
		State: post.State{ID: "p1", Version: 1, Title: "T", Content: "C", AuthorName: "A", CreatedAt: createdAt},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(`{"schema":1,"event":{"id":"e","post_id":"p","type":"post.deleted"},"state":{}}`))
	f.Add([]byte(`{"schema":1,"event":{"id":"e","post_id":"p","type":"post.updated","occurred_at":"2025-03-01T10:00:00+23:59"}}`))
	f.Add([]byte(`{"schema":2}`))
	f.Add([]byte(`null`))
	f.Add([]byte{0xff, 0xfe})

	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := wire.Decode(b)
		if err != nil {
			if !errors.Is(err, wire.ErrUndecodable) {
				t.Fatalf("error = %v, want it to wrap %v", err, wire.ErrUndecodable)
			}
			return
		}
		if c.Event.ID == "" || c.Event.PostID == "" || !c.Event.Type.Valid() {
			t.Fatalf("accepted %+v without ids or with an unknown type", c.Event)
		}
		again, err := wire.Encode(c)
		if err != nil {
			return // Encode may refuse a time that parsing accepted; that is no concern of Decode
		}
		c2, err := wire.Decode(again)
		if err != nil {
			t.Fatalf("Decode(Encode(%+v)) = %v", c, err)
		}
		third, err := wire.Encode(c2)
		if err != nil || !bytes.Equal(third, again) {
			t.Fatalf("second round trip changed the message:\n%s\n%s (%v)", again, third, err)
		}
	})
}

func benchmarkChange() ports.Change {
	at := time.Date(2025, 3, 1, 10, 0, 0, 123456000, time.UTC)
	title, content := "A title of ordinary length", string(bytes.Repeat([]byte("lorem ipsum "), 20))
	return ports.Change{
		Event: post.Event{ID: "0190b6a0-0000-7000-8000-0000000000e1", PostID: "0190b6a0-0000-7000-8000-000000000001",
			Version: 2, Type: post.EventUpdated, OccurredAt: at, Title: &title, Content: &content},
		State: post.State{ID: "0190b6a0-0000-7000-8000-000000000001", Version: 2, Title: title, Content: content,
			AuthorName: "ann", CreatedAt: at, UpdatedAt: at},
	}
}

// BenchmarkEncode measures encoding a change of about 300 bytes of text for the bus.
func BenchmarkEncode(b *testing.B) {
	c := benchmarkChange()
	for b.Loop() {
		if _, err := wire.Encode(c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecode measures decoding it on the query side.
func BenchmarkDecode(b *testing.B) {
	msg, err := wire.Encode(benchmarkChange())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := wire.Decode(msg); err != nil {
			b.Fatal(err)
		}
	}
}
