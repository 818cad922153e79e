package mysql_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/google/uuid"

	"hexapost/adapters/mysql"
	"hexapost/adapters/mysql/mysqltest"
	"hexapost/core/post"
	"hexapost/ports"
)

// waitFor bounds every wait of these tests.
const waitFor = 10 * time.Second

var epoch = time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)

// open returns a store on a fresh database, closed when tb ends, and the DSN of the database.
func open(tb testing.TB, cfg mysql.Config) (*mysql.EventStore, string) {
	tb.Helper()
	if cfg.DSN == "" {
		cfg.DSN = mysqltest.NewDatabase(tb)
	}
	s, err := mysql.Open(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Error(err)
		}
	})
	return s, cfg.DSN
}

// rawDB is a plain connection pool to the database of dsn, for looking behind the store.
func rawDB(tb testing.TB, dsn string) *sql.DB {
	tb.Helper()
	cfg, err := gomysql.ParseDSN(dsn)
	if err != nil {
		tb.Fatal(err)
	}
	connector, err := gomysql.NewConnector(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	db := sql.OpenDB(connector)
	tb.Cleanup(func() { _ = db.Close() })
	return db
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }

// story decides changes with the real aggregate, so that every change is one the core could
// append.
type story struct {
	tb    testing.TB
	posts map[string]*post.Post
	at    time.Time
}

func newStory(tb testing.TB) *story {
	return &story{tb: tb, posts: map[string]*post.Post{}, at: epoch}
}

func (s *story) stamp() post.Stamp {
	s.at = s.at.Add(time.Second)
	return post.Stamp{EventID: newID(), At: s.at}
}

// create returns the change that creates the post id.
func (s *story) create(id string) ports.Change {
	s.tb.Helper()
	p, err := post.FromHistory(id, nil)
	if err != nil {
		s.tb.Fatal(err)
	}
	e, err := p.Create(post.Create{Title: "title", Content: "content", AuthorName: "ada"}, s.stamp())
	if err != nil {
		s.tb.Fatal(err)
	}
	s.posts[id] = p
	return s.apply(p, e)
}

// retitle returns the change that gives the post id a new title.
func (s *story) retitle(id, title string) ports.Change {
	s.tb.Helper()
	p := s.posts[id]
	events, err := p.Update(post.Update{Title: &title}, s.stamp())
	if err != nil || len(events) != 1 {
		s.tb.Fatalf("update %s: %d events, %v", id, len(events), err)
	}
	return s.apply(p, events[0])
}

func (s *story) apply(p *post.Post, e post.Event) ports.Change {
	s.tb.Helper()
	if err := p.Apply(e); err != nil {
		s.tb.Fatal(err)
	}
	return ports.Change{Event: e, State: p.State()}
}

func appendOK(tb testing.TB, s *mysql.EventStore, changes ...ports.Change) {
	tb.Helper()
	e := changes[0].Event
	err := s.Append(context.Background(), ports.Append{PostID: e.PostID, ExpectedVersion: e.Version - 1, Changes: changes})
	if err != nil {
		tb.Fatalf("Append %s v%d: %v", e.PostID, e.Version, err)
	}
}

// relayOnce runs one Relay round and returns what it published.
func relayOnce(tb testing.TB, s *mysql.EventStore, maxChanges int) []ports.Change {
	tb.Helper()
	var got []ports.Change
	n, err := s.Relay(context.Background(), maxChanges, func(_ context.Context, cs []ports.Change) error {
		got = cs
		return nil
	})
	if err != nil || n != len(got) {
		tb.Fatalf("Relay = %d, %v; published %d", n, err, len(got))
	}
	return got
}

func ids(cs []ports.Change) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = fmt.Sprintf("%s v%d", c.Event.PostID, c.Event.Version)
	}
	return out
}

// receive waits for ch, failing tb with msg if nothing comes in time.
func receive[T any](tb testing.TB, ch <-chan T, msg string) T {
	tb.Helper()
	timer := time.NewTimer(waitFor)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		tb.Fatalf("timed out waiting for %s", msg)
		var zero T
		return zero
	}
}

// eventually polls cond until it holds, failing tb with msg if it does not in time.
func eventually(tb testing.TB, cond func() bool, msg string) {
	tb.Helper()
	deadline := time.NewTimer(waitFor)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			tb.Fatalf("timed out waiting for %s", msg)
		case <-tick.C:
		}
	}
}

// clock is a settable time source for Config.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// proxy forwards TCP connections to a server, and can be cut off and restored on the same
// address, to play a server that goes away and comes back.
type proxy struct {
	tb     testing.TB
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
}

func newProxy(tb testing.TB, target string) *proxy {
	tb.Helper()
	p := &proxy{tb: tb, target: target, addr: "127.0.0.1:0", conns: map[net.Conn]struct{}{}}
	p.start()
	tb.Cleanup(p.stop)
	return p
}

// start listens (again) on the proxy's address.
func (p *proxy) start() {
	p.tb.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.tb.Fatal(err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	go p.accept(ln)
}

// stop closes the listener and every connection: the server is gone.
func (p *proxy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		_ = c.Close()
		delete(p.conns, c)
	}
}

func (p *proxy) accept(ln net.Listener) {
	for {
		down, err := ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = down.Close()
			continue
		}
		p.mu.Lock()
		if p.ln != ln { // stopped meanwhile
			p.mu.Unlock()
			_, _ = down.Close(), up.Close()
			return
		}
		p.conns[down], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		go p.pipe(down, up)
		go p.pipe(up, down)
	}
}

// pipe copies until either side closes, then closes both.
func (p *proxy) pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	_, _ = dst.Close(), src.Close()
}

// commitGate holds the commit of one post's append: its hook, a Config.BeforeCommit, closes
// inserted once that append's rows are written in the open transaction, then waits until commit
// is closed (or the batch's context ends, which rolls the transaction back).
type commitGate struct {
	postID   string
	inserted chan struct{}
	commit   chan struct{}
}

func newCommitGate(postID string) *commitGate {
	return &commitGate{postID: postID, inserted: make(chan struct{}), commit: make(chan struct{})}
}

func (g *commitGate) hook(ctx context.Context, postID string) error {
	if postID != g.postID {
		return nil
	}
	close(g.inserted)
	select {
	case <-g.commit:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
