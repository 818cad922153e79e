package e2e_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	gonats "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	goredis "github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"hexapost/adapters/wire"
	"hexapost/core/post"
	"hexapost/ports"
	"hexapost/test/harness"
)

// TestErasure erases posts over real processes — the MySQL event store, each real bus and the
// Mongo read model — and looks for their personal data in a dump of every store before and
// after: a post with a dead-lettered change and an idempotent create on record, then every post
// of an author, then a rebuild, then an erasure racing updates.
func TestErasure(t *testing.T) {
	t.Parallel()
	for _, tt := range realBuses {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := tt.bus(t)
			env["POSTS_EVENT_STORE"], env["POSTS_MYSQL_DSN"] = "mysql", mysqlDatabase(t)
			env["POSTS_READ_MODEL"], env["POSTS_MONGO_URI"] = "mongo", mongoDatabase(t)
			env["POSTS_MAX_ATTEMPTS"], env["POSTS_RETRY_BACKOFF"] = "2", "20ms"
			p := start(t, env)
			d := dumper{t: t, env: env}

			marker := "marker" + randomHex(8)
			id := erasePostWithCopies(t, p, d, marker)
			authorMarker := "marker" + randomHex(8)
			ids := eraseAuthor(t, p, d, authorMarker)

			// A rebuild of the read model from the store keeps them erased.
			cmd := exec.Command(binary, "rebuild")
			cmd.Env = append(cmd.Environ(), "POSTS_EVENT_STORE=mysql", "POSTS_MYSQL_DSN="+env["POSTS_MYSQL_DSN"],
				"POSTS_READ_MODEL=mongo", "POSTS_MONGO_URI="+env["POSTS_MONGO_URI"])
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("rebuild: %v\n%s", err, out)
			}
			for _, id := range append(slices.Clone(ids[:5]), id) {
				mustReadErased(t, p, id, 0)
			}
			for _, m := range []string{marker, authorMarker} {
				d.mustNotFind(m)
			}

			eraseRacingUpdates(t, p, d)
			for _, m := range []string{marker, authorMarker} {
				if strings.Contains(p.LogText(), m) {
					t.Errorf("the process's log holds %s", m)
				}
			}
		})
	}
}

// erasePostWithCopies creates a post with marker in every field under an Idempotency-Key,
// updates it, has a change of it dead-lettered, finds marker in every store, erases the post and
// finds it in none. It returns the post's id.
func erasePostWithCopies(t *testing.T, p *process, d dumper, marker string) string {
	key := "key-" + randomHex(8)
	create := map[string]string{"title": "T " + marker, "content": "C " + marker, "author_name": "A " + marker}
	id := do(t, "POST", p.CommandURL+"/posts", create, "Idempotency-Key", key).Must(t, http.StatusCreated).Str("id")
	for i := range 3 {
		do(t, "PATCH", p.CommandURL+"/posts/"+id, map[string]string{"content": fmt.Sprintf("C%d %s", i, marker)}).
			Must(t, http.StatusOK)
	}
	do(t, "GET", p.QueryURL+"/posts/"+id+"?min_version=4", nil).Must(t, http.StatusOK)
	d.publishInvalid(id, marker)
	eventually(t, 20*time.Second, "the invalid change to be dead-lettered", func() bool {
		for _, dl := range do(t, "GET", p.QueryURL+"/admin/dead-letters", nil, harness.AdminAuth()...).
			Must(t, http.StatusOK).Items() {
			if strings.Contains(fmt.Sprint(dl["payload"]), marker) {
				return true
			}
		}
		return false
	})
	d.mustFind(marker)

	r := do(t, "POST", p.CommandURL+"/admin/posts/"+id+"/erase", nil, harness.AdminAuth()...).
		Must(t, http.StatusAccepted)
	if r.Num("version") != 5 || r.Body["erased_before"] != false || r.Num("bus_messages_removed") < 5 {
		t.Errorf("erase answered %s; want version 5, and the 4 changes and the dead letter removed", r.Raw)
	}
	mustReadErased(t, p, id, 5)
	d.mustNotFind(marker)
	// The audit record: the erasure event's metadata in the store, and a log line, each naming
	// the credential.
	if dump := d.dumps()["mysql"]; !strings.Contains(dump, `actor\":\"admin-token:`) {
		t.Error("the store holds no erasure naming its actor")
	}
	audited := false
	for _, l := range p.Logs() {
		audited = audited || l["msg"] == "post erased" && l["audit"] == "erasure" && l["post_id"] == id &&
			strings.HasPrefix(fmt.Sprint(l["by"]), "admin-token:")
	}
	if !audited {
		t.Error("no audit line of the erasure in the log")
	}

	// Commands on it are refused as the reads are; the create's key answers so too.
	for _, c := range []struct{ method, path string }{{"PATCH", "/posts/" + id}, {"DELETE", "/posts/" + id}} {
		g := do(t, c.method, p.CommandURL+c.path, map[string]string{"title": "back"})
		if g.Must(t, http.StatusGone); g.Body["erased"] != true {
			t.Errorf("%s of an erased post: %s, want erased: true", c.method, g.Raw)
		}
	}
	if g := do(t, "POST", p.CommandURL+"/posts", create, "Idempotency-Key", key); g.Status != http.StatusGone ||
		g.Body["erased"] != true {
		t.Errorf("the create's key repeated: %d %s, want 410 erased", g.Status, g.Raw)
	}
	again := do(t, "POST", p.CommandURL+"/admin/posts/"+id+"/erase", nil, harness.AdminAuth()...).
		Must(t, http.StatusAccepted)
	if again.Num("version") != 5 || again.Body["erased_before"] != true {
		t.Errorf("erase repeated: %s, want version 5 erased before", again.Raw)
	}
	do(t, "POST", p.CommandURL+"/admin/posts/"+id+"/erase", nil).Must(t, http.StatusUnauthorized)
	do(t, "POST", p.CommandURL+"/admin/posts/"+newUUID()+"/erase", nil, harness.AdminAuth()...).
		Must(t, http.StatusNotFound)
	d.mustNotFind(marker)
	return id
}

// eraseAuthor creates 50 posts by an author named with marker, updates some, erases the author
// and returns the posts' ids.
func eraseAuthor(t *testing.T, p *process, d dumper, marker string) []string {
	author := "Author " + marker
	versions := map[string]int64{}
	var ids []string
	for i := range 50 {
		id := do(t, "POST", p.CommandURL+"/posts", map[string]string{
			"title": fmt.Sprintf("post %d", i), "content": "by " + marker, "author_name": author,
		}).Must(t, http.StatusCreated).Str("id")
		ids = append(ids, id)
		versions[id] = 1
		if i%10 == 0 {
			do(t, "PATCH", p.CommandURL+"/posts/"+id, map[string]string{"title": "edited " + marker}).Must(t, http.StatusOK)
			versions[id] = 2
		}
	}
	for _, id := range ids {
		do(t, "GET", fmt.Sprintf("%s/posts/%s?min_version=%d", p.QueryURL, id, versions[id]), nil).Must(t, http.StatusOK)
	}
	d.mustFind(marker)
	r := do(t, "POST", p.CommandURL+"/admin/authors/"+url.PathEscape(author)+"/erase", nil, harness.AdminAuth()...).
		Must(t, http.StatusAccepted)
	erased := r.Body["posts"].([]any)
	if len(erased) != len(ids) {
		t.Fatalf("the author's erasure erased %d posts, want %d", len(erased), len(ids))
	}
	for _, e := range erased {
		m := e.(map[string]any)
		id := m["post_id"].(string)
		if int64(m["version"].(float64)) != versions[id]+1 {
			t.Errorf("post %s erased at v%v, want v%d", id, m["version"], versions[id]+1)
		}
		mustReadErased(t, p, id, versions[id]+1)
	}
	if list := do(t, "GET", p.QueryURL+"/posts?author_name="+url.QueryEscape(author), nil).Must(t, http.StatusOK).
		Items(); len(list) != 0 {
		t.Errorf("the author's list shows %d posts after the erasure", len(list))
	}
	d.mustNotFind(marker)
	again := do(t, "POST", p.CommandURL+"/admin/authors/"+url.PathEscape(author)+"/erase", nil,
		harness.AdminAuth()...).Must(t, http.StatusAccepted)
	if n := len(again.Body["posts"].([]any)); n != 0 {
		t.Errorf("the author's erasure repeated found %d posts, want none", n)
	}
	return ids
}

// eraseRacingUpdates erases a post while updates of it are sent: every update answers 200 or
// 410, and the post ends erased with no personal data in any store.
func eraseRacingUpdates(t *testing.T, p *process, d dumper) {
	marker := "marker" + randomHex(8)
	id := do(t, "POST", p.CommandURL+"/posts", map[string]string{
		"title": "T " + marker, "content": "C " + marker, "author_name": "A " + marker,
	}).Must(t, http.StatusCreated).Str("id")
	const updaters = 6
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range updaters {
		wg.Go(func() {
			<-start
			for j := range 5 {
				r := do(t, "PATCH", p.CommandURL+"/posts/"+id, map[string]string{"content": fmt.Sprintf("C%d.%d %s", i, j, marker)})
				if r.Status != http.StatusOK && r.Status != http.StatusGone {
					t.Errorf("update racing the erasure: %d %s", r.Status, r.Raw)
				}
			}
		})
	}
	var version int64
	wg.Go(func() {
		<-start
		version = do(t, "POST", p.CommandURL+"/admin/posts/"+id+"/erase", nil, harness.AdminAuth()...).
			Must(t, http.StatusAccepted).Num("version")
	})
	close(start)
	wg.Wait()
	mustReadErased(t, p, id, version)
	d.mustNotFind(marker)
}

// mustReadErased waits until the post reads erased at version (0: any) and checks its history:
// every version, oldest first, with its type and none of the post's data, the erasure last.
func mustReadErased(t *testing.T, p *process, id string, version int64) {
	t.Helper()
	r := do(t, "GET", fmt.Sprintf("%s/posts/%s?min_version=%d", p.QueryURL, id, version), nil)
	if r.Status != http.StatusGone || r.Body["erased"] != true {
		t.Fatalf("read of erased post %s: %d %s, want 410 with erased: true", id, r.Status, r.Raw)
	}
	var history []map[string]any
	eventually(t, 20*time.Second, "the history of the erasure", func() bool {
		history = harness.MustHistory(t, p.QueryURL, id)
		return len(history) > 0 && history[len(history)-1]["event_type"] == string(post.EventErased)
	})
	for i, h := range history {
		s, _ := h["post"].(map[string]any)
		if h["version"] != float64(i+1) || s["title"] != "" || s["content"] != "" || s["author_name"] != "" ||
			s["erased"] != true || h["occurred_at"] == "" {
			t.Errorf("history of %s, entry %d: %v; want version %d without personal data", id, i, h, i+1)
		}
	}
	if version > 0 && int64(len(history)) != version {
		t.Errorf("history of %s has %d versions, want %d", id, len(history), version)
	}
}

// dumper dumps every store of a test's processes as text.
type dumper struct {
	t   *testing.T
	env map[string]string
}

func (d dumper) mustFind(marker string) {
	d.t.Helper()
	for store, dump := range d.dumps() {
		if !strings.Contains(dump, marker) {
			d.t.Fatalf("%s: the dump does not hold %s before the erasure", store, marker)
		}
	}
}

func (d dumper) mustNotFind(marker string) {
	d.t.Helper()
	for store, dump := range d.dumps() {
		if i := strings.Index(dump, marker); i >= 0 {
			d.t.Errorf("%s: the dump holds %s after the erasure: …%s…", store, marker,
				dump[max(0, i-300):min(len(dump), i+100)])
		}
	}
}

// dumps returns a dump of each store: MySQL by mariadb-dump, every Redis key or every JetStream
// stream's messages, every Mongo collection.
func (d dumper) dumps() map[string]string {
	t := d.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out := map[string]string{"mysql": d.mysql(ctx), "mongo": d.mongo(ctx)}
	if u := d.env["POSTS_REDIS_URL"]; u != "" {
		out["redis"] = d.redis(ctx, u)
	}
	if u := d.env["POSTS_NATS_URL"]; u != "" {
		out["nats"] = d.nats(ctx, u)
	}
	return out
}

func (d dumper) mysql(ctx context.Context) string {
	cfg, err := gomysql.ParseDSN(d.env["POSTS_MYSQL_DSN"])
	if err != nil {
		d.t.Fatal(err)
	}
	host, port, _ := strings.Cut(cfg.Addr, ":")
	out, err := exec.CommandContext(ctx, "mariadb-dump", "--skip-ssl", "-h", host, "-P", port, "-u", cfg.User,
		"-p"+cfg.Passwd, "--single-transaction", cfg.DBName).CombinedOutput()
	if err != nil {
		d.t.Fatalf("mariadb-dump: %v\n%s", err, out)
	}
	return string(out)
}

func (d dumper) redis(ctx context.Context, u string) string {
	opts, err := goredis.ParseURL(u)
	if err != nil {
		d.t.Fatal(err)
	}
	c := goredis.NewClient(opts)
	defer func() { _ = c.Close() }()
	var b strings.Builder
	keys, err := c.Keys(ctx, "*").Result()
	if err != nil {
		d.t.Fatal(err)
	}
	for _, k := range keys {
		var v any
		switch typ := c.Type(ctx, k).Val(); typ {
		case "stream":
			v, err = c.XRange(ctx, k, "-", "+").Result()
		case "string":
			v, err = c.Get(ctx, k).Result()
		case "hash":
			v, err = c.HGetAll(ctx, k).Result()
		case "list":
			v, err = c.LRange(ctx, k, 0, -1).Result()
		case "set":
			v, err = c.SMembers(ctx, k).Result()
		case "zset":
			v, err = c.ZRange(ctx, k, 0, -1).Result()
		default:
			d.t.Fatalf("redis key %s of type %s", k, typ)
		}
		if err != nil {
			d.t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s: %v\n", k, v)
	}
	return b.String()
}

func (d dumper) nats(ctx context.Context, u string) string {
	nc, err := gonats.Connect(u)
	if err != nil {
		d.t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		d.t.Fatal(err)
	}
	var b strings.Builder
	streams := js.ListStreams(ctx)
	for info := range streams.Info() {
		s, err := js.Stream(ctx, info.Config.Name)
		if err != nil {
			d.t.Fatal(err)
		}
		for seq := info.State.FirstSeq; seq > 0 && seq <= info.State.LastSeq; seq++ {
			m, err := s.GetMsg(ctx, seq)
			if err != nil {
				continue // deleted
			}
			fmt.Fprintf(&b, "%s #%d %v %s\n", info.Config.Name, seq, m.Header, m.Data)
		}
	}
	if err := streams.Err(); err != nil {
		d.t.Fatal(err)
	}
	return b.String()
}

func (d dumper) mongo(ctx context.Context) string {
	u, err := url.Parse(d.env["POSTS_MONGO_URI"])
	if err != nil {
		d.t.Fatal(err)
	}
	c, err := mongo.Connect(options.Client().ApplyURI(d.env["POSTS_MONGO_URI"]))
	if err != nil {
		d.t.Fatal(err)
	}
	defer func() { _ = c.Disconnect(ctx) }()
	db := c.Database(strings.TrimPrefix(u.Path, "/"))
	names, err := db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		d.t.Fatal(err)
	}
	var b strings.Builder
	for _, name := range names {
		cur, err := db.Collection(name).Find(ctx, bson.D{})
		if err != nil {
			d.t.Fatal(err)
		}
		var docs []bson.M
		if err := cur.All(ctx, &docs); err != nil {
			d.t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s: %v\n", name, docs)
	}
	return b.String()
}

// publishInvalid puts on the bus a change of the post carrying marker that the projector
// refuses (its state's version is not its event's), so that it ends in the dead letters.
func (d dumper) publishInvalid(id, marker string) {
	t := d.t
	content := "dead " + marker
	payload, err := wire.Encode(ports.Change{
		Event: post.Event{ID: newUUID(), PostID: id, Version: 2, Type: post.EventUpdated, OccurredAt: time.Now(),
			Content: &content},
		State: post.State{ID: id, Version: 3, Content: content},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if u := d.env["POSTS_REDIS_URL"]; u != "" {
		opts, err := goredis.ParseURL(u)
		if err != nil {
			t.Fatal(err)
		}
		c := goredis.NewClient(opts)
		defer func() { _ = c.Close() }()
		if err := c.XAdd(ctx, &goredis.XAddArgs{Stream: "hexapost:changes", Values: map[string]any{"payload": payload}}).
			Err(); err != nil {
			t.Fatal(err)
		}
		return
	}
	nc, err := gonats.Connect(d.env["POSTS_NATS_URL"])
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "hexapost.changes", payload); err != nil {
		t.Fatal(err)
	}
}
