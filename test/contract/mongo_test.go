package contract_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"hexapost/adapters/mongo"
	"hexapost/test/contract"
)

func TestMongoViews(t *testing.T) {
	t.Parallel()
	uri := os.Getenv("POSTS_MONGO_URI")
	if uri == "" {
		const reason = "POSTS_MONGO_URI is not set; start the test backends with: eval \"$(bash test/backends/up.sh)\""
		if os.Getenv("CI") == "true" {
			t.Fatal(reason + " (CI=true: a missing backend is a failure)")
		}
		t.Skip(reason)
	}
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
