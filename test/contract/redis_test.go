package contract_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"hexapost/adapters/redis"
	"hexapost/test/contract"
)

// redisURL returns POSTS_REDIS_URL, or skips — except under CI=true, where it fails.
func redisURL(t *testing.T) string {
	t.Helper()
	url := os.Getenv("POSTS_REDIS_URL")
	if url == "" {
		const reason = "POSTS_REDIS_URL is not set; start the test backends with: eval \"$(bash test/backends/up.sh)\""
		if os.Getenv("CI") == "true" {
			t.Fatal(reason + " (CI=true: a missing backend is a failure)")
		}
		t.Skip(reason)
	}
	return url
}

func TestRedisBus(t *testing.T) {
	t.Parallel()
	url := redisURL(t)
	const backoff = 50 * time.Millisecond
	contract.Bus(t, func(t *testing.T) contract.BusPair {
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		cfg := redis.Config{
			URL: url, Stream: "hexapost:test:" + hex.EncodeToString(b), Group: "contract",
			MaxAttempts: 3, Backoff: backoff,
		}
		open := func(consumer string) *redis.Bus {
			c := cfg
			c.Consumer = consumer
			bus, err := redis.Open(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = bus.Close() })
			return bus
		}
		a, bb := open("a"), open("b")
		t.Cleanup(func() {
			_ = a.Purge(context.Background())
		})
		return contract.BusPair{A: a, B: bb, DeadLetters: a, PublishRaw: a.PublishRaw}
	}, contract.BusFeatures{MaxAttempts: 3, Backoff: backoff})
}
