package e2e_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// sseEvent is one Server-Sent Event as a client reads it.
type sseEvent struct {
	ID, Name string
	Data     json.RawMessage
	// Received is when the event's last line was read.
	Received time.Time
}

// change is the data of a change event.
type change struct {
	Version   int64  `json:"version"`
	EventType string `json:"event_type"`
	Post      struct {
		ID         string `json:"id"`
		Version    int64  `json:"version"`
		AuthorName string `json:"author_name"`
	} `json:"post"`
}

// sseClient follows GET /changes: it keeps every event it read, and the id of the last one,
// as EventSource does, for reconnecting.
type sseClient struct {
	mu     sync.Mutex
	events []sseEvent
	lastID string
	ended  chan struct{} // closed when the stream in hand ended
	cancel context.CancelFunc
}

// follow connects to url (with Last-Event-ID when the client has one) and reads in the
// background until the stream ends or stop. It fails the test unless the answer is a 200
// event stream.
func (c *sseClient) follow(t testing.TB, url string) {
	t.Helper()
	if err := c.connect(url); err != nil {
		t.Fatal(err)
	}
}

// connect is follow, for a goroutine of the test's: it returns what follow fails with.
func (c *sseClient) connect(url string) error {
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		cancel()
		return err
	}
	c.mu.Lock()
	if c.lastID != "" {
		req.Header.Set("Last-Event-ID", c.lastID)
	}
	c.cancel, c.ended = cancel, make(chan struct{})
	ended := c.ended
	c.mu.Unlock()
	resp, err := http.DefaultClient.Do(req) //nolint:bodyclose // the reading goroutine closes it
	if err != nil {
		cancel()
		close(ended)
		return err
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		cancel()
		close(ended)
		_ = resp.Body.Close()
		return fmt.Errorf("GET %s: %s, Content-Type %q", url, resp.Status, resp.Header.Get("Content-Type"))
	}
	go func() {
		defer close(ended)
		defer func() { _ = resp.Body.Close() }()
		c.read(bufio.NewReaderSize(resp.Body, 64<<10))
	}()
	return nil
}

// read parses the stream into events until it ends.
func (c *sseClient) read(r *bufio.Reader) {
	var e sseEvent
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if e.Data != nil {
				e.Received = time.Now()
				c.mu.Lock()
				c.events = append(c.events, e)
				if e.ID != "" {
					c.lastID = e.ID
				}
				c.mu.Unlock()
			}
			e = sseEvent{}
		case strings.HasPrefix(line, "id: "):
			e.ID = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			e.Name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			e.Data = json.RawMessage(strings.TrimPrefix(line, "data: "))
		}
	}
}

// stop closes the stream in hand and waits until the reader is done.
func (c *sseClient) stop() {
	c.mu.Lock()
	cancel, ended := c.cancel, c.ended
	c.mu.Unlock()
	if cancel != nil {
		cancel()
		<-ended
	}
}

func (c *sseClient) snapshot() []sseEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.events)
}

func (c *sseClient) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.events)
}

// versions returns, per post, the versions of the change events in the order received, and
// fails on any other event.
func versions(t *testing.T, events []sseEvent) map[string][]int64 {
	t.Helper()
	out := map[string][]int64{}
	for _, e := range events {
		if e.Name != "" {
			t.Errorf("unexpected %s event %s", e.Name, e.Data)
			continue
		}
		var c change
		if err := json.Unmarshal(e.Data, &c); err != nil {
			t.Fatalf("change event %s: %v", e.Data, err)
		}
		if c.Version != c.Post.Version {
			t.Errorf("event of version %d carries the post at version %d", c.Version, c.Post.Version)
		}
		out[c.Post.ID] = append(out[c.Post.ID], c.Version)
	}
	return out
}

// commandLog is what a command mix was acknowledged: per post, the author after each version.
type commandLog struct {
	mu      sync.Mutex
	authors map[string][]string // post id → author after version i+1
}

func (l *commandLog) ack(t testing.TB, r response) {
	id, v, author := r.Str("id"), r.Num("version"), r.Str("author_name")
	l.mu.Lock()
	defer l.mu.Unlock()
	if int64(len(l.authors[id])) != v-1 {
		t.Errorf("post %s: version %d acknowledged after %d", id, v, len(l.authors[id]))
	}
	l.authors[id] = append(l.authors[id], author)
}

// total is the number of changes acknowledged.
func (l *commandLog) total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, as := range l.authors {
		n += len(as)
	}
	return n
}

// want returns, per post, the versions a client with the filter must receive, in order.
func (l *commandLog) want(postID, author string) map[string][]int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string][]int64{}
	for id, as := range l.authors {
		for i, a := range as {
			if (postID == "" || id == postID) && (author == "" || a == author) {
				out[id] = append(out[id], int64(i+1))
			}
		}
	}
	return out
}

var mixAuthors = []string{"ann", "bob", "cy"}

// runMix sends n commands from workers clients, each on posts of its own: about one create in
// seven, one delete in thirty, updates otherwise, some of which change the author. progress,
// when not nil, is called after each acknowledged command.
func runMix(t testing.TB, commandURL string, n, workers int, log *commandLog, progress func()) {
	t.Helper()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			var live []string
			for i := range n / workers {
				var r response
				switch {
				case len(live) == 0 || i%7 == 0:
					r = do(t, "POST", commandURL+"/posts", map[string]string{
						"title": fmt.Sprintf("w%d-%d", w, i), "content": "c", "author_name": mixAuthors[i%3]})
					r.Must(t, http.StatusCreated)
					live = append(live, r.Str("id"))
				case i%30 == 29:
					id := live[0]
					live = live[1:]
					r = do(t, "DELETE", commandURL+"/posts/"+id, nil).Must(t, http.StatusOK)
				default:
					body := map[string]string{"title": fmt.Sprintf("w%d-%d", w, i)}
					if i%5 == 0 {
						body["author_name"] = mixAuthors[(i/5)%3]
					}
					r = do(t, "PATCH", commandURL+"/posts/"+live[i%len(live)], body).Must(t, http.StatusOK)
				}
				log.ack(t, r)
				if progress != nil {
					progress()
				}
			}
		})
	}
	wg.Wait()
}

// TestChangesFeed runs a 2 000-command mix over each real bus with two query servers that
// share one consumer group, and checks that a client on each receives every change in each
// post's version order, once; that filters hold; that a client that disconnects mid-stream
// and reconnects to the other server with Last-Event-ID misses nothing; and that a position
// that fell out of the bus's retention gets a reset.
func TestChangesFeed(t *testing.T) {
	t.Parallel()
	const commands, retention = 2000, 1000
	for _, tt := range realBuses {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := tt.bus(t)
			env["POSTS_REDIS_MAXLEN"], env["POSTS_NATS_MAX_MSGS"] = fmt.Sprint(retention), fmt.Sprint(retention)
			env["POSTS_CHANGES_BUFFER"] = "4096" // the clients keep up; none is to be cut off
			queries := []*process{start(t, env, "serve", "query"), start(t, env, "serve", "query")}
			env["POSTS_EVENT_STORE"], env["POSTS_MYSQL_DSN"] = "mysql", mysqlDatabase(t)
			command := start(t, env, "serve", "command")

			log := &commandLog{authors: map[string][]string{}}
			full := []*sseClient{{}, {}}
			for i, c := range full {
				c.follow(t, queries[i].QueryURL+"/changes")
				t.Cleanup(c.stop)
			}
			byPost, byAuthor, reconnecting := &sseClient{}, &sseClient{}, &sseClient{}
			byAuthor.follow(t, queries[0].QueryURL+"/changes?author_name=bob")
			reconnecting.follow(t, queries[0].QueryURL+"/changes")
			for _, c := range []*sseClient{byPost, byAuthor, reconnecting} {
				t.Cleanup(c.stop)
			}

			// The post_id client follows a post from after its first version on.
			followed := do(t, "POST", command.CommandURL+"/posts",
				map[string]string{"title": "followed", "content": "c", "author_name": "ann"}).Must(t, http.StatusCreated)
			log.ack(t, followed)
			followedID := followed.Str("id")
			eventually(t, 30*time.Second, "the followed post's creation", func() bool { return full[0].count() > 0 })
			byPost.lastID = full[0].snapshot()[0].ID
			byPost.follow(t, queries[1].QueryURL+"/changes?post_id="+followedID)
			for v := range 4 {
				r := do(t, "PATCH", command.CommandURL+"/posts/"+followedID,
					map[string]string{"title": fmt.Sprint("followed ", v)}).Must(t, http.StatusOK)
				log.ack(t, r)
			}

			// The reconnecting client goes away once it has 300 changes and comes back, to the
			// other server, 300 changes later (by the first full client's count).
			dropped := make(chan int, 1)
			var once sync.Once
			reconnected := make(chan error, 1)
			go func() {
				at, ok := <-dropped
				if !ok {
					reconnected <- fmt.Errorf("the reconnecting client never had 300 changes")
					return
				}
				for deadline := time.Now().Add(90 * time.Second); full[0].count() < at+300 && time.Now().Before(deadline); {
					time.Sleep(5 * time.Millisecond) // polls the count, as eventually does
				}
				reconnected <- reconnecting.connect(queries[1].QueryURL + "/changes")
			}()
			runMix(t, command.CommandURL, commands, 8, log, func() {
				if reconnecting.count() >= 300 {
					once.Do(func() {
						reconnecting.stop()
						dropped <- full[0].count()
					})
				}
			})
			once.Do(func() { close(dropped) })
			select {
			case err := <-reconnected:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(60 * time.Second):
				t.Fatal("the reconnecting client did not reconnect within 60s of the mix's end")
			}

			wantAll := log.want("", "")
			total := log.total()
			for name, c := range map[string]*sseClient{"client on query 1": full[0], "client on query 2": full[1],
				"reconnected client": reconnecting} {
				eventually(t, 90*time.Second, name+" has every change", func() bool { return c.count() >= total })
				if got := versions(t, c.snapshot()); !equalVersions(got, wantAll) {
					t.Errorf("%s: %s", name, diffVersions(got, wantAll))
				}
			}
			t.Logf("%d changes of %d posts reached each client", total, len(wantAll))
			wantBob := log.want("", "bob")
			wantBobCount := 0
			for _, vs := range wantBob {
				wantBobCount += len(vs)
			}
			eventually(t, 30*time.Second, "the author's client has its changes", func() bool { return byAuthor.count() >= wantBobCount })
			if got := versions(t, byAuthor.snapshot()); !equalVersions(got, wantBob) {
				t.Errorf("author_name=bob: %s", diffVersions(got, wantBob))
			}
			eventually(t, 30*time.Second, "the post's client has its changes", func() bool { return byPost.count() >= 4 })
			if got := versions(t, byPost.snapshot()); !equalVersions(got, map[string][]int64{followedID: {2, 3, 4, 5}}) {
				t.Errorf("post_id: got %v", got)
			}

			// The first change's position is long out of the bus's retention.
			first := full[0].snapshot()[0].ID
			late := &sseClient{lastID: first}
			late.follow(t, queries[1].QueryURL+"/changes")
			t.Cleanup(late.stop)
			eventually(t, 30*time.Second, "an event for a position out of retention", func() bool { return late.count() > 0 })
			if e := late.snapshot()[0]; e.Name != "reset" {
				t.Errorf("after %s, out of retention: first event %s %s, want a reset", first, e.Name, e.Data)
			}
			// The reset's id is where the client goes on from: a change made now follows it.
			r := do(t, "PATCH", command.CommandURL+"/posts/"+followedID, map[string]string{"title": "after the reset"}).
				Must(t, http.StatusOK)
			eventually(t, 30*time.Second, "the change after the reset", func() bool { return late.count() >= 2 })
			if got := versions(t, late.snapshot()[1:]); !slices.Equal(got[followedID], []int64{r.Num("version")}) {
				t.Errorf("after the reset: %v, want version %d of %s", got, r.Num("version"), followedID)
			}
		})
	}
}

func equalVersions(got, want map[string][]int64) bool {
	if len(got) != len(want) {
		return false
	}
	for id, vs := range want {
		if !slices.Equal(got[id], vs) {
			return false
		}
	}
	return true
}

// diffVersions names the first few posts whose versions differ.
func diffVersions(got, want map[string][]int64) string {
	var out []string
	for id, vs := range want {
		if !slices.Equal(got[id], vs) && len(out) < 5 {
			out = append(out, fmt.Sprintf("post %s: got %v, want %v", id, got[id], vs))
		}
	}
	for id, vs := range got {
		if _, ok := want[id]; !ok && len(out) < 10 {
			out = append(out, fmt.Sprintf("post %s not changed by the mix: got %v", id, vs))
		}
	}
	return fmt.Sprintf("%d posts, want %d; %s", len(got), len(want), strings.Join(out, "; "))
}

// TestChangesStreamsEndWhenTheServerStops checks that an open GET /changes stream does not hold
// a graceful stop up: the server ends it and exits well within its shutdown timeout.
func TestChangesStreamsEndWhenTheServerStops(t *testing.T) {
	t.Parallel()
	p := start(t, map[string]string{"POSTS_SHUTDOWN_TIMEOUT": "20s"})
	c := &sseClient{}
	c.follow(t, p.QueryURL+"/changes")
	t.Cleanup(c.stop)
	code, took := p.stop(t, syscall.SIGTERM, 30*time.Second)
	if code != 0 || took > 10*time.Second {
		t.Errorf("exit %d after %s with a stream open; want 0 well within the 20s shutdown timeout", code, took)
	}
	select {
	case <-c.ended:
	case <-time.After(5 * time.Second):
		t.Error("the stream is still open after the server stopped")
	}
}

// TestChangesBadInputAndHeartbeat checks the 422s of GET /changes, each naming its input, and
// that an idle stream carries heartbeat comments.
func TestChangesBadInputAndHeartbeat(t *testing.T) {
	t.Parallel()
	p := start(t, map[string]string{"POSTS_CHANGES_HEARTBEAT": "100ms"})
	tests := []struct {
		name, query, lastEventID, wantLocation string
	}{
		{"after not a position", "?after=abc", "", "query.after"},
		{"Last-Event-ID not a position", "", "12-x", "header.Last-Event-ID"},
		{"Last-Event-ID wins over after", "?after=5", "-1", "header.Last-Event-ID"},
		{"post_id not a UUID", "?post_id=42", "", "query.post_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var headers []string
			if tt.lastEventID != "" {
				headers = []string{"Last-Event-ID", tt.lastEventID}
			}
			r := do(t, "GET", p.QueryURL+"/changes"+tt.query, nil, headers...).Must(t, http.StatusUnprocessableEntity)
			if !strings.Contains(string(r.Raw), `"location":"`+tt.wantLocation+`"`) {
				t.Errorf("problem %s does not name %s", r.Raw, tt.wantLocation)
			}
		})
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.QueryURL+"/changes", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	r := bufio.NewReader(resp.Body)
	for beats := 0; beats < 2; {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("after %d heartbeats: %v", beats, err)
		}
		if line == ": heartbeat\n" {
			beats++
		}
	}
}
