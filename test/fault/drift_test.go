package fault_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	goredis "github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"hexapost/test/harness"
)

// Reconciliation in the drift scenarios: a pass every 2 seconds, a change in flight on the bus
// given a second to arrive.
var reconcileEnv = []string{"POSTS_RECONCILE_INTERVAL", "2s", "POSTS_RECONCILE_GRACE", "1s"}

// driftSetup is what a drift scenario runs on: a MySQL event store that the query servers read
// too, a Mongo read model, and a bus of its own.
type driftSetup struct {
	dsn, mongoURI string
	cmdEnv        map[string]string
	queryEnv      map[string]string
}

func newDriftSetup(t *testing.T, bus map[string]string, mongoURI string) driftSetup {
	t.Helper()
	dsn := mysqlDatabase(t)
	if mongoURI == "" {
		mongoURI = mongoDatabase(t, "")
	}
	store := with(bus, "POSTS_EVENT_STORE", "mysql", "POSTS_MYSQL_DSN", dsn)
	return driftSetup{
		dsn: dsn, mongoURI: mongoURI, cmdEnv: store,
		queryEnv: with(with(store, "POSTS_READ_MODEL", "mongo", "POSTS_MONGO_URI", mongoURI), reconcileEnv...),
	}
}

// createPosts creates n posts on the command server from 8 clients and records them in l.
func createPosts(t *testing.T, commandURL string, n int, l *ledger) {
	t.Helper()
	var (
		wg   sync.WaitGroup
		next atomic.Int64
	)
	for range 8 {
		wg.Go(func() {
			for {
				i := int(next.Add(1))
				if i > n {
					return
				}
				content := fmt.Sprintf("other %d", i)
				r, err := send("POST", commandURL+"/posts", map[string]string{
					"title": "other", "content": content, "author_name": "drift",
				})
				if err != nil || r.Status != http.StatusCreated {
					t.Errorf("create post %d: %v %d %s", i, err, r.Status, r.Raw)
					return
				}
				l.record(r.Str("id"), 1, content)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

// record adds an acknowledged command to the ledger.
func (l *ledger) record(id string, version int64, content string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sent++
	if version == 1 {
		l.ids = append(l.ids, id)
	}
	l.acks = append(l.acks, ack{id: id, version: version, content: content})
}

// scrapeSum returns the sum of every series of the metric name on url's /metrics, or -1 when
// the metric is not there.
func scrapeSum(t *testing.T, url, name string) float64 {
	t.Helper()
	r := do(t, "GET", url+"/metrics", nil).Must(t, http.StatusOK)
	sum, found := 0.0, false
	for line := range strings.SplitSeq(string(r.Raw), "\n") {
		series, value, ok := strings.Cut(line, " ")
		if !ok || (series != name && !strings.HasPrefix(series, name+"{")) {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Fatalf("%s: %q: %v", name, line, err)
		}
		sum, found = sum+v, true
	}
	if !found {
		return -1
	}
	return sum
}

// published waits until the command server's relay has published everything appended.
func published(t *testing.T, commandURL string) {
	t.Helper()
	eventually(t, time.Minute, "the outbox to be empty", func() bool {
		return scrapeSum(t, commandURL, "hexapost_outbox_backlog") == 0
	})
}

// healed ends a drift scenario: the read model must converge to the store by itself, the query
// servers must have counted the drift they repaired and said so in their logs. It records the
// drifted posts found and the time to heal, from the moment the drift was made, in the row.
func healed(t *testing.T, scenario string, sc scale, s driftSetup, queries []*process, l *ledger, since time.Time) {
	t.Helper()
	urls := make([]string, len(queries))
	for i, q := range queries {
		urls[i] = q.QueryURL
	}
	consistency(t, scenario, sc, s.dsn, urls, l)
	took := time.Since(since)
	drifted, repaired := 0.0, 0.0
	logged := false
	for _, q := range queries {
		drifted += scrapeSum(t, q.QueryURL, "hexapost_reconcile_drifted_posts_total")
		repaired += scrapeSum(t, q.QueryURL, "hexapost_reconcile_repaired_posts_total")
		// The first lines of a process are kept: a bus that found its loss at start says so
		// there, before the lines of the changes it then projected.
		logs := q.Logs()
		logged = logged || strings.Contains(logs, "read model drifted from the event store") ||
			strings.Contains(logs, "reconciled with the event store")
	}
	if drifted < 1 || repaired < 1 {
		t.Errorf("%s: hexapost_reconcile_drifted_posts_total %v, repaired %v; want both ≥ 1", scenario, drifted, repaired)
	}
	if !logged {
		t.Errorf("%s: no query server logged the drift", scenario)
	}
	setDrift(scenario, int(drifted), took)
}

// lostWhileQueryDown is the scenario: a post is read back, the query side stops, the
// post is updated and then the bus loses the update (lose), and a query server started again
// must converge to the store with no operator action.
// With lose nil, the stream's bound is what loses the update: the restarted query server must
// then also have found the loss on the bus at once (hexapost_bus_losses_total).
func lostWhileQueryDown(t *testing.T, scenario string, sc scale, s driftSetup, others int, lose func()) {
	t.Helper()
	l := &ledger{statuses: map[int]int{}}
	command := start(t, s.cmdEnv, "serve", "command")
	query := start(t, s.queryEnv, "serve", "query")
	first := do(t, "POST", command.CommandURL+"/posts", map[string]string{
		"title": "drift", "content": "version 1", "author_name": "drift",
	}).Must(t, http.StatusCreated)
	id := first.Str("id")
	l.record(id, 1, "version 1")
	do(t, "GET", query.QueryURL+"/posts/"+id+"?min_version=1", nil).Must(t, http.StatusOK)

	query.kill(t)
	do(t, "PATCH", command.CommandURL+"/posts/"+id, map[string]string{"content": "version 2"}).Must(t, http.StatusOK)
	l.record(id, 2, "version 2")
	createPosts(t, command.CommandURL, others, l)
	published(t, command.CommandURL)
	if lose != nil {
		lose()
	}
	since := time.Now()
	query = start(t, s.queryEnv, "serve", "query")
	healed(t, scenario, sc, s, []*process{query}, l, since)
	if lose == nil {
		if n := scrapeSum(t, query.QueryURL, `hexapost_bus_losses_total{cause="trimmed"}`); n < 1 {
			t.Errorf("%s: hexapost_bus_losses_total{cause=\"trimmed\"} = %v, want ≥ 1", scenario, n)
		}
	}
}

func TestFaultDrift(t *testing.T) {
	t.Parallel()
	sc := currentScale()

	t.Run("9 stream bound exceeded while the query side is down, redis", func(t *testing.T) {
		t.Parallel()
		_, redisURL := startRedis(t)
		s := newDriftSetup(t, map[string]string{"POSTS_BUS": "redis", "POSTS_REDIS_URL": redisURL,
			"POSTS_REDIS_MAXLEN": "1000"}, "")
		lostWhileQueryDown(t, "9 bound exceeded, query down, redis", sc, s, 3000, nil)
	})

	t.Run("9 stream bound exceeded while the query side is down, nats", func(t *testing.T) {
		t.Parallel()
		_, natsURL := startNATS(t)
		s := newDriftSetup(t, map[string]string{"POSTS_BUS": "nats", "POSTS_NATS_URL": natsURL,
			"POSTS_NATS_MAX_MSGS": "1000"}, "")
		lostWhileQueryDown(t, "9 bound exceeded, query down, nats", sc, s, 3000, nil)
	})

	t.Run("10 bus data lost, redis flushed", func(t *testing.T) {
		t.Parallel()
		_, redisURL := startRedis(t)
		s := newDriftSetup(t, map[string]string{"POSTS_BUS": "redis", "POSTS_REDIS_URL": redisURL}, "")
		lostWhileQueryDown(t, "10 bus data lost, redis flushed", sc, s, 200, func() {
			opts, err := goredis.ParseURL(redisURL)
			if err != nil {
				t.Fatal(err)
			}
			c := goredis.NewClient(opts)
			defer func() { _ = c.Close() }()
			if err := c.FlushAll(t.Context()).Err(); err != nil {
				t.Fatalf("flush redis: %v", err)
			}
		})
	})

	t.Run("10 bus data lost, jetstream stream deleted", func(t *testing.T) {
		t.Parallel()
		_, natsURL := startNATS(t)
		s := newDriftSetup(t, map[string]string{"POSTS_BUS": "nats", "POSTS_NATS_URL": natsURL}, "")
		lostWhileQueryDown(t, "10 bus data lost, stream deleted", sc, s, 200, func() {
			nc, err := nats.Connect(natsURL)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			if err := js.DeleteStream(t.Context(), "HEXAPOST_CHANGES"); err != nil {
				t.Fatalf("delete the stream: %v", err)
			}
		})
	})

	t.Run("11 dead letter discarded", func(t *testing.T) {
		t.Parallel()
		discardedDeadLetter(t, sc)
	})

	t.Run("12 view and history entry removed by hand", func(t *testing.T) {
		t.Parallel()
		removedByHand(t, sc)
	})
}

// discardedDeadLetter: a change whose projection the read model refuses goes to the dead
// letters; the operator discards it instead of redriving it. The store is the truth: the post
// is drift, and it is repaired once the read model takes it again.
func discardedDeadLetter(t *testing.T, sc scale) {
	_, redisURL := startRedis(t)
	_, ferretURI, pgURL := startFerretDB(t)
	s := newDriftSetup(t, map[string]string{"POSTS_BUS": "redis", "POSTS_REDIS_URL": redisURL,
		"POSTS_MAX_ATTEMPTS": "2", "POSTS_RETRY_BACKOFF": "50ms"}, mongoDatabase(t, ferretURI))
	l := &ledger{statuses: map[int]int{}}
	command := start(t, s.cmdEnv, "serve", "command")
	query := start(t, s.queryEnv, "serve", "query")
	createPosts(t, command.CommandURL, 20, l) // the query server creates the collections
	published(t, command.CommandURL)
	const refusedTitle = "refused, then discarded"
	heal := refuseHistory(t, pgURL, s.mongoURI, refusedTitle)
	r := do(t, "POST", command.CommandURL+"/posts", map[string]string{
		"title": refusedTitle, "content": "its projection fails", "author_name": "drift",
	}).Must(t, http.StatusCreated)
	l.record(r.Str("id"), 1, "its projection fails")
	var dead []map[string]any
	eventually(t, time.Minute, "the refused change in the dead letters", func() bool {
		dead = do(t, "GET", query.QueryURL+"/admin/dead-letters", nil, harness.AdminAuth()...).Must(t, http.StatusOK).Items()
		return len(dead) == 1
	})
	if err := heal(); err != nil {
		t.Fatal(err)
	}
	do(t, "DELETE", query.QueryURL+"/admin/dead-letters/"+dead[0]["id"].(string), nil, harness.AdminAuth()...).
		Must(t, http.StatusNoContent)
	healed(t, "11 dead letter discarded", sc, s, []*process{query}, l, time.Now())
}

// removedByHand: someone deletes a post's current view and another post's history entry from
// the read model; the query servers put both back.
func removedByHand(t *testing.T, sc scale) {
	_, redisURL := startRedis(t)
	s := newDriftSetup(t, map[string]string{"POSTS_BUS": "redis", "POSTS_REDIS_URL": redisURL}, "")
	l := &ledger{statuses: map[int]int{}}
	command := start(t, s.cmdEnv, "serve", "command")
	q1, q2 := start(t, s.queryEnv, "serve", "query"), start(t, s.queryEnv, "serve", "query")
	createPosts(t, command.CommandURL, 50, l)
	for _, id := range l.ids[:2] {
		do(t, "GET", q1.QueryURL+"/posts/"+id+"?min_version=1", nil).Must(t, http.StatusOK)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	client, err := mongo.Connect(options.Client().ApplyURI(s.mongoURI))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = client.Disconnect(context.Background()) }()
	u, err := url.Parse(s.mongoURI)
	if err != nil {
		t.Fatal(err)
	}
	db := client.Database(strings.TrimPrefix(u.Path, "/"))
	since := time.Now()
	if res, err := db.Collection("posts").DeleteOne(ctx, bson.D{{Key: "_id", Value: l.ids[0]}}); err != nil || res.DeletedCount != 1 {
		t.Fatalf("delete the view of %s: %v, %+v", l.ids[0], err, res)
	}
	if res, err := db.Collection("history").DeleteOne(ctx, bson.D{{Key: "post_id", Value: l.ids[1]}}); err != nil || res.DeletedCount != 1 {
		t.Fatalf("delete the history entry of %s: %v, %+v", l.ids[1], err, res)
	}
	healed(t, "12 view and history removed by hand", sc, s, []*process{q1, q2}, l, since)
	if repaired := scrapeSum(t, q1.QueryURL, "hexapost_reconcile_repaired_posts_total") +
		scrapeSum(t, q2.QueryURL, "hexapost_reconcile_repaired_posts_total"); repaired != 2 {
		t.Errorf("the two query servers repaired %v posts between them, want 2: each drifted post once", repaired)
	}
}
