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
