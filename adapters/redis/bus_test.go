package redis_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"hexapost/adapters/redis"
	"hexapost/core/post"
	"hexapost/ports"
)

// TestOpenFailsFastOnWhatIsNotRedis points the bus at a port that accepts connections and
// never answers, and at one where nothing listens: both must fail within seconds, naming
// POSTS_REDIS_URL, instead of hanging.
func TestOpenFailsFastOnWhatIsNotRedis(t *testing.T) {
	t.Parallel()
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = silent.Close() })
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = c.Close() })
		}
	}()
	tests := []struct {
		name    string
		giveURL string
	}{
		{"silent port", "redis://" + silent.Addr().String() + "/0"},
		{"closed port", "redis://127.0.0.1:1/0"},
		{"not a URL", "http://example/0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			begin := time.Now()
			_, err := redis.Open(context.Background(), redis.Config{URL: tt.giveURL, Timeout: time.Second})
			took := time.Since(begin)
			if err == nil || !strings.Contains(err.Error(), "POSTS_REDIS_URL") {
				t.Fatalf("error %v, want one naming POSTS_REDIS_URL", err)
			}
			if took > 5*time.Second {
				t.Fatalf("took %s to fail", took)
			}
			t.Logf("%s after %s", err, took.Round(time.Millisecond))
		})
	}
}

func TestRedactHidesThePassword(t *testing.T) {
	t.Parallel()
	_, err := redis.Open(context.Background(), redis.Config{URL: "redis://user:hunter2@127.0.0.1:1/0", Timeout: time.Second})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error %v leaks the password or is nil", err)
	}
}

// BenchmarkPublish publishes one change per operation to a fresh stream on POSTS_REDIS_URL:
//
//	go test ./adapters/redis -run '^$' -bench Publish
func BenchmarkPublish(b *testing.B) {
	url := os.Getenv("POSTS_REDIS_URL")
	if url == "" {
		b.Skip("POSTS_REDIS_URL is not set")
	}
	bus, err := redis.Open(context.Background(), redis.Config{URL: url, Stream: fmt.Sprintf("hexapost:bench:%d", time.Now().UnixNano())})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = bus.Purge(context.Background()); _ = bus.Close() })
	benchPublish(b, bus)
}

func benchPublish(b *testing.B, bus ports.Publisher) {
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
