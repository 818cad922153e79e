package mongo_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"hexapost/adapters/mongo"
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

func TestOpenFailsFastAndNamesTheVariable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		giveURI string
	}{
		{"nothing listening", "mongodb://127.0.0.1:1/hexapost"},
		{"not a mongodb URI", "http://127.0.0.1/x"},
		{"password hidden", "mongodb://u:hunter2@127.0.0.1:1/hexapost"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			begin := time.Now()
			_, err := mongo.Open(context.Background(), mongo.Config{URI: tt.giveURI, Timeout: time.Second})
			if err == nil || !strings.Contains(err.Error(), "POSTS_MONGO_URI") || strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error %v: want one naming POSTS_MONGO_URI without the password", err)
			}
			if took := time.Since(begin); took > 5*time.Second {
				t.Fatalf("took %s", took)
			}
		})
	}
}
