package redis_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"hexapost/adapters/redis"
	"hexapost/adapters/wire"
	"hexapost/core/post"
	"hexapost/ports"
	"hexapost/test/contract"
)

// timeout bounds every wait of these tests.
const timeout = 10 * time.Second

// testConfig returns a config for a fresh stream and group on POSTS_REDIS_URL, whose keys are
// deleted when the test ends, with short timings. Without the variable the test skips (fails
// under CI=true).
func testConfig(t *testing.T) redis.Config {
	t.Helper()
	url := contract.Backend(t, "POSTS_REDIS_URL")
	stream := "hexapost:test:" + rand.Text()
	cfg := redis.Config{
		URL: url, Stream: stream, Group: "g-" + rand.Text(), MaxAttempts: 3,
		Backoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, VisibilityTimeout: time.Hour,
		Log: slog.New(slog.DiscardHandler),
	}
	raw := rawClient(t, url)
	// Registered before any bus is opened, so it runs after they are all closed.
	t.Cleanup(func() {
		if err := raw.Del(context.Background(), stream, stream+":dead").Err(); err != nil {
			t.Errorf("delete the test streams: %v", err)
		}
	})
	return cfg
}

// open opens a bus that is closed when the test ends.
func open(t *testing.T, cfg redis.Config) *redis.Bus {
	t.Helper()
	bus, err := redis.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := bus.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return bus
}

// rawClient is a go-redis client of the test's own, to look at and tamper with what the bus
// keeps in Redis.
func rawClient(t *testing.T, url string) *goredis.Client {
	t.Helper()
	opts, err := goredis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := goredis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// subscribe runs bus.Subscribe(ctx, h) until the returned stop is called or the test ends;
// stop checks that Subscribe returns nil in time.
func subscribe(ctx context.Context, t *testing.T, bus *redis.Bus, h ports.Handler) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- bus.Subscribe(ctx, h) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Subscribe returned %v, want nil", err)
				}
			case <-time.After(timeout):
				t.Errorf("Subscribe did not return within %s of its context ending", timeout)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// deliveries is a handler that sends every change it gets on a channel, then returns what
// result says.
func deliveries(result func(context.Context) error) (ports.Handler, chan ports.Change) {
	ch := make(chan ports.Change, 100)
	return func(ctx context.Context, c ports.Change, _ *ports.Change) error {
		ch <- c
		return result(ctx)
	}, ch
}

func succeed(context.Context) error { return nil }

func receive(t *testing.T, ch <-chan ports.Change, what string) ports.Change {
	t.Helper()
	select {
	case c := <-ch:
		return c
	case <-time.After(timeout):
		t.Fatalf("no %s within %s", what, timeout)
		return ports.Change{}
	}
}

// eventually polls cond until it holds, failing the test after timeout.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s after %s", what, timeout)
		}
		<-tick.C
	}
}

func waitDeadLetters(t *testing.T, bus *redis.Bus, n int) []ports.DeadLetter {
	t.Helper()
	var dead []ports.DeadLetter
	eventually(t, fmt.Sprintf("%d dead letters", n), func() bool {
		var err error
		dead, err = bus.List(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return len(dead) >= n
	})
	return dead
}

// changes returns n changes creating as many posts.
func changes(n int) []ports.Change {
	at := time.Date(2025, 3, 1, 10, 0, 0, 123456000, time.UTC)
	out := make([]ports.Change, n)
	for i := range out {
		id, title := rand.Text(), fmt.Sprintf("post %d", i)
		out[i] = ports.Change{
			Event: post.Event{
				ID: rand.Text(), PostID: id, Version: 1, Type: post.EventCreated, OccurredAt: at,
				Title: &title, Content: &title, AuthorName: &title,
			},
			State: post.State{ID: id, Version: 1, Title: title, Content: title, AuthorName: title, CreatedAt: at, UpdatedAt: at},
		}
	}
	return out
}

// TestClaimsWhatADeadConsumerHeld lets a consumer take a change and vanish without an
// acknowledgement; a live consumer must claim and apply it once VisibilityTimeout has passed,
// not before.
func TestClaimsWhatADeadConsumerHeld(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.VisibilityTimeout = 300 * time.Millisecond
	bus := open(t, cfg)
	raw := rawClient(t, cfg.URL)
	sent := changes(1)[0]
	if err := bus.Publish(t.Context(), []ports.Change{sent}); err != nil {
		t.Fatal(err)
	}
	taken, err := raw.XReadGroup(t.Context(), &goredis.XReadGroupArgs{
		Group: cfg.Group, Consumer: "crashed", Streams: []string{cfg.Stream, ">"}, Count: 1, Block: -1,
	}).Result()
	if err != nil || len(taken) != 1 || len(taken[0].Messages) != 1 {
		t.Fatalf("the doomed consumer read %v, %v; want the change", taken, err)
	}
	crashedAt := time.Now()
	h, got := deliveries(succeed)

	subscribe(t.Context(), t, bus, h)

	c := receive(t, got, "claim of the abandoned change")
	if took := time.Since(crashedAt); took < cfg.VisibilityTimeout*4/5 {
		t.Errorf("claimed %s after the consumer died, want no sooner than the visibility timeout %s", took, cfg.VisibilityTimeout)
	}
	if c.Event.ID != sent.Event.ID {
		t.Errorf("got %s, want %s", c.Event.ID, sent.Event.ID)
	}
	eventually(t, "the change to be acknowledged", func() bool {
		p, err := raw.XPending(t.Context(), cfg.Stream, cfg.Group).Result()
		return err == nil && p.Count == 0
	})
}

// TestDeadLettersWhatKillsEveryConsumer: a change whose every delivery ended with its consumer
// gone is dead-lettered once the deliveries reach MaxAttempts, without another try.
func TestDeadLettersWhatKillsEveryConsumer(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.MaxAttempts = 2
	cfg.VisibilityTimeout = 100 * time.Millisecond
	bus := open(t, cfg)
	raw := rawClient(t, cfg.URL)
	sent := changes(1)[0]
	if err := bus.Publish(t.Context(), []ports.Change{sent}); err != nil {
		t.Fatal(err)
	}
	taken, err := raw.XReadGroup(t.Context(), &goredis.XReadGroupArgs{
		Group: cfg.Group, Consumer: "crashed-1", Streams: []string{cfg.Stream, ">"}, Count: 1, Block: -1,
	}).Result()
	if err != nil || len(taken) != 1 || len(taken[0].Messages) != 1 {
		t.Fatalf("the first doomed consumer read %v, %v; want the change", taken, err)
	}
	id := taken[0].Messages[0].ID
	// A second consumer claims it, and dies too: two deliveries, no outcome.
	if err := raw.XClaim(t.Context(), &goredis.XClaimArgs{
		Stream: cfg.Stream, Group: cfg.Group, Consumer: "crashed-2", Messages: []string{id},
	}).Err(); err != nil {
		t.Fatal(err)
	}
	h, got := deliveries(succeed)

	subscribe(t.Context(), t, bus, h)

	d := waitDeadLetters(t, bus, 1)[0]
	if d.Attempts != 2 || !strings.Contains(d.Reason, "no outcome after 2 deliveries") ||
		d.Change == nil || d.Change.Event.ID != sent.Event.ID {
		t.Errorf("dead letter %+v, want the change with 2 attempts and a reason saying it had no outcome", d)
	}
	select {
	case c := <-got:
		t.Errorf("the handler got %s, want it never tried a third time", c.Event.ID)
	default:
	}
}

// TestShutdownCostsNoAttempt stops a subscriber while its handler holds a change and more are
// in its batch: they must go to another consumer at once (the visibility timeout is an hour)
// and still get all MaxAttempts deliveries there.
func TestShutdownCostsNoAttempt(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.MaxAttempts = 2
	first := open(t, cfg)
	holding := make(chan struct{}, 10)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stop := subscribe(ctx, t, first, func(ctx context.Context, _ ports.Change, _ *ports.Change) error {
		holding <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	})
	sent := changes(3)
	if err := first.Publish(t.Context(), sent); err != nil {
		t.Fatal(err)
	}
	select {
	case <-holding:
	case <-time.After(timeout):
		t.Fatal("the first subscriber took nothing")
	}
	cancel()
	stop()
	other := cfg
	other.Consumer = "other"
	second := open(t, other)
	errDown := errors.New("view store down")
	h, got := deliveries(func(context.Context) error { return errDown })

	subscribe(t.Context(), t, second, h)

	dead := waitDeadLetters(t, second, len(sent))
	for _, d := range dead {
		if d.Attempts != cfg.MaxAttempts || !strings.Contains(d.Reason, errDown.Error()) {
			t.Errorf("dead letter %+v, want %d attempts failing with %q", d, cfg.MaxAttempts, errDown)
		}
	}
	if n := len(got); n != len(sent)*cfg.MaxAttempts {
		t.Errorf("the second subscriber had %d deliveries, want %d", n, len(sent)*cfg.MaxAttempts)
	}
}

// syncBuffer is a bytes.Buffer safe for the bus's logger and the test to share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the JSON log lines written so far.
func (b *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	dec := json.NewDecoder(bytes.NewReader(b.buf.Bytes()))
	for {
		var m map[string]any
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return out
		} else if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
}

func TestLogsEachRetryAndTheDeadLetter(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.MaxAttempts = 2
	var logs syncBuffer
	cfg.Log = slog.New(slog.NewJSONHandler(&logs, nil))
	bus := open(t, cfg)
	sent := changes(1)[0]
	subscribe(t.Context(), t, bus, func(context.Context, ports.Change, *ports.Change) error { return errors.New("view store down") })

	if err := bus.Publish(t.Context(), []ports.Change{sent}); err != nil {
		t.Fatal(err)
	}

	dead := waitDeadLetters(t, bus, 1)[0]
	var retries, deadLettered []map[string]any
	// The dead-letter line follows the dead letter's write: wait for it too.
	eventually(t, "the dead-letter line", func() bool {
		retries, deadLettered = nil, nil
		for _, l := range logs.lines(t) {
			switch l["msg"] {
			case "projection failed; will retry":
				retries = append(retries, l)
			case "message dead-lettered":
				deadLettered = append(deadLettered, l)
			}
		}
		return len(deadLettered) > 0
	})
	if len(retries) != 1 || len(deadLettered) != 1 {
		t.Fatalf("%d retry and %d dead-letter lines, want 1 and 1:\n%v", len(retries), len(deadLettered), logs.lines(t))
	}
	for _, l := range []map[string]any{retries[0], deadLettered[0]} {
		if l["post_id"] != sent.Event.PostID || l["version"] != 1.0 || l["event_id"] != sent.Event.ID ||
			l["error"] != "view store down" {
			t.Errorf("log line %v, want the post id, version, event id and error of the change", l)
		}
	}
	if retries[0]["attempt"] != 1.0 || retries[0]["retry_in"] == nil || retries[0]["level"] != "WARN" {
		t.Errorf("retry line %v, want attempt 1 with retry_in at WARN", retries[0])
	}
	if l := deadLettered[0]; l["attempt"] != 2.0 || l["dead_letter_id"] != dead.ID || l["level"] != "ERROR" {
		t.Errorf("dead-letter line %v, want attempt 2 and dead_letter_id %s at ERROR", l, dead.ID)
	}
}

// TestEntriesCarryPayloadAndEventID checks what a change looks like in the stream, for other
// readers and for tracing with redis-cli, and that the stream is trimmed near MaxLen.
func TestEntriesCarryPayloadAndEventID(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.MaxLen = 10
	bus := open(t, cfg)
	raw := rawClient(t, cfg.URL)
	sent := changes(500)

	for i := 0; i < len(sent); i += 50 {
		if err := bus.Publish(t.Context(), sent[i:i+50]); err != nil {
			t.Fatal(err)
		}
	}

	last, err := raw.XRevRangeN(t.Context(), cfg.Stream, "+", "-", 1).Result()
	if err != nil || len(last) != 1 {
		t.Fatalf("XREVRANGE: %v, %v", last, err)
	}
	want, err := wire.Encode(sent[len(sent)-1])
	if err != nil {
		t.Fatal(err)
	}
	if v := last[0].Values; v["payload"] != string(want) || v["event_id"] != sent[len(sent)-1].Event.ID || len(v) != 2 {
		t.Errorf("last entry %v, want the payload %s and the event id", v, want)
	}
	// Approximate trimming removes whole internal nodes (100 entries by default).
	if n, err := raw.XLen(t.Context(), cfg.Stream).Result(); err != nil || n < cfg.MaxLen || n > cfg.MaxLen+200 {
		t.Errorf("stream length %d (%v) after %d changes, want about MaxLen %d", n, err, len(sent), cfg.MaxLen)
	}
}

// TestEntriesCarryTraceContext checks that a change's W3C trace context is a field of its
// entry, beside the payload that carries it too, and that a change without one has none.
func TestEntriesCarryTraceContext(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		giveMeta ports.Metadata
		want     map[string]any
	}{
		{
			name: "traceparent and tracestate",
			giveMeta: ports.Metadata{
				TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", TraceState: "vendor=a",
			},
			want: map[string]any{
				"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "tracestate": "vendor=a",
			},
		},
		{
			name:     "traceparent only",
			giveMeta: ports.Metadata{TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"},
			want:     map[string]any{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"},
		},
		{
			name: "not traced",
			want: map[string]any{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			bus := open(t, cfg)
			c := changes(1)[0]
			c.Metadata = tt.giveMeta

			if err := bus.Publish(t.Context(), []ports.Change{c}); err != nil {
				t.Fatal(err)
			}

			entries, err := rawClient(t, cfg.URL).XRange(t.Context(), cfg.Stream, "-", "+").Result()
			if err != nil || len(entries) != 1 {
				t.Fatalf("XRANGE: %v, %v", entries, err)
			}
			got := map[string]any{}
			for _, k := range []string{"traceparent", "tracestate"} {
				if v, ok := entries[0].Values[k]; ok {
					got[k] = v
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("trace fields %v, want %v", got, tt.want)
			}
			if d, err := wire.Decode([]byte(entries[0].Values["payload"].(string))); err != nil || d.Metadata != tt.giveMeta {
				t.Errorf("payload metadata %+v (%v), want %+v", d.Metadata, err, tt.giveMeta)
			}
		})
	}
}

// TestRecreatesAMissingGroup deletes the stream under a running subscriber, as a Redis restart
// without persistence does: it must create the group again and go on.
func TestRecreatesAMissingGroup(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	bus := open(t, cfg)
	raw := rawClient(t, cfg.URL)
	h, got := deliveries(succeed)
	subscribe(t.Context(), t, bus, h)
	sent := changes(2)
	if err := bus.Publish(t.Context(), sent[:1]); err != nil {
		t.Fatal(err)
	}
	receive(t, got, "the change before the stream is deleted")

	if err := raw.Del(t.Context(), cfg.Stream).Err(); err != nil {
		t.Fatal(err)
	}
	if err := bus.Publish(t.Context(), sent[1:]); err != nil {
		t.Fatal(err)
	}

	if c := receive(t, got, "the change after the stream was deleted"); c.Event.ID != sent[1].Event.ID {
		t.Errorf("got %s, want %s", c.Event.ID, sent[1].Event.ID)
	}
}

// proxy forwards TCP connections to Redis until it is stopped, and can be started again on the
// same address: a Redis outage the test controls.
// throughProxy starts a proxy to cfg's Redis, stopped when the test ends, and returns cfg
// pointed at it.
func throughProxy(t *testing.T, cfg redis.Config) (redis.Config, *proxy) {
	t.Helper()
	opts, err := goredis.ParseURL(cfg.URL)
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{target: opts.Addr}
	p.start(t)
	t.Cleanup(p.stop)
	cfg.URL = fmt.Sprintf("redis://%s/%d", p.addr, opts.DB)
	return cfg, p
}

type proxy struct {
	target string

	mu    sync.Mutex
	addr  string
	ln    net.Listener
	conns []net.Conn
	// dropReplies makes the proxy swallow what Redis answers and cut the connection: a command
	// Redis carried out whose answer never reaches the client.
	dropReplies bool
	// sent counts, by command name in lower case, the commands clients sent.
	sent map[string]int
}

func (p *proxy) start(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	addr := p.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	p.ln, p.addr = ln, ln.Addr().String()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", p.target)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			if p.ln != ln { // stopped while this connection was being made
				p.mu.Unlock()
				_ = c.Close()
				_ = u.Close()
				return
			}
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(u, io.TeeReader(c, commandCounter{p})); _ = u.Close() }()
			go func() { p.reply(c, u); _ = c.Close(); _ = u.Close() }()
		}
	}()
}

// reply copies Redis's answers to the client until either side closes or replies are dropped.
func (p *proxy) reply(client, server net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := server.Read(buf)
		if n > 0 {
			p.mu.Lock()
			drop := p.dropReplies
			p.mu.Unlock()
			if drop {
				return
			}
			if _, werr := client.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// commandCounter counts the commands a client sends through p. go-redis sends each name as a
// bulk string, so a name is found by its length line before it.
type commandCounter struct{ p *proxy }

func (c commandCounter) Write(b []byte) (int, error) {
	c.p.mu.Lock()
	defer c.p.mu.Unlock()
	if c.p.sent == nil {
		c.p.sent = map[string]int{}
	}
	for _, name := range []string{"xpending", "xreadgroup"} {
		c.p.sent[name] += bytes.Count(bytes.ToLower(b), []byte(fmt.Sprintf("$%d\r\n%s\r\n", len(name), name)))
	}
	return len(b), nil
}

// count returns how many commands called name clients sent so far.
func (p *proxy) count(name string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent[name]
}

func (p *proxy) setDropReplies(drop bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dropReplies = drop
}

func (p *proxy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

// TestRidesOutAnOutage cuts Redis off: Publish and Ping fail with ports.ErrUnavailable, the
// subscriber keeps trying, and once Redis is back both work again without a new Open.
func TestRidesOutAnOutage(t *testing.T) {
	t.Parallel()
	cfg, p := throughProxy(t, testConfig(t))
	bus := open(t, cfg)
	h, got := deliveries(succeed)
	subscribe(t.Context(), t, bus, h)
	sent := changes(2)
	if err := bus.Publish(t.Context(), sent[:1]); err != nil {
		t.Fatal(err)
	}
	receive(t, got, "the change before the outage")

	p.stop()

	if err := bus.Publish(t.Context(), sent[1:]); !errors.Is(err, ports.ErrUnavailable) {
		t.Errorf("Publish during the outage: %v, want %v", err, ports.ErrUnavailable)
	}
	if err := bus.Ping(t.Context()); !errors.Is(err, ports.ErrUnavailable) {
		t.Errorf("Ping during the outage: %v, want %v", err, ports.ErrUnavailable)
	}
	if _, err := bus.List(t.Context()); !errors.Is(err, ports.ErrUnavailable) {
		t.Errorf("List during the outage: %v, want %v", err, ports.ErrUnavailable)
	}

	p.start(t)

	eventually(t, "Ping to answer after the outage", func() bool { return bus.Ping(t.Context()) == nil })
	if err := bus.Publish(t.Context(), sent[1:]); err != nil {
		t.Fatalf("Publish after the outage: %v", err)
	}
	// The change before the outage may come again (its acknowledgement may have been cut off):
	// at least once.
	for c := receive(t, got, "the change after the outage"); c.Event.ID != sent[1].Event.ID; c = receive(t, got, "the change after the outage") {
		if c.Event.ID != sent[0].Event.ID {
			t.Fatalf("got %s, want %s or a repeat of %s", c.Event.ID, sent[1].Event.ID, sent[0].Event.ID)
		}
	}
}

// TestScansForRetriesWhenOneCanBeDue: a subscriber whose changes all succeed reads change after
// change without a scan of the pending entries before each read; it scans on its schedule for
// changes of dead consumers (here every half second), and a retry still comes when it is due.
func TestScansForRetriesWhenOneCanBeDue(t *testing.T) {
	t.Parallel()
	cfg, p := throughProxy(t, testConfig(t))
	bus := open(t, cfg)
	failOnce := map[string]bool{}
	var mu sync.Mutex
	h, got := deliveries(succeed)
	subscribe(t.Context(), t, bus, func(ctx context.Context, c ports.Change, later *ports.Change) error {
		mu.Lock()
		first := c.Event.PostID == "retried" && !failOnce[c.Event.ID]
		failOnce[c.Event.ID] = true
		mu.Unlock()
		if first {
			return errors.New("once")
		}
		return h(ctx, c, later)
	})

	const n = 100
	begin := time.Now()
	reads := p.count("xreadgroup")
	for _, c := range changes(n) {
		if err := bus.Publish(t.Context(), []ports.Change{c}); err != nil {
			t.Fatal(err)
		}
		receive(t, got, "the change")
	}
	scans, passes := p.count("xpending"), p.count("xreadgroup")-reads
	// Each scan on the schedule is three XPENDING: retries, changes of dead consumers, own.
	if most := 3 * (int(time.Since(begin)/(500*time.Millisecond)) + 2); scans > most || passes < n {
		t.Errorf("%d XPENDING over %d reads in %v, want at most %d", scans, passes, time.Since(begin), most)
	}

	retried := changes(1)[0]
	retried.Event.PostID, retried.State.ID = "retried", "retried"
	if err := bus.Publish(t.Context(), []ports.Change{retried}); err != nil {
		t.Fatal(err)
	}
	if c := receive(t, got, "the change whose first attempt failed"); c.Event.ID != retried.Event.ID {
		t.Errorf("got %s, want %s", c.Event.ID, retried.Event.ID)
	}
}

// TestTakesBackADeliveryLostOnTheWay: Redis records a change as delivered to the subscriber,
// but its answer is lost with the connection. The subscriber takes the change back within a
// scan, not after the visibility timeout (an hour here).
func TestTakesBackADeliveryLostOnTheWay(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	direct := open(t, cfg)
	viaProxy, p := throughProxy(t, cfg)
	viaProxy.Consumer = "lossy-" + rand.Text()
	bus := open(t, viaProxy)
	raw := rawClient(t, cfg.URL)
	h, got := deliveries(succeed)
	subscribe(t.Context(), t, bus, h)

	// Publish while the subscriber waits in XREADGROUP and its answers are dropped. The wait may
	// end just before the change arrives; then it is read normally, and the test tries again.
	const tries = 5
	var sent []ports.Change
	lost := false
	for try := 0; try < tries && !lost; try++ {
		eventually(t, "the subscriber to block in XREADGROUP", func() bool {
			clients, err := raw.ClientList(t.Context()).Result()
			return err == nil && blockedReader(clients)
		})
		p.setDropReplies(true)
		c := changes(1)
		if err := direct.Publish(t.Context(), c); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, c...)
		deadline := time.Now().Add(2 * time.Second)
		for !lost && time.Now().Before(deadline) {
			pending, err := raw.XPendingExt(t.Context(), &goredis.XPendingExtArgs{
				Stream: cfg.Stream, Group: cfg.Group, Start: "-", End: "+", Count: 10, Consumer: viaProxy.Consumer,
			}).Result()
			lost = err == nil && len(pending) > 0 // no answer reaches the subscriber meanwhile
			time.Sleep(5 * time.Millisecond)      // polling a condition with a deadline
		}
		p.setDropReplies(false)
	}
	if !lost {
		t.Fatalf("no delivery was lost on the way in %d tries", tries)
	}

	want := map[string]bool{}
	for _, c := range sent {
		want[c.Event.ID] = true
	}
	for len(want) > 0 {
		delete(want, receive(t, got, "every change, the one whose delivery was lost too").Event.ID)
	}
	eventually(t, "the changes to be acknowledged", func() bool {
		pending, err := raw.XPending(t.Context(), cfg.Stream, cfg.Group).Result()
		return err == nil && pending.Count == 0
	})
}

// TestAChangeInHandIsNotTakenAgain holds a change in its handler for many times the visibility
// timeout, while the subscriber goes on reading and scanning the group for lost and abandoned
// changes: it must not take back the change it has in hand.
func TestAChangeInHandIsNotTakenAgain(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.VisibilityTimeout = 40 * time.Millisecond // a scan every 10 ms
	bus := open(t, cfg)
	raw := rawClient(t, cfg.URL)
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	defer unblock()
	h, got := deliveries(func(context.Context) error {
		<-release
		return nil
	})
	subscribe(t.Context(), t, bus, h)
	sent := changes(1)
	if err := bus.Publish(t.Context(), sent); err != nil {
		t.Fatal(err)
	}
	receive(t, got, "the change")

	// Redis resets a pending entry's idle time and counts one more delivery whenever it is
	// claimed: an entry idle for 25 visibility timeouts was taken by no scan meanwhile.
	var entry goredis.XPendingExt
	eventually(t, "the change to stay in hand for 25 visibility timeouts", func() bool {
		pending, err := raw.XPendingExt(t.Context(), &goredis.XPendingExtArgs{
			Stream: cfg.Stream, Group: cfg.Group, Start: "-", End: "+", Count: 10,
		}).Result()
		if err != nil || len(pending) != 1 {
			return false
		}
		entry = pending[0]
		return entry.Idle >= 25*cfg.VisibilityTimeout || entry.RetryCount > 1 || len(got) > 0
	})
	if entry.RetryCount != 1 || len(got) > 0 {
		t.Errorf("the change in hand was delivered %d times and handed over again %d times, want once and never",
			entry.RetryCount, len(got))
	}
	unblock()
	eventually(t, "the change to be acknowledged", func() bool {
		pending, err := raw.XPending(t.Context(), cfg.Stream, cfg.Group).Result()
		return err == nil && pending.Count == 0
	})
}

// blockedReader tells whether CLIENT LIST shows a client blocked in XREADGROUP.
func blockedReader(clients string) bool {
	for line := range strings.Lines(clients) {
		if strings.Contains(line, "cmd=xreadgroup") && strings.Contains(line, "flags=b") {
			return true
		}
	}
	return false
}

func TestMalformedDeadLetterIDsAreNotFound(t *testing.T) {
	t.Parallel()
	bus := open(t, testConfig(t))
	for _, id := range []string{"", "nope", "0-0", "1", "1-", "-1", "1-x", "-1-0", "18446744073709551616-0", "1-0 2-0"} {
		if err := bus.Redrive(t.Context(), id); !errors.Is(err, ports.ErrNotFound) {
			t.Errorf("Redrive(%q): %v, want %v", id, err, ports.ErrNotFound)
		}
		if err := bus.Discard(t.Context(), id); !errors.Is(err, ports.ErrNotFound) {
			t.Errorf("Discard(%q): %v, want %v", id, err, ports.ErrNotFound)
		}
	}
}

// TestCloseForgetsAnIdleConsumer: a restarted query server gets a new consumer name, so the
// old one must not linger in the group when it holds nothing.
func TestCloseForgetsAnIdleConsumer(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Consumer = "short-lived"
	bus, err := redis.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	raw := rawClient(t, cfg.URL)
	h, got := deliveries(succeed)
	stop := subscribe(t.Context(), t, bus, h)
	if err := bus.Publish(t.Context(), changes(1)); err != nil {
		t.Fatal(err)
	}
	receive(t, got, "the change")
	stop()

	if err := bus.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	consumers, err := raw.XInfoConsumers(t.Context(), cfg.Stream, cfg.Group).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range consumers {
		if c.Name == cfg.Consumer {
			t.Errorf("consumer %s still in the group after Close", c.Name)
		}
	}
}

// BenchmarkPublish measures publishing to a fresh stream on POSTS_REDIS_URL, one change per
// call (as the relay does for a lone command) and twenty per call (a relay batch):
//
//	go test ./adapters/redis -run '^$' -bench Publish
func BenchmarkPublish(b *testing.B) {
	for _, size := range []int{1, 20} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			url := contract.Backend(b, "POSTS_REDIS_URL")
			stream := "hexapost:bench:" + rand.Text()
			bus, err := redis.Open(b.Context(), redis.Config{URL: url, Stream: stream, Log: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = bus.Purge(context.Background()); _ = bus.Close() })
			batch := changes(size)
			b.ResetTimer()
			for b.Loop() {
				if err := bus.Publish(b.Context(), batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "changes/s")
		})
	}
}
