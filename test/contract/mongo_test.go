package contract_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"

	"hexapost/adapters/memory"
	"hexapost/adapters/mongo"
	"hexapost/test/contract"
)

// mongoViews returns a read model on a fresh database of the server at uri, dropped when the
// test ends.
func mongoViews(tb testing.TB, uri string) *mongo.Views {
	tb.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	v, err := mongo.Open(context.Background(), mongo.Config{URI: uri, Database: "hexapost_t_" + hex.EncodeToString(b)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = v.Drop(context.Background())
		_ = v.Close()
	})
	return v
}

func TestMongoViews(t *testing.T) {
	t.Parallel()
	uri := contract.Backend(t, "POSTS_MONGO_URI")
	contract.Views(t, func(t *testing.T) contract.ViewsStore { return mongoViews(t, uri) })
}

func TestMongoViewVersions(t *testing.T) {
	t.Parallel()
	uri := contract.Backend(t, "POSTS_MONGO_URI")
	contract.ViewVersions(t, func(t *testing.T) contract.VersionsStore { return mongoViews(t, uri) })
}

// BenchmarkMongoApply: go test ./test/contract -run '^$' -bench Apply
func BenchmarkMongoApply(b *testing.B) {
	uri := contract.Backend(b, "POSTS_MONGO_URI")
	contract.BenchmarkApply(b, func(b *testing.B) contract.ViewsStore { return mongoViews(b, uri) })
}

// BenchmarkMongoReconcilePass is the pass with the event store in memory: the read model's share.
func BenchmarkMongoReconcilePass(b *testing.B) {
	uri := contract.Backend(b, "POSTS_MONGO_URI")
	contract.BenchmarkReconcilePass(b,
		func(*testing.B) contract.HeadsStore { return memory.NewEventStore(memory.EventStoreConfig{}) },
		func(b *testing.B) contract.VersionsStore { return mongoViews(b, uri) })
}
