package nats_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"hexapost/adapters/nats"
	"hexapost/core/post"
	"hexapost/ports"
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

// TestOpenFailsFastWithoutJetStream checks the error names POSTS_NATS_URL when nothing listens.
func TestOpenFailsFastWithoutJetStream(t *testing.T) {
	t.Parallel()
	begin := time.Now()
	_, err := nats.Open(context.Background(), nats.Config{URL: "nats://127.0.0.1:1", Timeout: time.Second})
	if err == nil || time.Since(begin) > 5*time.Second {
		t.Fatalf("error %v after %s, want a quick failure", err, time.Since(begin))
	}
	if got := err.Error(); !strings.Contains(got, "POSTS_NATS_URL") {
		t.Fatalf("error %q does not name POSTS_NATS_URL", got)
	}
}
