package mongo

import (
	"context"
	"errors"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"hexapost/ports/batch"
)

// Inserts made at the same time are sent as one unordered InsertMany, which a server writes in
// one go for far less than the same documents one by one. (Filtered writes gain nothing from a
// bulk command: each of its documents is still its own filtered read.)
const (
	// insertBatch is the most documents one InsertMany carries. A create's history entry and
	// first view go through two inserters in turn; at half of the projector's lanes the two
	// run side by side instead of in lockstep, each idle while the other runs.
	insertBatch = 8
	// insertSlots is how many InsertManys of one inserter run at once. With one, the inserts
	// that arrive while an InsertMany runs all go in the next, which makes the largest batches.
	insertSlots = 1
)

// insert is one document to insert into a collection.
type insert struct {
	coll *mongo.Collection
	doc  any
}

// insertResult is the outcome of one document of a batch.
type insertResult struct {
	// duplicate is set when a document with the same _id, or the same key of another unique
	// index, is stored already: the insert changed nothing.
	duplicate bool
	// uncertain is set on a duplicate found when the document was inserted again on its own
	// after its batch failed as a whole: the document found may be this one, stored by the
	// batch before it failed.
	uncertain bool
	err       error
}

// inserter batches concurrent inserts (group commit), each caller getting its own document's
// outcome.
type inserter struct {
	group   *batch.Group[insert, insertResult]
	timeout time.Duration
}

// newInserter returns an inserter whose InsertMany commands each take at most timeout.
func newInserter(timeout time.Duration) *inserter {
	in := &inserter{timeout: timeout}
	in.group = batch.New(insertBatch, insertSlots, in.run)
	return in
}

// Insert stores doc in coll, as part of a batch, and reports whether it was a duplicate (a
// document with its _id or another unique key is there, and stays as it was) and, if so,
// whether that document may be doc itself (see insertResult). An error is this document's own,
// or the whole batch's when the server is unreachable; either way doc may or may not be stored.
func (in *inserter) Insert(ctx context.Context, coll *mongo.Collection, doc any) (duplicate, uncertain bool, err error) {
	res, err := in.group.Do(ctx, insert{coll: coll, doc: doc})
	if err != nil {
		return false, false, err
	}
	return res.duplicate, res.uncertain, res.err
}

// run inserts a batch with one unordered InsertMany per collection (in practice one: a batch
// spans two only across a switch to a rebuilt read model).
func (in *inserter) run(batch []insert) []insertResult {
	out := make([]insertResult, len(batch))
	byColl := map[string][]int{}
	var order []string
	for i, b := range batch {
		name := b.coll.Name()
		if byColl[name] == nil {
			order = append(order, name)
		}
		byColl[name] = append(byColl[name], i)
	}
	for _, name := range order {
		indexes := byColl[name]
		docs := make([]any, len(indexes))
		for j, i := range indexes {
			docs[j] = batch[i].doc
		}
		for j, res := range in.insertMany(batch[indexes[0]].coll, docs) {
			out[indexes[j]] = res
		}
	}
	return out
}

// insertMany inserts docs with one unordered InsertMany and returns each document's outcome:
// a write error belongs to the document it names. When the command fails as a whole, each
// document is inserted again on its own, so that one document the server refuses (FerretDB
// answers a failed insert of one document with an error for the whole command) fails only
// its own caller; only an unreachable server is every document's error at once.
func (in *inserter) insertMany(coll *mongo.Collection, docs []any) []insertResult {
	ctx, cancel := context.WithTimeout(context.Background(), in.timeout)
	defer cancel()
	out := make([]insertResult, len(docs))
	_, err := coll.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	var bwe mongo.BulkWriteException
	if err == nil {
		return out
	}
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || !indexesInRange(bwe.WriteErrors, len(docs)) {
		if len(docs) == 1 || mongo.IsNetworkError(err) || mongo.IsTimeout(err) {
			for i := range out {
				out[i].err = err
			}
			return out
		}
		for i, doc := range docs {
			out[i] = in.insertOne(coll, doc)
		}
		return out
	}
	for _, we := range bwe.WriteErrors {
		if mongo.IsDuplicateKeyError(we.WriteError) {
			out[we.Index].duplicate = true
		} else {
			out[we.Index].err = we.WriteError
		}
	}
	return out
}

// indexesInRange reports whether every write error names one of n documents; an answer that
// does not is treated as a failure of the whole command.
func indexesInRange(errs []mongo.BulkWriteError, n int) bool {
	for _, we := range errs {
		if we.Index < 0 || we.Index >= n {
			return false
		}
	}
	return true
}

// insertOne inserts a document of a batch that failed as a whole.
func (in *inserter) insertOne(coll *mongo.Collection, doc any) insertResult {
	ctx, cancel := context.WithTimeout(context.Background(), in.timeout)
	defer cancel()
	_, err := coll.InsertOne(ctx, doc)
	if mongo.IsDuplicateKeyError(err) {
		return insertResult{duplicate: true, uncertain: true}
	}
	return insertResult{err: err}
}
