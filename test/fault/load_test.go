package fault_test

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// scale is the size of a scenario's load.
type scale struct {
	commands, posts, clients int
	// loadTimeout bounds the load of one scenario; converge bounds its consistency check.
	loadTimeout, converge time.Duration
}

// currentScale is the CI form (part of go test ./...), or the full form with
// HEXAPOST_FAULT_SCALE=full (make fault).
func currentScale() scale {
	if scaleName() == "full" {
		return scale{commands: 2000, posts: 100, clients: 16, loadTimeout: 4 * time.Minute, converge: 3 * time.Minute}
	}
	return scale{commands: 400, posts: 40, clients: 8, loadTimeout: 90 * time.Second, converge: 90 * time.Second}
}

func scaleName() string {
	if os.Getenv("HEXAPOST_FAULT_SCALE") == "full" {
		return "full"
	}
	return "ci"
}

// targets are the command servers the load goes to. A client holds the read lock for the length
// of a request; replacing a server (a restart after a kill) takes the write lock, so clients
// wait for the new server rather than spinning on a dead port.
type targets struct {
	mu   sync.RWMutex
	urls []string
}

func newTargets(urls ...string) *targets { return &targets{urls: urls} }

func (tg *targets) replace(i int, restart func() string) {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	tg.urls[i] = restart()
}

// ack is a command that got a 2xx: the post, the version the answer named and the content the
// command set (unique per command), to be found again in the event store.
type ack struct {
	id      string
	version int64
	content string
}

// ledger is what the load generator sent and what was acknowledged.
type ledger struct {
	mu       sync.Mutex
	ids      []string
	sent     int
	acks     []ack
	statuses map[int]int // non-2xx answers by status
	errs     int         // transport errors (a killed server)
	latest   []int64     // the highest version acknowledged per post
}

func (l *ledger) add(p int, a ack, status int, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sent++
	switch {
	case err != nil:
		l.errs++
	case status >= 200 && status < 300:
		l.acks = append(l.acks, a)
		l.latest[p] = max(l.latest[p], a.version)
	default:
		l.statuses[status]++
	}
}

func (l *ledger) known(p int) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.latest[p]
}

func (l *ledger) summary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprintf("sent %d, acknowledged %d, other answers %v, transport errors %d", l.sent, len(l.acks), l.statuses, l.errs)
}

// loadPlan says what the load does besides plain updates.
type loadPlan struct {
	// marks are update numbers; reached[i] is closed when a client draws marks[i], so a
	// scenario injects its fault at a known point of the load.
	marks []int
	// conditional sends every n-th update with If-Match on the last version the load knows
	// of (0: never), so that concurrent clients conflict.
	conditional int
}

// runLoad creates sc.posts posts, then sends updates from sc.clients clients until
// sc.commands commands in all were sent or sc.loadTimeout passed. fault runs beside the load,
// woken by the marks it asked for; runLoad returns once both are done.
func runLoad(t *testing.T, sc scale, tg *targets, plan loadPlan, fault func(reached []chan struct{})) *ledger {
	t.Helper()
	l := &ledger{statuses: map[int]int{}, ids: make([]string, sc.posts), latest: make([]int64, sc.posts)}
	var wg sync.WaitGroup
	var next atomic.Int64
	for range sc.clients {
		wg.Go(func() {
			for {
				p := int(next.Add(1)) - 1
				if p >= sc.posts {
					return
				}
				tg.mu.RLock()
				url := tg.urls[p%len(tg.urls)]
				tg.mu.RUnlock()
				r, err := send("POST", url+"/posts", map[string]string{
					"title": fmt.Sprintf("post %d", p), "content": fmt.Sprintf("c%d", p), "author_name": "fault",
				})
				if err != nil || r.Status != http.StatusCreated {
					t.Errorf("create post %d: %v %d %s", p, err, r.Status, r.Raw)
					return
				}
				l.ids[p] = r.Str("id")
				l.add(p, ack{id: r.Str("id"), version: r.Num("version"), content: fmt.Sprintf("c%d", p)}, r.Status, nil)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	reached := make([]chan struct{}, len(plan.marks))
	for i := range reached {
		reached[i] = make(chan struct{})
	}
	faultDone := make(chan struct{})
	go func() {
		defer close(faultDone)
		if fault != nil {
			fault(reached)
		}
	}()
	updates := int64(sc.commands - sc.posts)
	deadline := time.Now().Add(sc.loadTimeout)
	next.Store(0)
	for range sc.clients {
		wg.Go(func() {
			for {
				n := next.Add(1)
				if n > updates || time.Now().After(deadline) {
					return
				}
				for i, m := range plan.marks {
					if int64(m) == n {
						close(reached[i])
					}
				}
				p := int(n) % sc.posts
				content := fmt.Sprintf("u%d", n)
				var headers []string
				if plan.conditional > 0 && n%int64(plan.conditional) == 0 {
					headers = []string{"If-Match", strconv.Quote(strconv.FormatInt(l.known(p), 10))}
				}
				tg.mu.RLock()
				url := tg.urls[int(n)%len(tg.urls)]
				r, err := send("PATCH", url+"/posts/"+l.ids[p], map[string]string{"content": content}, headers...)
				tg.mu.RUnlock()
				l.add(p, ack{id: l.ids[p], version: r.Num("version"), content: content}, r.Status, err)
			}
		})
	}
	wg.Wait()
	// A mark the load never reached (it ran out of time) still releases the fault, which must
	// then heal what it broke before returning.
	for i := range reached {
		select {
		case <-reached[i]:
		default:
			close(reached[i])
		}
	}
	select {
	case <-faultDone:
	case <-time.After(2 * time.Minute):
		t.Fatal("the fault did not finish within 2m of the load")
	}
	t.Logf("load: %s", l.summary())
	return l
}
