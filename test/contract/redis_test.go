package contract_test

import (
	"context"
	"crypto/rand"
	"log/slog"
	"testing"
	"time"

	"hexapost/adapters/redis"
	"hexapost/ports"
	"hexapost/test/contract"
)

func TestRedisBus(t *testing.T) {
	t.Parallel()
	url := contract.Backend(t, "POSTS_REDIS_URL")
	// Redis ends a blocking read's timeout on its own clock (hz 10 by default: every 100 ms), so
	// a retry the subscriber waits for that way comes up to 100 ms late. A 200 ms backoff keeps
	// the doubling (200 ms, 400 ms) clear of that noise.
	const (
		backoff   = 200 * time.Millisecond
		bound     = 500
		lossCheck = 100 * time.Millisecond
	)
	contract.Bus(t, func(t *testing.T, o ports.DeliveryObserver) contract.BusPair {
		cfg := redis.Config{
			URL: url, Stream: "hexapost:test:" + rand.Text(), Group: "contract-" + rand.Text(),
			MaxAttempts: 3, Backoff: backoff, MaxBackoff: time.Second, VisibilityTimeout: 2 * time.Second,
			MaxLen: bound, LossCheck: lossCheck, Log: slog.New(slog.DiscardHandler), Observer: o,
		}
		open := func(consumer string) *redis.Bus {
			c := cfg
			c.Consumer = consumer
			bus, err := redis.Open(t.Context(), c)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := bus.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			return bus
		}
		a, b := open("a"), open("b")
		// Registered last, so it runs first: the streams go before the clients close.
		t.Cleanup(func() {
			if err := a.Purge(context.Background()); err != nil {
				t.Errorf("Purge: %v", err)
			}
		})
		return contract.BusPair{A: a, B: b, DeadLetters: a, PublishRaw: a.PublishRaw, DropStream: a.Purge, Eraser: a}
	}, contract.BusFeatures{MaxAttempts: 3, Backoff: backoff, Following: true, Lanes: true, Bound: bound,
		LossCheck: lossCheck})
}

func TestRedisFeed(t *testing.T) {
	t.Parallel()
	url := contract.Backend(t, "POSTS_REDIS_URL")
	const bound = 300
	contract.Feed(t, func(t *testing.T) contract.FeedUnderTest {
		bus, err := redis.Open(t.Context(), redis.Config{URL: url, Stream: "hexapost:test:" + rand.Text(),
			MaxLen: bound, Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = bus.Purge(context.Background())
			_ = bus.Close()
		})
		return contract.FeedUnderTest{Publisher: bus, Feed: bus, PublishRaw: bus.PublishRaw}
	}, contract.FeedFeatures{Bound: bound})
}

// newRedisBench opens a bus on a stream of its own, purged when the benchmark ends.
func newRedisBench(b *testing.B) contract.BusClient {
	url := contract.Backend(b, "POSTS_REDIS_URL")
	bus, err := redis.Open(b.Context(), redis.Config{URL: url, Stream: "hexapost:bench:" + rand.Text(),
		Group: "bench", Consumer: "a", Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = bus.Purge(context.Background()); _ = bus.Close() })
	return bus
}

func BenchmarkRedisBusConsume(b *testing.B) { contract.BenchmarkBusConsume(b, newRedisBench) }

func BenchmarkRedisBusLatency(b *testing.B) { contract.BenchmarkBusLatency(b, 2000, newRedisBench) }
