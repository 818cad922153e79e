package mongo_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
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

// TestAWriteRepairsAHigherVersionUndoneBeforeIt: on a server that reads the document a filter
// matches and then replaces it by _id (FerretDB on PostgreSQL), a late lower write can undo a
// higher one. The next write to the view must bring back the highest version in the history.
func TestAWriteRepairsAHigherVersionUndoneBeforeIt(t *testing.T) {
	t.Parallel()
	uri := contract.Backend(t, "POSTS_MONGO_URI")
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	db := "hexapost_t_" + hex.EncodeToString(b)
	v, err := mongo.Open(t.Context(), mongo.Config{URI: uri, Database: db})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Drop(context.Background()); _ = v.Close() })
	client, err := gomongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	posts := client.Database(db).Collection("posts")

	at := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	state := func(version int64) post.State {
		return post.State{ID: "p1", Version: version, Title: fmt.Sprintf("v%d", version), Content: "c",
			AuthorName: "a", CreatedAt: at, UpdatedAt: at}
	}
	put := func(version int64) {
		t.Helper()
		h := ports.HistoryEntry{EventID: fmt.Sprintf("e%d", version), Type: post.EventUpdated, OccurredAt: at, State: state(version)}
		if err := v.PutHistory(t.Context(), h); err != nil {
			t.Fatal(err)
		}
	}
	put(1)
	if _, err := v.PutCurrent(t.Context(), state(1)); err != nil {
		t.Fatal(err)
	}
	var first bson.M
	if err := posts.FindOne(t.Context(), bson.D{{Key: "_id", Value: "p1"}}).Decode(&first); err != nil {
		t.Fatal(err)
	}
	put(2)
	put(3)
	if _, err := v.PutCurrent(t.Context(), state(3)); err != nil {
		t.Fatal(err)
	}
	// The late write of version 1 lands over version 3, as the race on such a server does.
	if _, err := posts.ReplaceOne(t.Context(), bson.D{{Key: "_id", Value: "p1"}}, first); err != nil {
		t.Fatal(err)
	}

	stored, err := v.PutCurrent(t.Context(), state(2))

	if err != nil || !stored {
		t.Fatalf("PutCurrent(v2) = %t, %v; want stored", stored, err)
	}
	if got, err := v.Get(t.Context(), "p1"); err != nil || got.Version != 3 || got.Title != "v3" {
		t.Errorf("view = v%d %q, %v; want v3 back from the history", got.Version, got.Title, err)
	}
}
