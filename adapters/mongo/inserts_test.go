package mongo

// An internal test: it hands the inserter one batch directly, so that what it checks does not
// depend on how concurrent calls happen to be grouped.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"hexapost/test/contract"
)

func TestABatchGivesEachDocumentItsOwnOutcome(t *testing.T) {
	t.Parallel()
	v := freshViews(t)
	coll := v.db.Collection("batch")
	if _, err := coll.InsertOne(t.Context(), bson.D{{Key: "_id", Value: "stored before"}, {Key: "n", Value: 0}}); err != nil {
		t.Fatal(err)
	}
	doc := func(id any, n int) insert {
		return insert{coll: coll, doc: bson.D{{Key: "_id", Value: id}, {Key: "n", Value: n}}}
	}
	tests := []struct {
		give          insert
		wantDuplicate bool
		wantErr       bool
	}{
		{give: doc("stored before", 1), wantDuplicate: true},
		{give: doc("new 1", 2)},
		{give: doc(bson.A{"an", "array"}, 3), wantErr: true}, // no server takes an array as _id
		{give: doc("new 2", 4)},
		{give: doc("new 1", 5), wantDuplicate: true}, // a repeat within the batch
	}
	batch := make([]insert, len(tests))
	for i, tt := range tests {
		batch[i] = tt.give
	}

	got := newInserter(5 * time.Second).run(batch)

	for i, tt := range tests {
		if got[i].duplicate != tt.wantDuplicate || (got[i].err != nil) != tt.wantErr {
			t.Errorf("document %d: duplicate %t, error %v; want duplicate %t, error %t",
				i, got[i].duplicate, got[i].err, tt.wantDuplicate, tt.wantErr)
		}
	}
	var stored []struct {
		ID string `bson:"_id"`
		N  int    `bson:"n"`
	}
	cur, err := coll.Find(t.Context(), bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cur.All(t.Context(), &stored); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"stored before": 0, "new 1": 2, "new 2": 4}
	if len(stored) != len(want) {
		t.Errorf("stored %+v; want %v", stored, want)
	}
	for _, s := range stored {
		if n, ok := want[s.ID]; !ok || n != s.N {
			t.Errorf("stored %+v; want %v", stored, want)
		}
	}
}

// TestABatchThatFailsAsAWholeFailsOnlyTheDocumentAtFault: a document that cannot be encoded
// fails the whole InsertMany, as a document the server refuses does on FerretDB, rather than
// with a write error naming it. The others of its batch are stored all the same and their
// callers learn so.
func TestABatchThatFailsAsAWholeFailsOnlyTheDocumentAtFault(t *testing.T) {
	t.Parallel()
	v := freshViews(t)
	coll := v.db.Collection("batch")
	doc := func(id string, value any) insert {
		return insert{coll: coll, doc: bson.D{{Key: "_id", Value: id}, {Key: "value", Value: value}}}
	}

	got := newInserter(5 * time.Second).run([]insert{doc("a", 1), doc("not encodable", make(chan int)), doc("b", 2)})

	if got[1].err == nil {
		t.Errorf("the document that cannot be encoded: %+v; want an error", got[1])
	}
	for _, i := range []int{0, 2} {
		if got[i] != (insertResult{}) {
			t.Errorf("document %d: %+v; want stored", i, got[i])
		}
	}
	n, err := coll.CountDocuments(t.Context(), bson.D{})
	if err != nil || n != 2 {
		t.Errorf("%d documents stored, %v; want 2", n, err)
	}
}

// freshViews opens a read model on a database of its own, dropped when the test ends.
func freshViews(t *testing.T) *Views {
	t.Helper()
	uri := contract.Backend(t, "POSTS_MONGO_URI")
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	v, err := Open(t.Context(), Config{URI: uri, Database: "hexapost_t_" + hex.EncodeToString(b)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Drop(context.Background()); _ = v.Close() })
	return v
}
