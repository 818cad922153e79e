package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// feedClients is how many clients BenchmarkChangesFanOut connects (HEXAPOST_FEED_CLIENTS
// overrides it).
func feedClients() int {
	if n, err := strconv.Atoi(os.Getenv("HEXAPOST_FEED_CLIENTS")); err == nil && n > 0 {
		return n
	}
	return 1000
}

// BenchmarkChangesFanOut measures GET /changes with many clients on one query server: a
// command server on MySQL and a query server on a private Redis bus, each in a process of its
// own, under the bench's usual mix (create=1, update=8, delete=1 over 100 posts, 16 command
// clients) for HEXAPOST_PERF_SECONDS. It reports the command rate without and with the feed
// clients, the delay from a command's acknowledgement to its change reaching a client (p50,
// p99, over a tenth of the changes at every client), the query process's resident memory, and
// what became of a client that never reads: it must be cut off, and every other client must
// have received every change. Reproduce with:
//
//	eval "$(bash test/backends/up.sh)"
//	go test ./test/e2e -run '^$' -bench ChangesFanOut -benchtime 1x -timeout 20m
func BenchmarkChangesFanOut(b *testing.B) {
	bin := benchBinary(b)
	clients, window := feedClients(), perfWindow()
	command, query, stop := startPipeline(b, bin, redisBus, false)
	defer stop()

	// The client that never reads asks first, and is read only at the end: by then the
	// server's writes to it have blocked, the feed has cut it off once its buffer filled, and
	// the blocked write has timed out.
	stuck := connectStuck(b, query.QueryURL)
	defer func() { _ = stuck.Close() }()
	without := feedMix(b, command.CommandURL, window, nil)
	rssBefore := rssKiB(b, query)

	acks := &ackTimes{at: map[string]time.Time{}}
	readers := make([]*feedReader, clients)
	for i := range readers {
		readers[i] = &feedReader{acks: acks}
		if err := readers[i].connect(query.QueryURL + "/changes"); err != nil {
			b.Fatalf("client %d: %v", i, err)
		}
	}

	with := feedMix(b, command.CommandURL, window, acks)
	want := with.changes
	deadline := time.Now().Add(2 * time.Minute)
	for _, r := range readers {
		for r.count.Load() < int64(want) && !r.ended.Load() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond) // polls the count, as eventually does
		}
	}
	rssAfter := rssKiB(b, query)
	var latencies []time.Duration
	short, cut := 0, 0
	for _, r := range readers {
		r.close()
		if r.count.Load() < int64(want) {
			short++
		}
		if r.reset.Load() {
			cut++
		}
		latencies = append(latencies, acks.delays(r.samples())...)
	}
	slices.Sort(latencies)
	stuckRead, stuckChanges, stuckEnded, stuckReset := stuck.read()
	stuckCut := stuckEnded || stuckChanges < without.changes+with.changes
	line := fmt.Sprintf("changes fan-out: %d clients on one query server (Redis bus), %s of create=1,update=8,delete=1 "+
		"at 16 command clients: %s without the clients, %s with them (%d changes); acknowledgement to client p50 %.1f ms, "+
		"p99 %.1f ms over %d deliveries; query process %d MiB before the clients, %d MiB with them; "+
		"clients short of a change %d, cut off %d; the client that never reads: cut off %v (%d of %d changes, %d KiB, "+
		"held by the socket buffers; the connection ended %v, with a reset %v)\n",
		clients, window, perSecond(without.perSecond), perSecond(with.perSecond), want,
		ms(percentile(latencies, 50)), ms(percentile(latencies, 99)), len(latencies), rssBefore/1024, rssAfter/1024,
		short, cut, stuckCut, stuckChanges, without.changes+with.changes, stuckRead/1024, stuckEnded, stuckReset)
	fmt.Print(line)
	b.Log(line)
	if short > 0 || cut > 0 || !stuckCut {
		b.Errorf("%d clients short of a change, %d cut off; the client that never reads cut off: %v", short, cut, stuckCut)
	}
}

func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	return ds[min(len(ds)-1, len(ds)*p/100)]
}

// ackTimes holds when each change (post id and version) was acknowledged.
type ackTimes struct {
	mu sync.Mutex
	at map[string]time.Time
}

func (a *ackTimes) put(key string, t time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.at[key] = t
}

// delays returns how long after its acknowledgement each sample was received; a change that
// reached the client before its command's answer reached the load counts as 0.
func (a *ackTimes) delays(samples []feedSample) []time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]time.Duration, 0, len(samples))
	for _, s := range samples {
		if t, ok := a.at[s.key]; ok {
			out = append(out, max(0, s.at.Sub(t)))
		}
	}
	return out
}

type mixResult struct {
	changes   int
	perSecond float64
}

// feedMix runs the bench's usual mix from 16 clients for window over 100 posts it creates
// first, recording each acknowledgement in acks when not nil. It returns how many changes the
// window made (the creates of the 100 posts included) and the command rate.
func feedMix(b *testing.B, commandURL string, window time.Duration, acks *ackTimes) mixResult {
	b.Helper()
	ack := func(body []byte) {
		if acks == nil {
			return
		}
		id, v := jsonField(body, "id"), jsonField(body, "version")
		acks.put(id+"/"+v, time.Now())
	}
	var mu sync.Mutex
	var posts []string
	for range 100 {
		status, body, err := sendBody(http.MethodPost, commandURL+"/posts", `{"title":"t","content":"c","author_name":"bench"}`)
		if err != nil || status != http.StatusCreated {
			b.Fatalf("create: %d %v", status, err)
		}
		ack(body)
		posts = append(posts, jsonField(body, "id"))
	}
	var commands, changes atomic.Int64
	changes.Add(100)
	var failed atomic.Value
	end := time.Now().Add(window)
	begin := time.Now()
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := 0; time.Now().Before(end); i++ {
				var status int
				var body []byte
				var err error
				k := rng.IntN(10)
				mu.Lock()
				var id string
				deleting := k == 9 && len(posts) > 10
				switch {
				case deleting:
					id, posts = posts[0], posts[1:]
				case k > 0:
					id = posts[rng.IntN(len(posts))]
				}
				mu.Unlock()
				switch {
				case k == 0:
					status, body, err = sendBody(http.MethodPost, commandURL+"/posts", `{"title":"t","content":"c","author_name":"bench"}`)
					if err == nil && status == http.StatusCreated {
						mu.Lock()
						posts = append(posts, jsonField(body, "id"))
						mu.Unlock()
					}
				case deleting:
					status, body, err = sendBody(http.MethodDelete, commandURL+"/posts/"+id, "")
				default:
					status, body, err = sendBody(http.MethodPatch, commandURL+"/posts/"+id,
						fmt.Sprintf(`{"content":"w%d-%d"}`, w, i))
				}
				switch {
				case err == nil && (status == http.StatusOK || status == http.StatusCreated):
					ack(body)
					commands.Add(1)
					changes.Add(1)
				case err == nil && (status == http.StatusGone || status == http.StatusConflict):
					commands.Add(1) // an update of a post another client deleted meanwhile
				default:
					failed.Store(fmt.Sprintf("status %d, error %v, body %s", status, err, body))
				}
			}
		})
	}
	wg.Wait()
	if f := failed.Load(); f != nil {
		b.Fatal(f)
	}
	return mixResult{changes: int(changes.Load()), perSecond: float64(commands.Load()) / time.Since(begin).Seconds()}
}

func sendBody(method, url, body string) (int, []byte, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := benchClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer func() { _ = res.Body.Close() }()
	out, err := io.ReadAll(res.Body)
	return res.StatusCode, out, err
}

// jsonField returns the value of the first "name": in a flat JSON object, without the quotes
// of a string: enough for the id and version of a post, at a fraction of a decode's cost.
func jsonField(body []byte, name string) string {
	i := bytes.Index(body, []byte(`"`+name+`":`))
	if i < 0 {
		return ""
	}
	rest := bytes.TrimLeft(body[i+len(name)+3:], " ")
	if len(rest) > 0 && rest[0] == '"' {
		end := bytes.IndexByte(rest[1:], '"')
		if end < 0 {
			return ""
		}
		return string(rest[1 : end+1])
	}
	end := bytes.IndexAny(rest, ",}")
	if end < 0 {
		return ""
	}
	return string(rest[:end])
}

// feedSample is one change a client received: its post id/version and when.
type feedSample struct {
	key string
	at  time.Time
}

// feedReader is a client of GET /changes that counts the changes it receives and keeps the
// time of one in ten, without decoding the others.
type feedReader struct {
	acks   *ackTimes
	count  atomic.Int64
	reset  atomic.Bool
	ended  atomic.Bool
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	kept []feedSample
}

func (r *feedReader) connect(url string) error {
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		cancel()
		return err
	}
	resp, err := feedHTTP.Do(req) //nolint:bodyclose // the reading goroutine closes it
	if err != nil {
		cancel()
		return err
	}
	if resp.StatusCode != http.StatusOK {
		cancel()
		_ = resp.Body.Close()
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	r.cancel, r.done = cancel, make(chan struct{})
	go func() {
		defer close(r.done)
		defer r.ended.Store(true)
		defer func() { _ = resp.Body.Close() }()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			switch {
			case bytes.HasPrefix(line, []byte("event: reset")):
				r.reset.Store(true)
			case bytes.HasPrefix(line, []byte("data: ")) && !r.reset.Load():
				n := r.count.Add(1)
				data := line[len("data: "):]
				if i := bytes.Index(data, []byte(`"post":`)); n%10 == 0 && i >= 0 {
					now := time.Now()
					key := jsonField(data[i:], "id") + "/" + jsonField(data, "version")
					r.mu.Lock()
					r.kept = append(r.kept, feedSample{key, now})
					r.mu.Unlock()
				}
			}
		}
	}()
	return nil
}

func (r *feedReader) close() {
	r.cancel()
	<-r.done
}

func (r *feedReader) samples() []feedSample {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.kept
}

// feedHTTP holds a connection per feed client.
var feedHTTP = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: -1, DisableCompression: true}}

// stuckClient asks for GET /changes on a connection with a small receive buffer and never
// reads, until wasCut.
type stuckClient struct{ net.Conn }

func connectStuck(b *testing.B, queryURL string) *stuckClient {
	b.Helper()
	host := strings.TrimPrefix(queryURL, "http://")
	conn, err := net.Dial("tcp", host)
	if err != nil {
		b.Fatal(err)
	}
	if err := conn.(*net.TCPConn).SetReadBuffer(4096); err != nil {
		b.Fatal(err)
	}
	if _, err := fmt.Fprintf(conn, "GET /changes HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", host); err != nil {
		b.Fatal(err)
	}
	return &stuckClient{conn}
}

// read reads what the server sent, until it ended the connection or 30s passed, and returns
// how much there was, how many changes, whether the server ended the connection (closed it,
// or reset it once its write timed out), and whether a reset event was among what it sent.
// A server that gave up a write to a client that does not read may also leave it without a
// word: the client then has fewer changes than were made.
func (s *stuckClient) read() (n, changes int, ended, reset bool) {
	_ = s.SetReadDeadline(time.Now().Add(30 * time.Second))
	all, err := io.ReadAll(s)
	ended = err == nil || errors.Is(err, syscall.ECONNRESET)
	return len(all), bytes.Count(all, []byte("\ndata: {\"version\"")), ended, bytes.Contains(all, []byte("event: reset"))
}
