package mongo_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hexapost/adapters/mongo"
	"hexapost/core/post"
	"hexapost/core/projection"
	"hexapost/ports"
	"hexapost/test/contract"
)

func benchViews(b *testing.B) *mongo.Views {
	b.Helper()
	uri := contract.Backend(b, "POSTS_MONGO_URI")
	r := make([]byte, 6)
	_, _ = rand.Read(r)
	v, err := mongo.Open(context.Background(), mongo.Config{URI: uri, Database: "hexapost_b_" + hex.EncodeToString(r)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = v.Drop(context.Background()); _ = v.Close() })
	return v
}

func change(id string, version int64, at time.Time) ports.Change {
	s := post.State{ID: id, Version: version, Title: "t", Content: "c", AuthorName: "bench", CreatedAt: at, UpdatedAt: at}
	typ := post.EventUpdated
	if version == 1 {
		typ = post.EventCreated
	}
	return ports.Change{Event: post.Event{ID: fmt.Sprintf("%s-%d", id, version), PostID: id, Version: version,
		Type: typ, OccurredAt: at}, State: s}
}

// BenchmarkProjectorApply applies changes through the real projector (history insert plus
// version-guarded upsert) from 16 goroutines, as 16 connections would:
//
//	go test ./adapters/mongo -run '^$' -bench ProjectorApply -benchtime 2000x
func BenchmarkProjectorApply(b *testing.B) {
	v := benchViews(b)
	p := projection.NewProjector(v, slog.New(slog.NewTextHandler(io.Discard, nil)))
	at := time.Now().UTC().Truncate(time.Microsecond)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for range 16 {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				// 100 posts, versions rising: every apply replaces a view.
				if err := p.Apply(context.Background(), change(fmt.Sprintf("p%03d", i%100), i/100+1, at)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "applies/s")
}

// BenchmarkRead measures get and list (first page of 20, by author) latency on 1 000 posts:
//
//	go test ./adapters/mongo -run '^$' -bench Read -benchtime 1000x
func BenchmarkRead(b *testing.B) {
	v := benchViews(b)
	ctx := context.Background()
	at := time.Now().UTC().Truncate(time.Microsecond)
	for i := range 1000 {
		c := change(fmt.Sprintf("p%04d", i), 1, at.Add(time.Duration(i)*time.Microsecond))
		if _, err := v.PutCurrent(ctx, c.State); err != nil {
			b.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		op   func(i int) error
	}{
		{"get", func(i int) error { _, err := v.Get(ctx, fmt.Sprintf("p%04d", i%1000)); return err }},
		{"list", func(int) error {
			_, err := v.List(ctx, ports.ListQuery{AuthorName: "bench", Limit: 21})
			return err
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			lat := make([]time.Duration, b.N)
			for i := range b.N {
				t0 := time.Now()
				if err := tc.op(i); err != nil {
					b.Fatal(err)
				}
				lat[i] = time.Since(t0)
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)].Microseconds())/1000, "p99-ms")
		})
	}
}
