package mongo_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	gomongo "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"hexapost/adapters/mongo"
	"hexapost/core/post"
	"hexapost/ports"
	"hexapost/test/contract"
)

// TestOpenTwiceOnOneDatabase starts two read models on the same database, as every restart and
// every second query server does: the second must find the indexes and not fail on them.
func TestOpenTwiceOnOneDatabase(t *testing.T) {
	t.Parallel()
	uri := contract.Backend(t, "POSTS_MONGO_URI")
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	cfg := mongo.Config{URI: uri, Database: "hexapost_t_" + hex.EncodeToString(b)}
	for i := range 3 {
		v, err := mongo.Open(context.Background(), cfg)
		if err != nil {
			t.Fatalf("open %d: %v", i+1, err)
		}
		if i == 0 {
			t.Cleanup(func() { _ = v.Drop(context.Background()) })
		}
		t.Cleanup(func() { _ = v.Close() })
	}
}

func TestOpenFailsFastAndShowsTheURIWithoutItsPassword(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		giveURI string
	}{
		{"nothing listening", "mongodb://127.0.0.1:1/hexapost"},
		{"not a mongodb URI", "http://127.0.0.1/x"},
		{"password hidden", "mongodb://u:hunter2@127.0.0.1:1/hexapost"},
		{"password of a URI that does not parse hidden", "mongodb://u:hunter2@127.0.0.1:bad/hexapost"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			begin := time.Now()
			_, err := mongo.Open(context.Background(), mongo.Config{URI: tt.giveURI, Timeout: time.Second})
			if err == nil || !strings.Contains(err.Error(), "mongo: URI") || strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error %v: want one about the URI without the password", err)
			}
			if took := time.Since(begin); took > 5*time.Second {
				t.Fatalf("took %s", took)
			}
		})
	}
}

// TestAWriteRepairsAHigherVersionUndoneBeforeIt: on a server that reads the document a filter
// matches and then replaces it by _id (FerretDB on PostgreSQL), a late lower write can undo a
// higher one. With the look after a replace, the next write to the view brings back the highest
// version in the history; a server trusted to be atomic gets no look, so the view stays where
// that write put it.
func TestAWriteRepairsAHigherVersionUndoneBeforeIt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		giveAtomic  mongo.Atomicity
		wantVersion int64
	}{
		{"look after a replace", mongo.NotAtomic, 3},
		{"server trusted", mongo.Atomic, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v, posts := openViewsAndPosts(t, mongo.Config{AtomicReplace: tt.giveAtomic})
			at := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
			put := func(version int64) {
				t.Helper()
				if err := v.PutHistory(t.Context(), entry("p1", version, at)); err != nil {
					t.Fatal(err)
				}
			}
			put(1)
			if _, err := v.PutCurrent(t.Context(), entry("p1", 1, at).State); err != nil {
				t.Fatal(err)
			}
			var first bson.M
			if err := posts.FindOne(t.Context(), bson.D{{Key: "_id", Value: "p1"}}).Decode(&first); err != nil {
				t.Fatal(err)
			}
			put(2)
			put(3)
			if _, err := v.PutCurrent(t.Context(), entry("p1", 3, at).State); err != nil {
				t.Fatal(err)
			}
			// The late write of version 1 lands over version 3, as the race on such a server does.
			if _, err := posts.ReplaceOne(t.Context(), bson.D{{Key: "_id", Value: "p1"}}, first); err != nil {
				t.Fatal(err)
			}

			stored, err := v.PutCurrent(t.Context(), entry("p1", 2, at).State)

			if err != nil || !stored {
				t.Fatalf("PutCurrent(v2) = %t, %v; want stored", stored, err)
			}
			got, err := v.Get(t.Context(), "p1")
			if err != nil || got.Version != tt.wantVersion || got.Title != fmt.Sprintf("v%d", tt.wantVersion) {
				t.Errorf("view = v%d %q, %v; want v%d", got.Version, got.Title, err, tt.wantVersion)
			}
		})
	}
}

// openViewsAndPosts returns a read model configured as cfg on a fresh database, and that
// database's posts collection seen through a client of its own.
func openViewsAndPosts(t *testing.T, cfg mongo.Config) (*mongo.Views, *gomongo.Collection) {
	t.Helper()
	v, cfg := openViewsWith(t, cfg)
	client, err := gomongo.Connect(options.Client().ApplyURI(cfg.URI))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	return v, client.Database(cfg.Database).Collection("posts")
}

// openViews returns a read model on a fresh database, dropped when the test ends.
func openViews(t *testing.T) *mongo.Views {
	t.Helper()
	v, _ := openViewsWith(t, mongo.Config{})
	return v
}

// openViewsWith opens a read model configured as cfg, with the test backend's URI and a fresh
// database dropped when the test ends, and returns it with the configuration it got.
func openViewsWith(t *testing.T, cfg mongo.Config) (*mongo.Views, mongo.Config) {
	t.Helper()
	cfg.URI = contract.Backend(t, "POSTS_MONGO_URI")
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	cfg.Database = "hexapost_t_" + hex.EncodeToString(b)
	v, err := mongo.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Drop(context.Background()); _ = v.Close() })
	return v, cfg
}

func entry(id string, version int64, at time.Time) ports.HistoryEntry {
	return ports.HistoryEntry{EventID: fmt.Sprintf("%s-e%d", id, version), Type: post.EventUpdated, OccurredAt: at,
		State: post.State{ID: id, Version: version, Title: fmt.Sprintf("v%d", version), Content: "c", AuthorName: "a",
			CreatedAt: at, UpdatedAt: at}}
}

// TestConcurrentHistoryWithRepeatsStoresEachEntryOnce puts entries at the same time, so that they
// share InsertManys, with every entry put three times and the first stored before: each call
// succeeds and each entry is stored once.
func TestConcurrentHistoryWithRepeatsStoresEachEntryOnce(t *testing.T) {
	t.Parallel()
	const versions, repeats = 16, 3
	v := openViews(t)
	at := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	if err := v.PutHistory(t.Context(), entry("p1", 1, at)); err != nil {
		t.Fatal(err)
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range versions * repeats {
		wg.Go(func() {
			<-start
			version := int64(i%versions + 1)
			if err := v.PutHistory(t.Context(), entry("p1", version, at)); err != nil {
				t.Errorf("PutHistory v%d: %v", version, err)
			}
		})
	}
	close(start)
	wg.Wait()

	got, err := v.History(t.Context(), "p1", ports.HistoryQuery{Limit: 2 * versions}) // room for a twice-stored entry
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != versions {
		t.Fatalf("history has %d entries, want %d", len(got), versions)
	}
	for i, h := range got {
		if want := entry("p1", int64(i+1), at); h.EventID != want.EventID || h.State.Version != want.State.Version {
			t.Errorf("history[%d] = %s v%d, want %s v%d", i, h.EventID, h.State.Version, want.EventID, want.State.Version)
		}
	}
}

// TestOneOfManyRacingFirstVersionsIsStored: writers put the first version of the same post at
// the same time; exactly one of them stores it.
func TestOneOfManyRacingFirstVersionsIsStored(t *testing.T) {
	t.Parallel()
	const writers = 16
	v := openViews(t)
	at := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	start := make(chan struct{})
	var stored atomic.Int64
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			<-start
			ok, err := v.PutCurrent(t.Context(), entry("p1", 1, at).State)
			if err != nil {
				t.Errorf("PutCurrent v1: %v", err)
			}
			if ok {
				stored.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()

	if n := stored.Load(); n != 1 {
		t.Errorf("%d of %d writers report storing v1, want 1", n, writers)
	}
	if got, err := v.Get(t.Context(), "p1"); err != nil || got.Version != 1 {
		t.Errorf("view = v%d, %v; want v1", got.Version, err)
	}
}

// TestRacingVersionsEndAtTheHighest puts every version of a post, each from several writers at
// once, after its history: the first version (an insert, the others guarded replacements)
// races the rest. The view ends at the highest version, the first is stored at most once and
// some call reports storing.
func TestRacingVersionsEndAtTheHighest(t *testing.T) {
	t.Parallel()
	const versions, repeats = 12, 3
	v := openViews(t)
	at := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	for version := int64(1); version <= versions; version++ {
		if err := v.PutHistory(t.Context(), entry("p1", version, at)); err != nil {
			t.Fatal(err)
		}
	}
	start := make(chan struct{})
	var storedFirst, storedAny atomic.Int64
	var wg sync.WaitGroup
	for i := range versions * repeats {
		wg.Go(func() {
			<-start
			version := int64(i%versions + 1)
			ok, err := v.PutCurrent(t.Context(), entry("p1", version, at).State)
			if err != nil {
				t.Errorf("PutCurrent v%d: %v", version, err)
			}
			if ok {
				storedAny.Add(1)
				if version == 1 {
					storedFirst.Add(1)
				}
			}
		})
	}
	close(start)
	wg.Wait()

	if got, err := v.Get(t.Context(), "p1"); err != nil || got.Version != versions || got.Title != fmt.Sprintf("v%d", versions) {
		t.Errorf("view = v%d %q, %v; want v%d", got.Version, got.Title, err, versions)
	}
	if n := storedFirst.Load(); n > 1 {
		t.Errorf("%d writers report storing v1, want at most 1", n)
	}
	if storedAny.Load() == 0 {
		t.Error("no writer reports storing a version")
	}
}

// TestASecondVersionRacingTheFirstIsStored puts the first two versions of many posts at the
// same time. On a server that reads and inserts apart, the second version's upsert can find no
// view, then collide with the first version inserted meanwhile: it must not give up as if the
// view were newer.
func TestASecondVersionRacingTheFirstIsStored(t *testing.T) {
	t.Parallel()
	const posts = 40
	v := openViews(t)
	at := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	id := func(i int) string { return fmt.Sprintf("p%02d", i) }
	for i := range posts {
		for version := int64(1); version <= 2; version++ {
			if err := v.PutHistory(t.Context(), entry(id(i), version, at)); err != nil {
				t.Fatal(err)
			}
		}
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 2 * posts {
		wg.Go(func() {
			<-start
			s := entry(id(i/2), int64(i%2+1), at).State
			if _, err := v.PutCurrent(t.Context(), s); err != nil {
				t.Errorf("PutCurrent %s v%d: %v", s.ID, s.Version, err)
			}
		})
	}
	close(start)
	wg.Wait()

	for i := range posts {
		if got, err := v.Get(t.Context(), id(i)); err != nil || got.Version != 2 {
			t.Errorf("view of %s = v%d, %v; want v2", id(i), got.Version, err)
		}
	}
}

// TestVersionsFollowTheLiveGeneration compares with what readers see: the live generation
// before a rebuild's swap, the rebuilt one after it.
func TestVersionsFollowTheLiveGeneration(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	v := openViews(t)
	old, rebuilt := "old-post", "rebuilt-post"
	put := func(w ports.ViewWriter, id string, versions int64) {
		t.Helper()
		for ver := int64(1); ver <= versions; ver++ {
			if err := w.PutHistory(ctx, entry(id, ver, epochAt(ver))); err != nil {
				t.Fatal(err)
			}
			if _, err := w.PutCurrent(ctx, entry(id, ver, epochAt(ver)).State); err != nil {
				t.Fatal(err)
			}
		}
	}
	put(v, old, 1)
	fresh, err := v.Fresh(ctx)
	if err != nil {
		t.Fatal(err)
	}
	put(fresh, rebuilt, 2)
	check := func(when string, vv ports.ViewVersions, want ...ports.ViewVersion) {
		t.Helper()
		var got []ports.ViewVersion
		for h, err := range vv.Versions(ctx) {
			if err != nil {
				t.Fatalf("%s: Versions: %v", when, err)
			}
			got = append(got, h)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: Versions = %v; want %v", when, got, want)
		}
	}

	check("before the swap", v, ports.ViewVersion{PostID: old, Current: 1, History: 1})
	check("the rebuilt read model", fresh.(ports.ViewVersions), ports.ViewVersion{PostID: rebuilt, Current: 2, History: 2})
	if err := v.Swap(ctx); err != nil {
		t.Fatal(err)
	}
	check("after the swap", v, ports.ViewVersion{PostID: rebuilt, Current: 2, History: 2})
}

func epochAt(version int64) time.Time {
	return time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC).Add(time.Duration(version) * time.Second)
}
