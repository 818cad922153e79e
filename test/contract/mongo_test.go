package contract_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"

	"hexapost/adapters/mongo"
	"hexapost/test/contract"
)

func TestMongoViews(t *testing.T) {
	t.Parallel()
	uri := contract.Backend(t, "POSTS_MONGO_URI")
	contract.Views(t, func(t *testing.T) contract.ViewsStore {
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		v, err := mongo.Open(context.Background(), mongo.Config{URI: uri, Database: "hexapost_t_" + hex.EncodeToString(b)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = v.Drop(context.Background())
			_ = v.Close()
		})
		return v
	})
}

// BenchmarkMongoApply: go test ./test/contract -run '^$' -bench Apply
func BenchmarkMongoApply(b *testing.B) {
	uri := contract.Backend(b, "POSTS_MONGO_URI")
	contract.BenchmarkApply(b, func(b *testing.B) contract.ViewsStore {
		r := make([]byte, 6)
		_, _ = rand.Read(r)
		v, err := mongo.Open(context.Background(), mongo.Config{URI: uri, Database: "hexapost_b_" + hex.EncodeToString(r)})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			_ = v.Drop(context.Background())
			_ = v.Close()
		})
		return v
	})
}
