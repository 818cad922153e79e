package mongo

// Internal tests: what Open decides about the server is not part of the read model's port.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"hexapost/test/contract"
)

func TestIsFerretDB(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		give bson.D
		want bool
	}{
		{"FerretDB 1.24", bson.D{{Key: "version", Value: "7.0.42"}, {Key: "gitVersion", Value: "unknown"},
			{Key: "ferretdbVersion", Value: "v1.24.0"}, {Key: "ok", Value: 1.0}}, true},
		{"MongoDB 7", bson.D{{Key: "version", Value: "7.0.14"}, {Key: "gitVersion", Value: "ce59cfc6a3c5e5c067dca0d30697edd68d4f5188"},
			{Key: "allocator", Value: "tcmalloc"}, {Key: "storageEngines", Value: bson.A{"wiredTiger"}}, {Key: "ok", Value: 1.0}}, false},
		{"an empty answer", bson.D{{Key: "ok", Value: 1.0}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			raw, err := bson.Marshal(tt.give)
			if err != nil {
				t.Fatal(err)
			}
			if got := isFerretDB(raw); got != tt.want {
				t.Errorf("isFerretDB = %t, want %t", got, tt.want)
			}
		})
	}
}

// TestOpenDecidesTheLookAfterAReplace opens the test backend's read model in each mode: Detect
// asks the server, which on FerretDB means looking; the other two are taken as configured, and a
// rebuilt read model keeps the decision.
func TestOpenDecidesTheLookAfterAReplace(t *testing.T) {
	t.Parallel()
	uri := contract.Backend(t, "POSTS_MONGO_URI")
	ferret := serverNamesFerretDB(t, uri)
	tests := []struct {
		name string
		give Atomicity
		want bool
	}{
		{"detected", Detect, ferret},
		{"configured atomic", Atomic, false},
		{"configured not atomic", NotAtomic, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := make([]byte, 6)
			_, _ = rand.Read(b)
			v, err := Open(t.Context(), Config{URI: uri, Database: "hexapost_t_" + hex.EncodeToString(b), AtomicReplace: tt.give})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = v.Drop(context.Background()); _ = v.Close() })
			fresh, err := v.Fresh(t.Context())
			if err != nil {
				t.Fatal(err)
			}

			if v.lookAfterReplace != tt.want || fresh.(*Views).lookAfterReplace != tt.want {
				t.Errorf("look after a replace: %t, rebuilt %t; want %t", v.lookAfterReplace, fresh.(*Views).lookAfterReplace, tt.want)
			}
		})
	}
}

// serverNamesFerretDB reports whether the server's buildInfo mentions FerretDB anywhere, read
// through a client of its own rather than the adapter's check.
func serverNamesFerretDB(t *testing.T, uri string) bool {
	t.Helper()
	client, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerMonitoringMode(options.ServerMonitoringModePoll))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	raw, err := client.Database("admin").RunCommand(t.Context(), bson.D{{Key: "buildInfo", Value: 1}}).Raw()
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Contains(bytes.ToLower(raw), []byte("ferretdb"))
}
