package fault_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hexapost/adapters/redis"
	"hexapost/adapters/wire"
	"hexapost/core/post"
	"hexapost/ports"
	"hexapost/test/harness"
)

// rss is the resident set size of the process in bytes, from /proc.
func rss(t *testing.T, p *process) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc status")
	return 0
}

// badRequest is a request that must be refused with a 4xx and change nothing.
type badRequest struct {
	name, method, path string
	query              bool // sent to the query server
	body               string
	headers            []string
}

func badRequests(id string) []badRequest {
	huge := `{"title":"t","author_name":"a","content":"` + strings.Repeat("x", 1<<20) + `"}`
	deep := `{"title":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}`
	return []badRequest{
		{name: "oversized create", method: "POST", path: "/posts", body: huge},
		{name: "oversized update", method: "PATCH", path: "/posts/" + id, body: huge},
		{name: "title too long", method: "PATCH", path: "/posts/" + id, body: `{"title":"` + strings.Repeat("é", 201) + `"}`},
		{name: "malformed JSON", method: "POST", path: "/posts", body: `{"title": "t",`},
		{name: "deeply nested", method: "PATCH", path: "/posts/" + id, body: deep},
		{name: "title a number", method: "POST", path: "/posts", body: `{"title":42,"content":"c","author_name":"a"}`},
		{name: "content an object", method: "PATCH", path: "/posts/" + id, body: `{"content":{"a":1}}`},
		{name: "not an object", method: "POST", path: "/posts", body: `[1,2,3]`},
		{name: "unknown field", method: "PATCH", path: "/posts/" + id, body: `{"titel":"x"}`},
		{name: "empty patch", method: "PATCH", path: "/posts/" + id, body: `{}`},
		{name: "non-UUID id", method: "PATCH", path: "/posts/../../etc", body: `{"title":"x"}`},
		{name: "If-Match garbage", method: "PATCH", path: "/posts/" + id, body: `{"title":"x"}`, headers: []string{"If-Match", "banana"}},
		{name: "Idempotency-Key too long", method: "PATCH", path: "/posts/" + id, body: `{"title":"x"}`,
			headers: []string{"Idempotency-Key", strings.Repeat("k", 10_000)}},
		{name: "huge limit", method: "GET", path: "/posts?limit=99999999999999999999", query: true},
		{name: "limit a million", method: "GET", path: "/posts?limit=1000000", query: true},
		{name: "negative limit", method: "GET", path: "/posts?limit=-1", query: true},
		{name: "forged cursor", method: "GET", path: "/posts?cursor=" + strings.Repeat("A", 4096), query: true},
		{name: "absurd min_version", method: "GET", path: "/posts/" + id + "?min_version=99999999999999999999", query: true},
		{name: "negative min_version", method: "GET", path: "/posts/" + id + "?min_version=-9223372036854775808", query: true},
		{name: "min_version not a number", method: "GET", path: "/posts/" + id + "?min_version=1e308", query: true},
	}
}

// floodScenario sends sc.commands bad requests from 4 clients, interleaved with the good load;
// every bad one must get a 4xx, every good one must be applied, the process must not restart
// and its memory must stay bounded.
func floodScenario(t *testing.T, sc scale) {
	dsn := mysqlDatabase(t)
	p := start(t, map[string]string{"POSTS_EVENT_STORE": "mysql", "POSTS_MYSQL_DSN": dsn})
	target := do(t, "POST", p.CommandURL+"/posts", map[string]string{
		"title": "target", "content": "bad requests must not change it", "author_name": "flood",
	}).Must(t, http.StatusCreated).Str("id")
	reqs := badRequests(target)
	var (
		before, peak int64
		refused      atomic.Int64
		wrong        sync.Map
	)
	l := runLoad(t, sc, newTargets(p.CommandURL), loadPlan{marks: []int{1}}, func(reached []chan struct{}) {
		<-reached[0]
		before = rss(t, p)
		var next atomic.Int64
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for {
					n := next.Add(1)
					if n > int64(sc.commands) {
						return
					}
					b := reqs[int(n)%len(reqs)]
					base := p.CommandURL
					if b.query {
						base = p.QueryURL
					}
					var body any
					if b.body != "" {
						body = b.body
					}
					r, err := send(b.method, base+b.path, body, b.headers...)
					if err != nil || r.Status < 400 || r.Status >= 500 {
						wrong.Store(b.name, fmt.Sprintf("%v %d %.200s", err, r.Status, r.Raw))
						continue
					}
					refused.Add(1)
				}
			})
		}
		wg.Wait()
		peak = rss(t, p)
	})
	wrong.Range(func(k, v any) bool { t.Errorf("bad request %q: %v, want a 4xx", k, v); return true })
	if n := len(l.acks); n != sc.commands {
		t.Errorf("%d of %d good commands acknowledged: %s", n, sc.commands, l.summary())
	}
	if !p.alive() {
		t.Fatalf("hexapost exited under the flood; logs:\n%s", p.Logs())
	}
	do(t, "GET", p.CommandURL+"/healthz", nil).Must(t, http.StatusOK)
	got := do(t, "GET", p.QueryURL+"/posts/"+target+"?min_version=1", nil).Must(t, http.StatusOK)
	if got.Num("version") != 1 {
		t.Errorf("bad requests changed the target post: %s", got.Raw)
	}
	// Bodies over 1 MiB are refused before they are read whole; a leak would grow with the
	// flood. The bound leaves room for the race detector's shadow memory and the heap's slack.
	const bound = 256 << 20
	t.Logf("%d bad requests refused with a 4xx; RSS %d MiB before, %d MiB after", refused.Load(), before>>20, peak>>20)
	if peak-before > bound {
		t.Errorf("RSS grew from %d MiB to %d MiB under the flood (bound +%d MiB)", before>>20, peak>>20, bound>>20)
	}
	consistency(t, "8 flood of bad requests", sc, dsn, []string{p.QueryURL}, l)
}

// deadLetterScenario publishes, in the middle of the load, a message that cannot be decoded and
// one that decodes but that the projector rejects on every attempt, and creates a post whose
// history the read model refuses to store (a PostgreSQL trigger under FerretDB). All three must
// reach the dead letters — the first at once, the others after POSTS_MAX_ATTEMPTS — while every
// other post is projected. Once the trigger is dropped, the operator's redrive of the refused
// change repairs that post's view and history. The redrive of the rejected one puts it back
// through the projector, where it fails its attempts again (the fault is in the message), and
// discarding the other two empties the dead letters.
func deadLetterScenario(t *testing.T, sc scale) {
	_, redisURL := startRedis(t)
	_, ferretURI, pgURL := startFerretDB(t)
	dsn := mysqlDatabase(t)
	bus := map[string]string{"POSTS_BUS": "redis", "POSTS_REDIS_URL": redisURL,
		"POSTS_MAX_ATTEMPTS": "3", "POSTS_RETRY_BACKOFF": "50ms"}
	mongoURI := mongoDatabase(t, ferretURI)
	query := start(t, with(bus, "POSTS_READ_MODEL", "mongo", "POSTS_MONGO_URI", mongoURI), "serve", "query")
	command := start(t, with(bus, "POSTS_EVENT_STORE", "mysql", "POSTS_MYSQL_DSN", dsn), "serve", "command")
	const refusedTitle = "refused by the read model"
	heal := refuseHistory(t, pgURL, mongoURI, refusedTitle) // the query server has created the collections

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	raw, err := redis.Open(ctx, redis.Config{URL: redisURL, Consumer: "fault-injector"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = raw.Close() }()
	now := time.Now().UTC().Truncate(time.Microsecond)
	content := "rejected"
	invalid, err := wire.Encode(ports.Change{
		Event: post.Event{ID: "00000000-0000-7000-8000-00000000dead", PostID: "0190b6a0-0000-7000-8000-000000000001",
			Version: 2, Type: post.EventUpdated, OccurredAt: now, Content: &content},
		// The state is of version 7 for an event of version 2: the projector refuses it.
		State: post.State{ID: "0190b6a0-0000-7000-8000-000000000001", Version: 7, Title: "t", Content: content,
			AuthorName: "a", CreatedAt: now, UpdatedAt: now},
	})
	if err != nil {
		t.Fatal(err)
	}
	var refusedID string
	l := runLoad(t, sc, newTargets(command.CommandURL), loadPlan{marks: thirds(sc)[:1]}, func(reached []chan struct{}) {
		<-reached[0]
		for _, payload := range [][]byte{[]byte("{not json"), invalid} {
			if err := raw.PublishRaw(ctx, payload); err != nil {
				t.Errorf("publish poison: %v", err)
			}
		}
		r, err := send("POST", command.CommandURL+"/posts", map[string]string{
			"title": refusedTitle, "content": "its projection fails", "author_name": "fault",
		})
		if err != nil || r.Status != http.StatusCreated {
			t.Errorf("create the refused post: %v %d %s", err, r.Status, r.Raw)
			return
		}
		refusedID = r.Str("id")
	})
	if refusedID == "" {
		t.FailNow()
	}
	l.mu.Lock()
	l.sent++
	l.acks = append(l.acks, ack{id: refusedID, version: 1, content: "its projection fails"})
	l.mu.Unlock()

	var dead []map[string]any
	eventually(t, 30*time.Second, "three messages in the dead letters", func() bool {
		dead = do(t, "GET", query.QueryURL+"/admin/dead-letters", nil, harness.AdminAuth()...).Must(t, http.StatusOK).Items()
		return len(dead) == 3
	})
	byPayload, byPost := map[string]map[string]any{}, map[string]map[string]any{}
	for _, d := range dead {
		byPayload[d["payload"].(string)] = d
		if id, ok := d["post_id"].(string); ok {
			byPost[id] = d
		}
	}
	poison, rejected, refused := byPayload["{not json"], byPayload[string(invalid)], byPost[refusedID]
	if poison == nil || rejected == nil || refused == nil {
		t.Fatalf("dead letters %v, want the poison message, the rejected change and the change of post %s", dead, refusedID)
	}
	if rejected["attempts"] != float64(3) || !strings.Contains(rejected["reason"].(string), "invalid change") {
		t.Errorf("rejected change dead-lettered after %v attempts (%v), want 3", rejected["attempts"], rejected["reason"])
	}
	if !strings.Contains(strings.ToLower(poison["reason"].(string)), "undecodable") {
		t.Errorf("poison message dead-lettered with reason %v, want undecodable", poison["reason"])
	}
	if refused["attempts"] != float64(3) || refused["version"] != float64(1) ||
		!strings.Contains(refused["reason"].(string), "fault suite refuses the history of post "+refusedID) {
		t.Errorf("refused change (version %v) dead-lettered after %v attempts (%v), want version 1 after 3 with the trigger's exception",
			refused["version"], refused["attempts"], refused["reason"])
	}

	// Everything but the refused post is projected while its change waits in the dead letters.
	posts, _, _ := readStore(t, dsn)
	if posts[refusedID] == nil {
		t.Fatalf("post %s is not in the event store", refusedID)
	}
	delete(posts, refusedID)
	if n, _, _ := awaitPosts(t, posts, []string{query.QueryURL}, time.Now().Add(sc.converge)); n != len(posts) {
		t.Errorf("%d of %d other posts projected beside the dead letters", n, len(posts))
	}
	for _, path := range []string{"/posts/" + refusedID, "/posts/" + refusedID + "/history"} {
		do(t, "GET", query.QueryURL+path, nil).Must(t, http.StatusNotFound)
	}

	// The fault removed, the operator's redrive repairs the view and the history.
	if err := heal(); err != nil {
		t.Fatalf("drop the trigger: %v", err)
	}
	do(t, "POST", query.QueryURL+"/admin/dead-letters/"+refused["id"].(string)+"/redrive", nil, harness.AdminAuth()...).Must(t, http.StatusAccepted)
	consistency(t, "6 poison + failing projection", sc, dsn, []string{query.QueryURL}, l)

	do(t, "POST", query.QueryURL+"/admin/dead-letters/"+rejected["id"].(string)+"/redrive", nil, harness.AdminAuth()...).Must(t, http.StatusAccepted)
	eventually(t, 30*time.Second, "the redriven change back in the dead letters after its attempts", func() bool {
		for _, d := range do(t, "GET", query.QueryURL+"/admin/dead-letters", nil, harness.AdminAuth()...).Must(t, http.StatusOK).Items() {
			if d["payload"] == string(invalid) && d["attempts"] == float64(3) {
				rejected = d
				return true
			}
		}
		return false
	})
	for _, d := range []map[string]any{poison, rejected} {
		do(t, "DELETE", query.QueryURL+"/admin/dead-letters/"+d["id"].(string), nil, harness.AdminAuth()...).Must(t, http.StatusNoContent)
	}
	if n := len(do(t, "GET", query.QueryURL+"/admin/dead-letters", nil, harness.AdminAuth()...).Must(t, http.StatusOK).Items()); n != 0 {
		t.Errorf("%d dead letters after discarding two and repairing one, want 0", n)
	}
}
