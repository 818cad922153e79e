package e2e_test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hexapost/test/harness"
)

// TestRebuild runs `hexapost rebuild` while the server keeps serving reads and taking commands:
// after 500 random commands over 50 posts it rebuilds the MongoDB read model from MySQL. Every
// read during the rebuild must answer as before it (never an empty read model), and afterwards
// every view and history must equal what the commands produced, the concurrent ones included.
func TestRebuild(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"POSTS_EVENT_STORE": "mysql", "POSTS_MYSQL_DSN": mysqlDatabase(t),
		"POSTS_READ_MODEL": "mongo", "POSTS_MONGO_URI": mongoDatabase(t),
	}
	p := start(t, env)
	type final struct {
		version int64
		content string
		deleted bool
	}
	var mu sync.Mutex
	want := map[string]final{}
	record := func(r response) {
		mu.Lock()
		defer mu.Unlock()
		id := r.Str("id")
		if r.Num("version") > want[id].version {
			want[id] = final{version: r.Num("version"), content: r.Str("content"), deleted: r.Body["deleted"] == true}
		}
	}
	const posts = 50
	ids := make([]string, posts)
	for i := range ids {
		r := do(t, "POST", p.CommandURL+"/posts", map[string]string{
			"title": fmt.Sprintf("post %d", i), "content": "v1", "author_name": "rebuild",
		}).Must(t, http.StatusCreated)
		ids[i] = r.Str("id")
		record(r)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for n := range 440 {
		id := ids[rng.IntN(posts)]
		record(do(t, "PATCH", p.CommandURL+"/posts/"+id, map[string]string{"content": fmt.Sprintf("c%d", n)}).
			Must(t, http.StatusOK))
	}
	for _, id := range ids[:10] { // the last 10 of the 500 commands delete the first 10 posts
		record(do(t, "DELETE", p.CommandURL+"/posts/"+id, nil).Must(t, http.StatusOK))
	}
	live := ids[10:]

	// Reads and writes go on during the rebuild, bounded in count.
	const maxWritesDuring, maxReadsDuring = 400, 20_000
	stop := make(chan struct{})
	var wg sync.WaitGroup
	// Every read finds the post: the swap never leaves readers with neither model. A read the
	// test server is too starved to answer within the read model's timeout gets 503, as it
	// should; that is counted, not failed, as long as reads do succeed during the rebuild.
	var reads, okReads, unavailable, writes atomic.Int64
	for range 4 {
		wg.Go(func() {
			for i := range maxReadsDuring {
				select {
				case <-stop:
					return
				default:
				}
				r := do(t, "GET", p.QueryURL+"/posts/"+live[i%len(live)], nil)
				reads.Add(1)
				switch r.Status {
				case http.StatusOK:
					okReads.Add(1)
				case http.StatusServiceUnavailable:
					unavailable.Add(1)
				default:
					t.Errorf("read during the rebuild: %d %s", r.Status, r.Raw)
				}
			}
		})
	}
	wg.Go(func() {
		for i := range maxWritesDuring { // bounded in count, and by the rebuild in time
			select {
			case <-stop:
				return
			default:
			}
			record(do(t, "PATCH", p.CommandURL+"/posts/"+live[i%len(live)],
				map[string]string{"content": fmt.Sprintf("during %d", i)}).Must(t, http.StatusOK))
			writes.Add(1)
		}
	})

	cmd := exec.Command(binary, "rebuild")
	cmd.Env = append(cmd.Environ(), "POSTS_EVENT_STORE=mysql", "POSTS_MYSQL_DSN="+env["POSTS_MYSQL_DSN"],
		"POSTS_READ_MODEL=mongo", "POSTS_MONGO_URI="+env["POSTS_MONGO_URI"])
	begin := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("rebuild: %v\n%s", err, out)
	}
	took := time.Since(begin)
	close(stop)
	wg.Wait()
	if okReads.Load() == 0 || unavailable.Load() > reads.Load()/10 {
		t.Errorf("during the rebuild %d reads, %d answered 200 and %d 503; want nearly all 200",
			reads.Load(), okReads.Load(), unavailable.Load())
	}

	for id, w := range want {
		url := fmt.Sprintf("%s/posts/%s?min_version=%d", p.QueryURL, id, w.version)
		r := do(t, "GET", url, nil)
		if w.deleted {
			r.Must(t, http.StatusGone)
		} else if r.Must(t, http.StatusOK); r.Num("version") != w.version || r.Str("content") != w.content {
			t.Errorf("%s: view v%d %q, want v%d %q", id, r.Num("version"), r.Str("content"), w.version, w.content)
		}
		history := harness.MustHistory(t, p.QueryURL, id)
		if int64(len(history)) != w.version {
			t.Errorf("%s: %d history entries, want %d", id, len(history), w.version)
		}
		for i, h := range history {
			if h["version"] != float64(i+1) {
				t.Errorf("%s: history[%d] is version %v", id, i, h["version"])
				break
			}
		}
	}
	t.Logf("rebuild took %s; during it %d reads (%d answered 503) and %d commands, all in the rebuilt read model",
		took.Round(time.Millisecond), reads.Load(), unavailable.Load(), writes.Load())
}
