// Package mongo is the read model on MongoDB (or a server that speaks its wire protocol): the
// current view of each post in the posts collection, keyed by post id, and one document per
// version in the history collection.
//
// The version guard is a conditional upsert: replace the view where the stored version is lower;
// when no such view matches, the upsert's insert collides with the existing _id, and that
// duplicate-key answer means "already newer" — counted as applied. Times are stored as integer
// microseconds since the epoch, because BSON dates keep only milliseconds and the list cursor
// and the history must round-trip what the write side recorded.
package mongo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"hexapost/core/post"
	"hexapost/ports"
)

// Config configures Views. Only URI is required.
type Config struct {
	// URI is POSTS_MONGO_URI, e.g. mongodb://127.0.0.1:27017/hexapost; its path names the
	// database (default "hexapost").
	URI string
	// Database overrides the database named by the URI.
	Database string
	// Timeout bounds each call (default 5s).
	Timeout time.Duration
	// Log receives what the adapter reports on its own (default: discarded).
	Log *slog.Logger
}

// Views is the read model on MongoDB.
type Views struct {
	cfg     Config
	client  *mongo.Client
	posts   *mongo.Collection
	history *mongo.Collection
}

var (
	_ ports.ViewWriter = (*Views)(nil)
	_ ports.ViewReader = (*Views)(nil)
	_ ports.Pinger     = (*Views)(nil)
)

// Open connects, proves the server answers and creates the indexes every query needs.
func Open(ctx context.Context, cfg Config) (*Views, error) {
	if cfg.URI == "" {
		return nil, errors.New("mongo: POSTS_MONGO_URI is empty")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	u, err := url.Parse(cfg.URI)
	if err != nil || (u.Scheme != "mongodb" && u.Scheme != "mongodb+srv") {
		return nil, fmt.Errorf("mongo: POSTS_MONGO_URI=%s: not a mongodb:// URI", redact(cfg.URI))
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
		return nil, fmt.Errorf("mongo: POSTS_MONGO_URI=%s: %w", redact(cfg.URI), err)
	}
	v := &Views{cfg: cfg, client: client}
	db := client.Database(cfg.Database)
	v.posts, v.history = db.Collection("posts"), db.Collection("history")
	ctx, cancel := context.WithTimeout(ctx, 2*cfg.Timeout)
	defer cancel()
	if err := client.Ping(ctx, nil); err != nil {
		_ = client.Disconnect(context.Background())
		return nil, fmt.Errorf("mongo: POSTS_MONGO_URI=%s: no answer to ping: %w", redact(cfg.URI), err)
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
	return v, nil
}

// ensureIndexes creates the indexes that are missing. It lists them first rather than asking
// the server to create existing ones again: MongoDB treats that as a no-op, but not every
// MongoDB-wire server does (FerretDB 1.24 drops the connection), and every process start runs it.
func (v *Views) ensureIndexes(ctx context.Context) error {
	wanted := []struct {
		coll   *mongo.Collection
		name   string
		keys   bson.D
		unique bool
	}{
		{v.posts, "list_newest_first", bson.D{{Key: "deleted", Value: 1}, {Key: "created_at", Value: -1}, {Key: "_id", Value: -1}}, false},
		{v.posts, "list_by_author", bson.D{{Key: "author_name", Value: 1}, {Key: "deleted", Value: 1},
			{Key: "created_at", Value: -1}, {Key: "_id", Value: -1}}, false},
		{v.history, "post_version", bson.D{{Key: "post_id", Value: 1}, {Key: "version", Value: 1}}, true},
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
	}
}

func fromStateDoc(d stateDoc) post.State {
	return post.State{
		ID: d.ID, Version: d.Version, Title: d.Title, Content: d.Content, AuthorName: d.AuthorName,
		CreatedAt: time.UnixMicro(d.CreatedAt).UTC(), UpdatedAt: time.UnixMicro(d.UpdatedAt).UTC(), Deleted: d.Deleted,
	}
}

// PutCurrent stores s unless a view with an equal or higher version is there.
func (v *Views) PutCurrent(ctx context.Context, s post.State) (bool, error) {
	doc := toStateDoc(s)
	res, err := v.posts.ReplaceOne(ctx, bson.D{{Key: "_id", Value: s.ID}, {Key: "version", Value: bson.D{{Key: "$lt", Value: s.Version}}}},
		doc, options.Replace().SetUpsert(true))
	if mongo.IsDuplicateKeyError(err) {
		return false, nil // a view with this id and an equal or higher version exists
	}
	if err != nil {
		return false, wrap("put view "+s.ID, err)
	}
	return res.MatchedCount > 0 || res.UpsertedCount > 0, nil
}

// PutHistory stores the entry under (post id, version); a repeat keeps the first.
func (v *Views) PutHistory(ctx context.Context, h ports.HistoryEntry) error {
	_, err := v.history.InsertOne(ctx, historyDoc{
		ID: fmt.Sprintf("%s:%019d", h.State.ID, h.State.Version), PostID: h.State.ID, Version: h.State.Version,
		EventID: h.EventID, Type: string(h.Type), OccurredAt: h.OccurredAt.UnixMicro(), State: toStateDoc(h.State),
	})
	if err != nil && !mongo.IsDuplicateKeyError(err) {
		return wrap("put history "+h.State.ID, err)
	}
	return nil
}

// Get returns the current view of a post.
func (v *Views) Get(ctx context.Context, id string) (post.State, error) {
	var d stateDoc
	err := v.posts.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d)
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
	cur, err := v.posts.Find(ctx, filter, opts)
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

// History returns every stored version of a post, oldest first.
func (v *Views) History(ctx context.Context, id string) ([]ports.HistoryEntry, error) {
	cur, err := v.history.Find(ctx, bson.D{{Key: "post_id", Value: id}},
		options.Find().SetSort(bson.D{{Key: "version", Value: 1}}))
	if err != nil {
		return nil, wrap("history "+id, err)
	}
	var docs []historyDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, wrap("history "+id, err)
	}
	if len(docs) == 0 {
		return nil, fmt.Errorf("history %s: %w", id, ports.ErrNotFound)
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

func wrap(op string, err error) error {
	if mongo.IsTimeout(err) || mongo.IsNetworkError(err) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, mongo.ErrClientDisconnected) || strings.Contains(err.Error(), "server selection") {
		return fmt.Errorf("mongo: %s: %w: %w", op, ports.ErrUnavailable, err)
	}
	return fmt.Errorf("mongo: %s: %w", op, err)
}

// redact hides the password of a mongodb:// URI.
func redact(uri string) string {
	u, err := url.Parse(uri)
	if err != nil || u.User == nil {
		return uri
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
