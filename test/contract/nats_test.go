package contract_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"strings"
	"testing"
	"time"

	"hexapost/adapters/nats"
	"hexapost/ports"
	"hexapost/test/contract"
)

func TestNATSBus(t *testing.T) {
	t.Parallel()
	url := contract.Backend(t, "POSTS_NATS_URL")
	// Redeliveries are timed by the server; on a loaded machine they come tens of milliseconds
	// late, so the doubling (200 ms, 400 ms) is kept well clear of that noise.
	const (
		backoff   = 200 * time.Millisecond
		bound     = 500
		lossCheck = 100 * time.Millisecond
	)
	contract.Bus(t, func(t *testing.T, o ports.DeliveryObserver) contract.BusPair {
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		name := "T" + strings.ToUpper(hex.EncodeToString(b))
		cfg := nats.Config{
			URL: url, Stream: name, Subject: "hexapost.test." + name, Durable: "contract",
			MaxAttempts: 3, Backoff: backoff, AckWait: time.Second, MaxMsgs: bound, LossCheck: lossCheck,
			Observer: o,
		}
		open := func() *nats.Bus {
			bus, err := nats.Open(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = bus.Close() })
			return bus
		}
		a, bb := open(), open()
		t.Cleanup(func() { _ = a.Purge(context.Background()) })
		return contract.BusPair{A: a, B: bb, DeadLetters: a, PublishRaw: a.PublishRaw, DropStream: a.Purge, Eraser: a}
	}, contract.BusFeatures{MaxAttempts: 3, Backoff: backoff, Following: true, Lanes: true, Bound: bound,
		LossCheck: lossCheck, Timeout: 15 * time.Second})
}

func TestNATSFeed(t *testing.T) {
	t.Parallel()
	url := contract.Backend(t, "POSTS_NATS_URL")
	const bound = 300
	contract.Feed(t, func(t *testing.T) contract.FeedUnderTest {
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		name := "F" + strings.ToUpper(hex.EncodeToString(b))
		bus, err := nats.Open(context.Background(), nats.Config{URL: url, Stream: name,
			Subject: "hexapost.test." + name, Durable: "contract", MaxMsgs: bound})
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

// newNATSBench opens a bus on a stream of its own, purged when the benchmark ends.
func newNATSBench(b *testing.B) contract.BusClient {
	url := contract.Backend(b, "POSTS_NATS_URL")
	name := "B" + strings.ToUpper(rand.Text())
	bus, err := nats.Open(b.Context(), nats.Config{URL: url, Stream: name, Subject: "hexapost.bench." + name,
		Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = bus.Purge(context.Background()); _ = bus.Close() })
	return bus
}

func BenchmarkNATSBusConsume(b *testing.B) { contract.BenchmarkBusConsume(b, newNATSBench) }

func BenchmarkNATSBusLatency(b *testing.B) { contract.BenchmarkBusLatency(b, 2000, newNATSBench) }
