package contract_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"hexapost/adapters/mysql"
	"hexapost/adapters/mysql/mysqltest"
	"hexapost/adapters/nats"
	"hexapost/adapters/redis"
	"hexapost/core/command"
	"hexapost/core/post"
	"hexapost/ports"
	"hexapost/test/contract"
)

// costBus is a real bus whose erasure is measured.
type costBus interface {
	ports.Publisher
	ports.BusEraser
}

// costBuses open a fresh bus of each kind, with room for every message the benchmarks publish.
var costBuses = []struct {
	name string
	open func(b *testing.B) costBus
}{
	{"redis", func(b *testing.B) costBus {
		bus, err := redis.Open(b.Context(), redis.Config{URL: contract.Backend(b, "POSTS_REDIS_URL"),
			Stream: "hexapost:cost:" + rand.Text(), Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = bus.Purge(context.Background()); _ = bus.Close() })
		return bus
	}},
	{"nats", func(b *testing.B) costBus {
		name := "COST" + strings.ToUpper(rand.Text()[:10])
		bus, err := nats.Open(b.Context(), nats.Config{URL: contract.Backend(b, "POSTS_NATS_URL"), Stream: name,
			Subject: "hexapost.cost." + name, Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = bus.Purge(context.Background()); _ = bus.Close() })
		return bus
	}},
}

// costPost appends a post of n events (a create and n-1 updates of its title) to store, leaving
// them all in the outbox, and publishes them on bus. It returns the post.
func costPost(b *testing.B, store ports.EventStore, bus ports.Publisher, author string, n int) *post.Post {
	at := time.Now().UTC().Truncate(time.Microsecond)
	stamp := func() post.Stamp { return post.Stamp{EventID: uuid.Must(uuid.NewV7()).String(), At: at} }
	p, err := post.FromHistory(uuid.Must(uuid.NewV7()).String(), nil)
	if err != nil {
		b.Fatal(err)
	}
	e, err := p.Create(post.Create{Title: "t", Content: "c", AuthorName: author}, stamp())
	if err != nil {
		b.Fatal(err)
	}
	events := []post.Event{e}
	for i := 1; i < n; i++ {
		title := fmt.Sprint("title ", i)
		events = append(events, post.Event{ID: stamp().EventID, PostID: p.ID(), Version: int64(i + 1),
			Type: post.EventUpdated, OccurredAt: at, Title: &title})
	}
	const chunk = 500
	for i := 0; i < len(events); i += chunk {
		a := ports.Append{PostID: p.ID(), ExpectedVersion: p.Version()}
		for _, e := range events[i:min(i+chunk, len(events))] {
			if err := p.Apply(e); err != nil {
				b.Fatal(err)
			}
			a.Changes = append(a.Changes, ports.Change{Event: e, State: p.State()})
		}
		if err := store.Append(b.Context(), a); err != nil {
			b.Fatal(err)
		}
		if err := bus.Publish(b.Context(), a.Changes); err != nil {
			b.Fatal(err)
		}
	}
	return p
}

// costSetup opens a fresh MySQL store and a fresh bus, and an eraser over both.
func costSetup(b *testing.B, open func(b *testing.B) costBus) (*mysql.EventStore, costBus, *command.Eraser) {
	store := openMySQL(b, mysql.Config{DSN: mysqltest.NewDatabase(b)})
	bus := open(b)
	return store, bus, costEraser(store, bus)
}

func costEraser(store *mysql.EventStore, bus ports.BusEraser) *command.Eraser {
	log := slog.New(slog.DiscardHandler)
	svc := command.NewService(command.NewStreams(store), store, func() string { return uuid.Must(uuid.NewV7()).String() },
		time.Now, log, command.Config{})
	return command.NewEraser(svc, store, bus, log)
}

// BenchmarkErasePostOf10000Events erases one post of 10 000 events, all of them still in the
// outbox and on the bus beside as many messages of another post, on MySQL and each real bus.
// It reports the store's share (the erasure's append and its redaction) and the bus's.
func BenchmarkErasePostOf10000Events(b *testing.B) {
	mysqltest.BaseDSN(b)
	for _, bb := range costBuses {
		b.Run(bb.name, func(b *testing.B) {
			store, bus, eraser := costSetup(b, bb.open)
			var storeTook, busTook time.Duration
			for range b.N {
				b.StopTimer()
				costPost(b, store, bus, "other", 10_000)
				p := costPost(b, store, bus, "someone", 10_000)
				b.StartTimer()
				begin := time.Now()
				er, err := eraser.ErasePost(b.Context(), p.ID(), "bench", "")
				if err != nil {
					b.Fatal(err)
				}
				took := time.Since(begin)
				b.StopTimer()
				if er.BusMessages != 10_000 {
					b.Fatalf("removed %d messages from the bus, want 10000", er.BusMessages)
				}
				// The bus's share, measured again on its own: nothing is left to delete, so this
				// is its scan; the deletes are the rest.
				begin = time.Now()
				if _, err := bus.EraseFromBus(b.Context(), []string{p.ID()}); err != nil {
					b.Fatal(err)
				}
				scan := time.Since(begin)
				busTook += scan
				storeTook += took - scan
				b.StartTimer()
			}
			b.ReportMetric(storeTook.Seconds()/float64(b.N), "s-store+deletes/op")
			b.ReportMetric(busTook.Seconds()/float64(b.N), "s-bus-scan/op")
		})
	}
}

// BenchmarkEraseAuthorOf1000Posts erases an author's 1 000 posts, among 1 000 posts of
// another author, on MySQL and each real bus.
func BenchmarkEraseAuthorOf1000Posts(b *testing.B) {
	mysqltest.BaseDSN(b)
	for _, bb := range costBuses {
		b.Run(bb.name, func(b *testing.B) {
			store, bus, eraser := costSetup(b, bb.open)
			for i := range b.N {
				b.StopTimer()
				author := fmt.Sprint("author ", i)
				for range 1000 {
					costPost(b, store, bus, "other", 1)
					costPost(b, store, bus, author, 1)
				}
				b.StartTimer()
				r, err := eraser.EraseAuthor(b.Context(), author, "bench", "")
				if err != nil {
					b.Fatal(err)
				}
				if len(r.Posts) != 1000 || r.BusMessages != 1000 {
					b.Fatalf("erased %d posts and %d messages, want 1000 of each", len(r.Posts), r.BusMessages)
				}
			}
		})
	}
}
