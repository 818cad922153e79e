package contract_test

import (
	"log/slog"
	"testing"
	"time"

	"hexapost/adapters/memory"
	"hexapost/adapters/wakeup"
	"hexapost/ports"
	"hexapost/test/contract"
)

func TestMemoryEventStore(t *testing.T) {
	t.Parallel()
	contract.EventStore(t, func(*testing.T) contract.Store {
		return memory.NewEventStore(memory.EventStoreConfig{})
	})
}

func TestMemoryBus(t *testing.T) {
	t.Parallel()
	const backoff = 50 * time.Millisecond
	contract.Bus(t, func(_ *testing.T, o ports.DeliveryObserver) contract.BusPair {
		b := memory.NewBus(memory.BusConfig{
			MaxAttempts: 3, Backoff: backoff, Log: slog.New(slog.DiscardHandler), Observer: o,
		})
		return contract.BusPair{A: b, B: b, DeadLetters: b, PublishRaw: b.PublishRaw, Eraser: b}
	}, contract.BusFeatures{MaxAttempts: 3, Backoff: backoff})
}

func TestMemoryFeed(t *testing.T) {
	t.Parallel()
	const bound = 300
	contract.Feed(t, func(*testing.T) contract.FeedUnderTest {
		f := memory.NewFeed(bound)
		return contract.FeedUnderTest{Publisher: f.Publisher(memory.NewBus(memory.BusConfig{})), Feed: f}
	}, contract.FeedFeatures{Bound: bound})
}

func TestMemoryViews(t *testing.T) {
	t.Parallel()
	contract.Views(t, func(*testing.T) contract.ViewsStore { return memory.NewViews() })
}

// The wake-up decorator keeps the promises of the writer it decorates.
func TestMemoryViewsWithWakeup(t *testing.T) {
	t.Parallel()
	contract.Views(t, func(*testing.T) contract.ViewsStore {
		v := memory.NewViews()
		return struct {
			ports.ViewWriter
			ports.ViewReader
		}{wakeup.New().Writer(v), v}
	})
}

func TestMemoryStreamHeads(t *testing.T) {
	t.Parallel()
	contract.StreamHeads(t, func(*testing.T) contract.HeadsStore {
		return memory.NewEventStore(memory.EventStoreConfig{})
	})
}

func TestMemoryLocker(t *testing.T) {
	t.Parallel()
	contract.Locker(t, func(*testing.T) func() contract.LockerProcess {
		s := memory.NewEventStore(memory.EventStoreConfig{})
		return func() contract.LockerProcess { return contract.LockerProcess{Locker: s} }
	}, contract.LockerFeatures{})
}

func TestMemoryViewVersions(t *testing.T) {
	t.Parallel()
	contract.ViewVersions(t, func(*testing.T) contract.VersionsStore { return memory.NewViews() })
}

func BenchmarkMemoryAppend(b *testing.B) {
	contract.BenchmarkAppend(b, func(*testing.B) ports.EventStore {
		return memory.NewEventStore(memory.EventStoreConfig{})
	})
}

func BenchmarkMemoryApply(b *testing.B) {
	contract.BenchmarkApply(b, func(*testing.B) contract.ViewsStore { return memory.NewViews() })
}

func BenchmarkMemoryReconcilePass(b *testing.B) {
	contract.BenchmarkReconcilePass(b,
		func(*testing.B) contract.HeadsStore { return memory.NewEventStore(memory.EventStoreConfig{}) },
		func(*testing.B) contract.VersionsStore { return memory.NewViews() })
}

func BenchmarkMemoryBusConsume(b *testing.B) {
	contract.BenchmarkBusConsume(b, func(*testing.B) contract.BusClient { return memory.NewBus(memory.BusConfig{}) })
}

func BenchmarkMemoryBusLatency(b *testing.B) {
	contract.BenchmarkBusLatency(b, 2000, func(*testing.B) contract.BusClient { return memory.NewBus(memory.BusConfig{}) })
}
