// Package mongo is the read model on MongoDB (or a server that speaks its wire protocol): the
// current view of each post in the posts collection, keyed by post id, and one document per
// version in the history collection.
//
// The version guard is a conditional upsert: replace the view where the stored version is lower;
// when no such view matches, the upsert's insert collides with the existing _id, and that
// duplicate-key answer means "already newer" — counted as applied. Where the server does not
// apply the filter and the write atomically (see Atomicity), a writer repairs what a concurrent
// lower write may have undone. Times are stored as integer
// microseconds since the epoch, because BSON dates keep only milliseconds and the list cursor
// and the history must round-trip what the write side recorded.
package mongo

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"hexapost/core/post"
	"hexapost/ports"
)

// Config configures Views. Only URI is required.
type Config struct {
	// URI is the server's connection string, e.g. mongodb://127.0.0.1:27017/hexapost; its path
	// names the database (default "hexapost").
	URI string
	// Database overrides the database named by the URI.
	Database string
	// Timeout bounds each call (default 5s).
	Timeout time.Duration
	// Log receives what the adapter reports on its own (default: discarded).
	Log *slog.Logger
	// AtomicReplace says whether the server applies a filtered replace as one step (default:
	// Detect).
	AtomicReplace Atomicity
}

// Atomicity says whether a server applies a replace's filter and its write as one step. Where
// it does not, a lower version written late can undo a higher one written meanwhile, so every
// writer that replaced a view looks for the next version in the history afterwards.
type Atomicity int

const (
	// Detect asks the server at Open: FerretDB, which reads the matching document and then
	// replaces it by _id, gets the look; any other server is trusted as MongoDB is.
	Detect Atomicity = iota
	// Atomic trusts the server: no look after a replace.
	Atomic
	// NotAtomic looks for the next version after every replaced view.
	NotAtomic
)

// Views is the read model on MongoDB.
type Views struct {
	cfg    Config
	client *mongo.Client
	db     *mongo.Database
	// fixed is set on the Views that Fresh returns: its collections never move.
	fixed bool

	mu         sync.Mutex
	posts      *mongo.Collection // the live collections, as last resolved
	history    *mongo.Collection
	resolvedAt time.Time
	pending    int64 // the generation Fresh prepared, for Swap

	// historyInserts batches the history entries of concurrent changes, viewInserts their
	// first views.
	historyInserts, viewInserts *inserter
	// lookAfterReplace is set when the server does not apply a filtered replace atomically.
	lookAfterReplace bool
}

// The live collections are named by a generation kept in the meta collection, so a rebuild can
// fill the next generation beside the live one and switch every process to it with one write.
// (Renaming over the live collections would need renameCollection with dropTarget, which not
// every MongoDB-wire server implements.) Generation 0 — no meta document — is the plain
// "posts" and "history".
const (
	metaCollection = "meta"
	metaID         = "read_model"
	// resolveEvery is how long a process keeps using the generation it read last.
	resolveEvery = time.Second
)

func collectionNames(generation int64) (posts, history string) {
	if generation == 0 {
		return "posts", "history"
	}
	return fmt.Sprintf("posts_g%d", generation), fmt.Sprintf("history_g%d", generation)
}

func (v *Views) generation(ctx context.Context) (int64, error) {
	var meta struct {
		Generation int64 `bson:"generation"`
	}
	err := v.db.Collection(metaCollection).FindOne(ctx, bson.D{{Key: "_id", Value: metaID}}).Decode(&meta)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return 0, nil
	}
	if err != nil {
		return 0, wrap("read model generation", err)
	}
	return meta.Generation, nil
}

// cols returns the live collections, re-reading the generation at most once per resolveEvery.
func (v *Views) cols(ctx context.Context) (*mongo.Collection, *mongo.Collection, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.fixed || (v.posts != nil && time.Since(v.resolvedAt) < resolveEvery) {
		return v.posts, v.history, nil
	}
	g, err := v.generation(ctx)
	if err != nil {
		return nil, nil, err
	}
	p, h := collectionNames(g)
	v.posts, v.history, v.resolvedAt = v.db.Collection(p), v.db.Collection(h), time.Now()
	return v.posts, v.history, nil
}

var (
	_ ports.ViewWriter   = (*Views)(nil)
	_ ports.ViewReader   = (*Views)(nil)
	_ ports.Pinger       = (*Views)(nil)
	_ ports.ViewVersions = (*Views)(nil)
)

// Open connects, proves the server answers and creates the indexes every query needs.
func Open(ctx context.Context, cfg Config) (*Views, error) {
	if cfg.URI == "" {
		return nil, errors.New("mongo: URI is empty")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	u, err := url.Parse(cfg.URI)
	if err != nil {
		// The URI is not shown: unparsed, its password cannot be told apart.
		return nil, errors.New("mongo: URI: not a mongodb:// URI")
	}
	shown := u.Redacted() // errors name the server, never the password
	if u.Scheme != "mongodb" && u.Scheme != "mongodb+srv" {
		return nil, fmt.Errorf("mongo: URI %s: not a mongodb:// URI", shown)
	}
	if cfg.Database == "" {
		cfg.Database = strings.TrimPrefix(u.Path, "/")
	}
	if cfg.Database == "" {
		cfg.Database = "hexapost"
	}
	// Polling, not streaming, server monitoring: MongoDB-wire servers other than MongoDB itself
	// (FerretDB among them) drop the connection of a streaming hello, and the driver then
	// closes the connections of operations in flight.
	opts := options.Client().ApplyURI(cfg.URI).SetServerSelectionTimeout(cfg.Timeout).
		SetConnectTimeout(cfg.Timeout).SetTimeout(cfg.Timeout).
		SetServerMonitoringMode(options.ServerMonitoringModePoll)
	client, err := mongo.Connect(opts)
	if err != nil {
		return nil, fmt.Errorf("mongo: URI %s: %w", shown, err)
	}
	v := &Views{cfg: cfg, client: client, db: client.Database(cfg.Database), historyInserts: newInserter(cfg.Timeout), viewInserts: newInserter(cfg.Timeout)}
	ctx, cancel := context.WithTimeout(ctx, 2*cfg.Timeout)
	defer cancel()
	if err := client.Ping(ctx, nil); err != nil {
		_ = client.Disconnect(context.Background())
		return nil, fmt.Errorf("mongo: URI %s: no answer to ping: %w", shown, err)
	}
	err = v.ensureIndexes(ctx)
	for attempt := 1; err != nil && mongo.IsNetworkError(err) && attempt < 3 && ctx.Err() == nil; attempt++ {
		v.cfg.Log.Warn("mongo: creating indexes failed; retrying", "attempt", attempt, "error", err)
		err = v.ensureIndexes(ctx)
	}
	if err != nil {
		_ = client.Disconnect(context.Background())
		return nil, err
	}
	v.lookAfterReplace = v.replaceNeedsLook(ctx)
	return v, nil
}

// replaceNeedsLook reports whether writers must look for the next version after a replaced
// view. A server whose answer cannot be read gets the look: it costs little, and its absence
// on a server that needs it can leave a view behind.
func (v *Views) replaceNeedsLook(ctx context.Context) bool {
	switch v.cfg.AtomicReplace {
	case Atomic:
		return false
	case NotAtomic:
		return true
	}
	info, err := v.db.RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Raw()
	if err != nil {
		v.cfg.Log.Warn("mongo: server not identified; looking for a later version after each replaced view", "error", err)
		return true
	}
	look := isFerretDB(info)
	v.cfg.Log.Info("mongo: read model server identified", "ferretdb", look, "atomic_replace", !look)
	return look
}

// isFerretDB reports whether a buildInfo answer comes from FerretDB, which names itself there.
func isFerretDB(buildInfo bson.Raw) bool {
	_, err := buildInfo.LookupErr("ferretdbVersion")
	return err == nil
}

// ensureIndexes creates the indexes that are missing. It lists them first rather than asking
// the server to create existing ones again: MongoDB treats that as a no-op, but not every
// MongoDB-wire server does (FerretDB drops the connection), and every process start runs it.
func (v *Views) ensureIndexes(ctx context.Context) error {
	posts, history, err := v.cols(ctx)
	if err != nil {
		return err
	}
	wanted := []struct {
		coll   *mongo.Collection
		name   string
		keys   bson.D
		unique bool
	}{
		{posts, "list_newest_first", bson.D{{Key: "deleted", Value: 1}, {Key: "created_at", Value: -1}, {Key: "_id", Value: -1}}, false},
		{posts, "list_by_author", bson.D{{Key: "author_name", Value: 1}, {Key: "deleted", Value: 1},
			{Key: "created_at", Value: -1}, {Key: "_id", Value: -1}}, false},
		{history, "post_version", bson.D{{Key: "post_id", Value: 1}, {Key: "version", Value: 1}}, true},
	}
	existing := map[string]map[string]bool{}
	for _, w := range wanted {
		coll := w.coll.Name()
		if existing[coll] == nil {
			specs, err := w.coll.Indexes().ListSpecifications(ctx)
			if err != nil {
				return fmt.Errorf("mongo: indexes of %s: %w", coll, err)
			}
			existing[coll] = map[string]bool{}
			for _, s := range specs {
				existing[coll][s.Name] = true
			}
		}
		if existing[coll][w.name] {
			continue
		}
		model := mongo.IndexModel{Keys: w.keys, Options: options.Index().SetName(w.name).SetUnique(w.unique)}
		if _, err := w.coll.Indexes().CreateOne(ctx, model); err != nil {
			return fmt.Errorf("mongo: index %s of %s: %w", w.name, coll, err)
		}
	}
	return nil
}

// Close disconnects.
func (v *Views) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), v.cfg.Timeout)
	defer cancel()
	return v.client.Disconnect(ctx)
}

// Drop deletes the database; tests use it to clean up.
func (v *Views) Drop(ctx context.Context) error {
	return v.client.Database(v.cfg.Database).Drop(ctx)
}

// Ping proves the server answers.
func (v *Views) Ping(ctx context.Context) error {
	if err := v.client.Ping(ctx, nil); err != nil {
		return wrap("ping", err)
	}
	return nil
}

type stateDoc struct {
	ID         string `bson:"_id"`
	Version    int64  `bson:"version"`
	Title      string `bson:"title"`
	Content    string `bson:"content"`
	AuthorName string `bson:"author_name"`
	CreatedAt  int64  `bson:"created_at"` // µs since the epoch
	UpdatedAt  int64  `bson:"updated_at"`
	Deleted    bool   `bson:"deleted"`
	Erased     bool   `bson:"erased,omitempty"`
}

type historyDoc struct {
	ID         string   `bson:"_id"`
	PostID     string   `bson:"post_id"`
	Version    int64    `bson:"version"`
	EventID    string   `bson:"event_id"`
	Type       string   `bson:"type"`
	OccurredAt int64    `bson:"occurred_at"`
	State      stateDoc `bson:"state"`
}

func toStateDoc(s post.State) stateDoc {
	return stateDoc{
		ID: s.ID, Version: s.Version, Title: s.Title, Content: s.Content, AuthorName: s.AuthorName,
		CreatedAt: s.CreatedAt.UnixMicro(), UpdatedAt: s.UpdatedAt.UnixMicro(), Deleted: s.Deleted,
		Erased: s.Erased,
	}
}

func fromStateDoc(d stateDoc) post.State {
	return post.State{
		ID: d.ID, Version: d.Version, Title: d.Title, Content: d.Content, AuthorName: d.AuthorName,
		CreatedAt: time.UnixMicro(d.CreatedAt).UTC(), UpdatedAt: time.UnixMicro(d.UpdatedAt).UTC(), Deleted: d.Deleted,
		Erased: d.Erased,
	}
}

// PutCurrent stores s unless a view with an equal or higher version is there, and reports
// whether it did. It expects the history entry of s (and of every version before it) to be
// stored first, as the projector does.
func (v *Views) PutCurrent(ctx context.Context, s post.State) (bool, error) {
	posts, history, err := v.cols(ctx)
	if err != nil {
		return false, err
	}
	if s.Version == 1 {
		// The first version is stored exactly when there is no view yet, which a plain insert
		// tells without the filtered read of a guarded write (on FerretDB a scan of the whole
		// collection), and inserts made at the same time go in one InsertMany. An insert never
		// overwrites, so it needs no look at the history after it (see below).
		doc := toStateDoc(s)
		duplicate, uncertain, err := v.viewInserts.Insert(ctx, posts, doc)
		if err != nil {
			return false, wrap("put view "+s.ID, err)
		}
		if uncertain {
			// The view found may be this one, stored by a batch that then failed: it is, if
			// it is s.
			var found stateDoc
			if err := posts.FindOne(ctx, bson.D{{Key: "_id", Value: s.ID}}).Decode(&found); err != nil {
				return false, wrap("put view "+s.ID, err)
			}
			if found == doc {
				return true, nil
			}
			return false, v.redactIfErased(ctx, found)
		}
		if duplicate {
			return false, v.redactIfErasedID(ctx, posts, s.ID)
		}
		return true, nil
	}
	w, err := v.putIfNewer(ctx, posts, s)
	if w == unchanged && err == nil {
		return false, v.redactIfErasedID(ctx, posts, s.ID)
	}
	stored := w != unchanged
	for w == replaced && err == nil && v.lookAfterReplace {
		// On a server that evaluates the filter and the write apart, a lower version written
		// late can overwrite a higher one. So a writer that replaced a view looks for the next
		// version in the history — stored before the view — and writes that too: the last
		// replacement is followed by a look, and the view converges on the highest version.
		var next stateDoc
		next, err = v.nextInHistory(ctx, history, s)
		if errors.Is(err, mongo.ErrNoDocuments) {
			return stored, nil
		}
		if err != nil {
			return stored, wrap("check the history after "+s.ID, err)
		}
		s = fromStateDoc(next)
		if s.Erased {
			// This writer's own history entry may have been stored after the erasure redacted
			// the history: its view was stored, if only for a moment, so it redacts it itself.
			if err := v.EraseHistory(ctx, s.ID); err != nil {
				return stored, err
			}
		}
		w, err = v.putIfNewer(ctx, posts, s)
	}
	return stored, err
}

// nextInHistory returns the state of the history entry after s, or mongo.ErrNoDocuments. It asks
// with a count first, because the entry is almost never there and a count tells so without
// opening a cursor.
func (v *Views) nextInHistory(ctx context.Context, history *mongo.Collection, s post.State) (stateDoc, error) {
	id := bson.D{{Key: "_id", Value: historyID(s.ID, s.Version+1)}}
	var counted struct {
		N int64 `bson:"n"`
	}
	err := v.db.RunCommand(ctx, bson.D{{Key: "count", Value: history.Name()}, {Key: "query", Value: id}}).Decode(&counted)
	if err != nil {
		return stateDoc{}, err
	}
	if counted.N == 0 {
		return stateDoc{}, mongo.ErrNoDocuments
	}
	var next historyDoc
	err = history.FindOne(ctx, id).Decode(&next)
	return next.State, err
}

// write is what a guarded write did to a view.
type write int

const (
	unchanged write = iota // a view with an equal or higher version is there
	inserted               // there was no view
	replaced               // the view had a lower version
)

// putIfNewer replaces the view of s.ID with s where its version is lower, or inserts it where
// there is none, and reports which it did.
func (v *Views) putIfNewer(ctx context.Context, posts *mongo.Collection, s post.State) (write, error) {
	filter := bson.D{{Key: "_id", Value: s.ID}, {Key: "version", Value: bson.D{{Key: "$lt", Value: s.Version}}}}
	for attempt := 1; ; attempt++ {
		res, err := posts.ReplaceOne(ctx, filter, toStateDoc(s), options.Replace().SetUpsert(true))
		switch {
		case mongo.IsDuplicateKeyError(err) && attempt == 1:
			// No lower view matched, yet the upsert's insert collided: the view is newer, or it
			// was inserted between this write's read and its insert (FerretDB does them apart).
			// Once more tells which: the view is there now, so the read sees it.
			continue
		case mongo.IsDuplicateKeyError(err):
			return unchanged, nil
		case err != nil:
			return unchanged, wrap("put view "+s.ID, err)
		case res.UpsertedCount > 0:
			return inserted, nil
		case res.MatchedCount > 0:
			return replaced, nil
		default:
			return unchanged, nil
		}
	}
}

// historyID is the _id of a history entry: the post id and the version, zero-padded so that
// the entries of a post sort in version order.
func historyID(postID string, version int64) string {
	return fmt.Sprintf("%s:%019d", postID, version)
}

// PutHistory stores the entry under (post id, version); a repeat keeps the first. Entries put
// at the same time are inserted together, in one InsertMany.
func (v *Views) PutHistory(ctx context.Context, h ports.HistoryEntry) error {
	_, history, err := v.cols(ctx)
	if err != nil {
		return err
	}
	// A duplicate is the entry stored before: success.
	_, _, err = v.historyInserts.Insert(ctx, history, historyDoc{
		ID: historyID(h.State.ID, h.State.Version), PostID: h.State.ID, Version: h.State.Version,
		EventID: h.EventID, Type: string(h.Type), OccurredAt: h.OccurredAt.UnixMicro(), State: toStateDoc(h.State),
	})
	if err != nil {
		return wrap("put history "+h.State.ID, err)
	}
	return nil
}

// Get returns the current view of a post.
func (v *Views) Get(ctx context.Context, id string) (post.State, error) {
	var d stateDoc
	posts, _, err := v.cols(ctx)
	if err != nil {
		return post.State{}, err
	}
	err = posts.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return post.State{}, fmt.Errorf("view %s: %w", id, ports.ErrNotFound)
	}
	if err != nil {
		return post.State{}, wrap("get "+id, err)
	}
	return fromStateDoc(d), nil
}

// List returns a page of live posts, newest first, after the cursor.
func (v *Views) List(ctx context.Context, q ports.ListQuery) ([]post.State, error) {
	filter := bson.D{{Key: "deleted", Value: false}}
	if q.AuthorName != "" {
		filter = append(filter, bson.E{Key: "author_name", Value: q.AuthorName})
	}
	if q.After != nil {
		at := q.After.CreatedAt.UnixMicro()
		filter = append(filter, bson.E{Key: "$or", Value: bson.A{
			bson.D{{Key: "created_at", Value: bson.D{{Key: "$lt", Value: at}}}},
			bson.D{{Key: "created_at", Value: at}, {Key: "_id", Value: bson.D{{Key: "$lt", Value: q.After.ID}}}},
		}})
	}
	opts := options.Find().SetSort(bson.D{{Key: "created_at", Value: -1}, {Key: "_id", Value: -1}}).
		SetLimit(int64(q.Limit))
	posts, _, err := v.cols(ctx)
	if err != nil {
		return nil, err
	}
	cur, err := posts.Find(ctx, filter, opts)
	if err != nil {
		return nil, wrap("list", err)
	}
	var docs []stateDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, wrap("list", err)
	}
	out := make([]post.State, 0, len(docs))
	for _, d := range docs {
		out = append(out, fromStateDoc(d))
	}
	return out, nil
}

// History returns up to q.Limit stored versions of a post above q.After, oldest first, read
// from the post_version index with the limit applied by the server. An empty page is told
// apart from an unknown post by one more look, needed only after a cursor: the first page of a
// post with any history is never empty.
func (v *Views) History(ctx context.Context, id string, q ports.HistoryQuery) ([]ports.HistoryEntry, error) {
	_, history, err := v.cols(ctx)
	if err != nil {
		return nil, err
	}
	var docs []historyDoc
	if q.Limit > 0 {
		filter := bson.D{{Key: "post_id", Value: id}, {Key: "version", Value: bson.D{{Key: "$gt", Value: q.After}}}}
		cur, err := history.Find(ctx, filter,
			options.Find().SetSort(bson.D{{Key: "version", Value: 1}}).SetLimit(int64(q.Limit)))
		if err != nil {
			return nil, wrap("history "+id, err)
		}
		if err := cur.All(ctx, &docs); err != nil {
			return nil, wrap("history "+id, err)
		}
	}
	if len(docs) == 0 {
		known := false
		if q.Limit <= 0 || q.After > 0 {
			err := history.FindOne(ctx, bson.D{{Key: "post_id", Value: id}},
				options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
			if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
				return nil, wrap("history "+id, err)
			}
			known = err == nil
		}
		if !known {
			return nil, fmt.Errorf("history %s: %w", id, ports.ErrNotFound)
		}
	}
	out := make([]ports.HistoryEntry, 0, len(docs))
	for _, d := range docs {
		out = append(out, ports.HistoryEntry{
			EventID: d.EventID, Type: post.EventType(d.Type), OccurredAt: time.UnixMicro(d.OccurredAt).UTC(),
			State: fromStateDoc(d.State),
		})
	}
	return out, nil
}

// Versions yields what the read model holds of each post, in id order, from two cursors read
// side by side: the views sorted by _id and the history entries sorted by post_id, counted as
// they go by. MongoDB serves both from indexes without a sort, the history from the
// post_version index alone; a server that cannot (FerretDB 1.x) sorts each collection once per
// walk. Both are of the same generation.
func (v *Views) Versions(ctx context.Context) iter.Seq2[ports.ViewVersion, error] {
	return func(yield func(ports.ViewVersion, error) bool) {
		posts, history, err := v.cols(ctx)
		if err != nil {
			yield(ports.ViewVersion{}, err)
			return
		}
		views, err := posts.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).
			SetProjection(bson.D{{Key: "version", Value: 1}}))
		if err != nil {
			yield(ports.ViewVersion{}, wrap("versions of the views", err))
			return
		}
		defer func() { _ = views.Close(context.WithoutCancel(ctx)) }()
		entries, err := history.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "post_id", Value: 1}}).
			SetProjection(bson.D{{Key: "_id", Value: 0}, {Key: "post_id", Value: 1}}))
		if err != nil {
			yield(ports.ViewVersion{}, wrap("history entries of the posts", err))
			return
		}
		defer func() { _ = entries.Close(context.WithoutCancel(ctx)) }()

		var view struct {
			ID      string `bson:"_id"`
			Version int64  `bson:"version"`
		}
		var entry struct {
			PostID string `bson:"post_id"`
		}
		nextView := func() (bool, error) { return next(ctx, views, &view, "versions of the views") }
		nextEntry := func() (bool, error) { return next(ctx, entries, &entry, "history entries of the posts") }
		hasView, err := nextView()
		if err != nil {
			yield(ports.ViewVersion{}, err)
			return
		}
		hasEntry, err := nextEntry()
		for err == nil && (hasView || hasEntry) {
			id := view.ID
			if !hasView || (hasEntry && entry.PostID < id) {
				id = entry.PostID
			}
			held := ports.ViewVersion{PostID: id}
			if hasView && view.ID == id {
				held.Current = view.Version
				hasView, err = nextView()
			}
			for err == nil && hasEntry && entry.PostID == id {
				held.History++
				hasEntry, err = nextEntry()
			}
			if err == nil && !yield(held, nil) {
				return
			}
		}
		if err != nil {
			yield(ports.ViewVersion{}, err)
		}
	}
}

// next decodes the cursor's next document into doc; false at the end.
func next(ctx context.Context, cur *mongo.Cursor, doc any, op string) (bool, error) {
	if !cur.Next(ctx) {
		if err := cur.Err(); err != nil {
			return false, wrap(op, err)
		}
		return false, nil
	}
	if err := cur.Decode(doc); err != nil {
		return false, wrap(op, err)
	}
	return true, nil
}

func wrap(op string, err error) error {
	if mongo.IsTimeout(err) || mongo.IsNetworkError(err) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, mongo.ErrClientDisconnected) || strings.Contains(err.Error(), "server selection") {
		return fmt.Errorf("mongo: %s: %w: %w", op, ports.ErrUnavailable, err)
	}
	return fmt.Errorf("mongo: %s: %w", op, err)
}

var _ ports.ViewRebuilder = (*Views)(nil)

// Fresh prepares the next generation's collections, empty and indexed, and returns a read
// model bound to them.
func (v *Views) Fresh(ctx context.Context) (ports.ViewWriter, error) {
	g, err := v.generation(ctx)
	if err != nil {
		return nil, err
	}
	next := g + 1
	p, h := collectionNames(next)
	fresh := &Views{cfg: v.cfg, client: v.client, db: v.db, fixed: true,
		posts: v.db.Collection(p), history: v.db.Collection(h), historyInserts: newInserter(v.cfg.Timeout),
		viewInserts: newInserter(v.cfg.Timeout), lookAfterReplace: v.lookAfterReplace}
	for _, c := range []*mongo.Collection{fresh.posts, fresh.history} {
		if err := c.Drop(ctx); err != nil {
			return nil, wrap("drop "+c.Name(), err)
		}
	}
	if err := fresh.ensureIndexes(ctx); err != nil {
		return nil, err
	}
	v.mu.Lock()
	v.pending = next
	v.mu.Unlock()
	return fresh, nil
}

// Swap makes the generation Fresh prepared the live one with one write, waits until every
// process has re-read it, then drops the previous generation. Readers see the old model, then
// the new one, never neither.
func (v *Views) Swap(ctx context.Context) error {
	v.mu.Lock()
	next := v.pending
	v.mu.Unlock()
	if next == 0 {
		return errors.New("mongo: swap without a fresh read model")
	}
	previous, err := v.generation(ctx)
	if err != nil {
		return err
	}
	_, err = v.db.Collection(metaCollection).UpdateOne(ctx, bson.D{{Key: "_id", Value: metaID}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "generation", Value: next}}}}, options.UpdateOne().SetUpsert(true))
	if err != nil {
		return wrap("swap", err)
	}
	// Every process re-reads the generation within resolveEvery; wait twice that before the
	// old collections go.
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(2 * resolveEvery):
	}
	v.mu.Lock()
	v.resolvedAt = time.Time{}
	v.mu.Unlock()
	p, h := collectionNames(previous)
	for _, name := range []string{p, h} {
		if err := v.db.Collection(name).Drop(ctx); err != nil {
			return wrap("drop "+name, err)
		}
	}
	return nil
}
