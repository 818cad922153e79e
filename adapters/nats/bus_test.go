package nats_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	gonats "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hexapost/adapters/nats"
	"hexapost/core/post"
	"hexapost/ports"
	"hexapost/test/contract"
)

// BenchmarkPublish publishes one change per operation, waiting for the stream's
// acknowledgement, to a fresh stream on POSTS_NATS_URL:
//
//	go test ./adapters/nats -run '^$' -bench Publish
func BenchmarkPublish(b *testing.B) {
	url := os.Getenv("POSTS_NATS_URL")
	if url == "" {
		b.Skip("POSTS_NATS_URL is not set")
	}
	name := fmt.Sprintf("BENCH%d", time.Now().UnixNano())
	bus, err := nats.Open(context.Background(), nats.Config{URL: url, Stream: name, Subject: "hexapost.bench." + name})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = bus.Purge(context.Background()); _ = bus.Close() })
	at := time.Now().UTC()
	title := "t"
	b.ResetTimer()
	for i := range b.N {
		id := fmt.Sprintf("p%d", i)
		c := ports.Change{
			Event: post.Event{ID: id + "-e", PostID: id, Version: 1, Type: post.EventCreated, OccurredAt: at, Title: &title},
			State: post.State{ID: id, Version: 1, Title: title, CreatedAt: at, UpdatedAt: at},
		}
		if err := bus.Publish(context.Background(), []ports.Change{c}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// TestOpenFailsFastWithoutJetStream checks the error names the URL when nothing listens.
func TestOpenFailsFastWithoutJetStream(t *testing.T) {
	t.Parallel()
	begin := time.Now()
	const url = "nats://127.0.0.1:1"
	_, err := nats.Open(context.Background(), nats.Config{URL: url, Timeout: time.Second})
	if err == nil || time.Since(begin) > 5*time.Second {
		t.Fatalf("error %v after %s, want a quick failure", err, time.Since(begin))
	}
	if got := err.Error(); !strings.Contains(got, url) {
		t.Fatalf("error %q does not name %s", got, url)
	}
}

// TestStreamKeepsAtMostMaxMsgs checks that the changes stream drops its oldest changes beyond
// MaxMsgs, that a stream made before with no bound gets it when the bus opens again, and that
// a negative bound is refused.
func TestStreamKeepsAtMostMaxMsgs(t *testing.T) {
	t.Parallel()
	url := contract.Backend(t, "POSTS_NATS_URL")
	if _, err := nats.Open(t.Context(), nats.Config{URL: url, MaxMsgs: -1}); err == nil ||
		!strings.Contains(err.Error(), "MaxMsgs") {
		t.Fatalf("Open with MaxMsgs -1: error %v, want one naming MaxMsgs", err)
	}
	name := "T" + strings.ToUpper(rand.Text())
	cfg := nats.Config{URL: url, Stream: name, Subject: "hexapost.test." + name}
	// The stream as an earlier hexapost made it: no bound.
	if _, err := jetStream(t, url).CreateStream(t.Context(), jetstream.StreamConfig{
		Name: name, Subjects: []string{cfg.Subject}, Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute,
	}); err != nil {
		t.Fatal(err)
	}
	first, err := nats.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = first.Purge(context.Background()); _ = first.Close() })
	if got := streamInfo(t, url, name).Config.MaxMsgs; got != nats.DefaultMaxMsgs {
		t.Errorf("the stream keeps at most %d messages once a bus without MaxMsgs opened, want %d", got, nats.DefaultMaxMsgs)
	}

	cfg.MaxMsgs = 10
	bus, err := nats.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bus.Close() })
	at := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	var changes []ports.Change
	for i := range 25 {
		id := fmt.Sprintf("%s-p%d", name, i)
		changes = append(changes, ports.Change{
			Event: post.Event{ID: id + "-e", PostID: id, Version: 1, Type: post.EventDeleted, OccurredAt: at},
			State: post.State{ID: id, Version: 1, CreatedAt: at, UpdatedAt: at, Deleted: true},
		})
	}
	if err := bus.Publish(t.Context(), changes); err != nil {
		t.Fatal(err)
	}
	state := streamInfo(t, url, name).State
	if state.Msgs != 10 || state.FirstSeq != 16 || state.LastSeq != 25 {
		t.Errorf("after 25 changes the stream holds %d, sequences %d–%d; want the last 10, 16–25",
			state.Msgs, state.FirstSeq, state.LastSeq)
	}
}

// streamInfo returns what the server says of stream.
func streamInfo(t *testing.T, url, stream string) *jetstream.StreamInfo {
	t.Helper()
	s, err := jetStream(t, url).Stream(t.Context(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// TestMessagesCarryTraceContext checks that a change's W3C trace context goes as the
// traceparent and tracestate headers of its message, and that a change without one has none.
func TestMessagesCarryTraceContext(t *testing.T) {
	t.Parallel()
	url := contract.Backend(t, "POSTS_NATS_URL")
	tests := []struct {
		name     string
		giveMeta ports.Metadata
		want     gonats.Header
	}{
		{
			name: "traceparent and tracestate",
			giveMeta: ports.Metadata{
				TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", TraceState: "vendor=a",
			},
			want: gonats.Header{
				"traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}, "tracestate": {"vendor=a"},
			},
		},
		{
			name:     "traceparent only",
			giveMeta: ports.Metadata{TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"},
			want:     gonats.Header{"traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"}},
		},
		{
			name: "not traced",
			want: gonats.Header{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			name := "T" + strings.ToUpper(rand.Text())
			cfg := nats.Config{URL: url, Stream: name, Subject: "hexapost.test." + name}
			bus, err := nats.Open(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = bus.Purge(context.Background()); _ = bus.Close() })
			at := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
			c := ports.Change{
				Event:    post.Event{ID: name + "-e", PostID: name, Version: 1, Type: post.EventDeleted, OccurredAt: at},
				State:    post.State{ID: name, Version: 1, CreatedAt: at, UpdatedAt: at, Deleted: true},
				Metadata: tt.giveMeta,
			}

			if err := bus.Publish(t.Context(), []ports.Change{c}); err != nil {
				t.Fatal(err)
			}

			msg := lastMessage(t, url, name, cfg.Subject)
			got := gonats.Header{}
			for _, k := range []string{"traceparent", "tracestate"} {
				if v := msg.Header.Values(k); len(v) > 0 {
					got[k] = v
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("trace headers %v, want %v", got, tt.want)
			}
		})
	}
}

// jetStream connects to the server at url, for a look at what it stores.
func jetStream(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := gonats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// lastMessage reads the last message on subject in stream, as it is stored.
func lastMessage(t *testing.T, url, stream, subject string) *jetstream.RawStreamMsg {
	t.Helper()
	s, err := jetStream(t, url).Stream(t.Context(), stream)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := s.GetLastMsgForSubject(t.Context(), subject)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}
