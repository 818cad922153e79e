// Package load is the load tool behind `hexapost bench`: it sends a mix of commands to a
// running command server from concurrent clients, measures how long each acknowledged version
// takes to become visible on the query server, and compares hexapost with a bare net/http
// server doing the least a JSON API can do. It talks to hexapost only through api/client.
package load

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"hexapost/api/client"
)

const benchUsage = `Usage: hexapost bench [flags]

Sends commands to a running command server from concurrent clients and, for a sample of the
acknowledged ones, measures how long until the query server returns that version. Bounded by
-duration and -requests, whichever comes first; Ctrl-C ends it early with the figures so far.
After the load it waits until the query server returns the last version acknowledged of every
post the load changed, and reports the rate the whole pipeline absorbed ("end to end"), which
is lower than the command rate when the read side falls behind.

`

// config is what one load run does.
type config struct {
	CommandURL  string
	QueryURL    string
	Duration    time.Duration
	Requests    int
	Concurrency int
	// Mix weighs the commands: create, update, delete.
	Mix Mix
	// Posts is how many posts are created before the run, for the updates to spread over.
	Posts int
	// Sample is the share of acknowledged commands whose visibility is measured (0–1).
	Sample float64
	// Rate, when positive, paces the clients together to this many commands a second.
	Rate float64
	// Progress receives a line a second; nil for none.
	Progress io.Writer
}

// Mix is the weight of each command kind in a load run.
type Mix struct{ Create, Update, Delete int }

// Set reads "create=1,update=8,delete=1" into m; kinds left out weigh 0. With String, it makes
// a Mix a flag.Value.
func (m *Mix) Set(s string) error {
	got, err := parseMix(s)
	if err != nil {
		return err
	}
	*m = got
	return nil
}

func parseMix(s string) (Mix, error) {
	var m Mix
	for part := range strings.SplitSeq(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.Atoi(v)
		if !ok || err != nil || n < 0 {
			return Mix{}, fmt.Errorf("mix %q: want kind=weight with a whole number ≥ 0, e.g. create=1,update=8,delete=1", s)
		}
		switch k {
		case "create":
			m.Create = n
		case "update":
			m.Update = n
		case "delete":
			m.Delete = n
		default:
			return Mix{}, fmt.Errorf("mix %q: unknown kind %q (create, update, delete)", s, k)
		}
	}
	if m.Create+m.Update+m.Delete == 0 {
		return Mix{}, fmt.Errorf("mix %q: every weight is 0", s)
	}
	return m, nil
}

// String writes m as Set reads it.
func (m Mix) String() string {
	return fmt.Sprintf("create=%d,update=%d,delete=%d", m.Create, m.Update, m.Delete)
}

// Latency is a latency distribution, in milliseconds.
type Latency struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
}

func latencyOf(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	slices.Sort(ds)
	at := func(q float64) float64 {
		return float64(ds[min(len(ds)-1, int(q*float64(len(ds))))].Microseconds()) / 1000
	}
	return Latency{Count: len(ds), P50: at(.50), P99: at(.99), P999: at(.999), Max: at(1)}
}

// Result is what a load run measured, as `hexapost bench -json` prints it.
type Result struct {
	Concurrency int     `json:"concurrency"`
	Mix         string  `json:"mix"`
	Rate        float64 `json:"rate,omitempty"`
	Seconds     float64 `json:"seconds"`
	Commands    int     `json:"commands"`
	PerSecond   float64 `json:"commands_per_second"`
	// ByKind counts the commands sent of each kind.
	ByKind map[string]int `json:"by_kind"`
	// ByStatus counts the answers by HTTP status; "transport" counts requests with no answer.
	ByStatus   map[string]int `json:"by_status"`
	Errors     int            `json:"errors"`
	Command    Latency        `json:"command_latency"`
	Visibility Latency        `json:"visibility_latency"`
	// VisibilityFailed counts sampled reads that did not return the version (e.g. 503).
	VisibilityFailed int `json:"visibility_failed"`
	// VisibilitySkipped counts samples left unmeasured because too many reads were in flight.
	VisibilitySkipped int `json:"visibility_skipped,omitempty"`
	// CaughtUp is how many seconds after the load the query server had returned the last
	// version acknowledged of every post the load changed. A query server applies each post's
	// changes in order, but different posts' side by side, so by then, and not before, the read
	// side had applied what the load sent.
	CaughtUp float64 `json:"caught_up_seconds,omitempty"`
	// EndToEnd is the commands a second the whole pipeline absorbed: Commands over the load's
	// length plus CaughtUp. Where the read side keeps up, it is PerSecond.
	EndToEnd float64 `json:"end_to_end_per_second,omitempty"`
	// CatchUpFailed says why the catch-up was not measured, when it was not.
	CatchUpFailed string `json:"catch_up_failed,omitempty"`
}

type acked struct {
	id      string
	version int64
	at      time.Time
}

type benchRun struct {
	cfg    config
	client *client.Client
	ids    []string // the posts updates spread over

	mu          sync.Mutex
	deletable   []string // posts created by the run, for deletes
	latencies   []time.Duration
	byKind      map[string]int
	byStatus    map[string]int
	visible     []time.Duration
	visibleFail int
	// visibleSkipped counts samples not measured because maxVisibilityReads were in flight.
	visibleSkipped int
	// lastOf holds, per post the load changed, its last version acknowledged, for the catch-up.
	lastOf  map[string]acked
	reads   chan struct{} // a slot per sampled read in flight
	readers sync.WaitGroup

	sent atomic.Int64
	done atomic.Int64
	// begin is when the measured run started, for pacing.
	begin time.Time
}

// run runs one load: creates cfg.Posts posts, then sends the mix until the duration, the
// request count or ctx ends.
func run(ctx context.Context, cfg config) (Result, error) {
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConns: 2 * cfg.Concurrency, MaxIdleConnsPerHost: 2 * cfg.Concurrency,
	}}
	defer hc.CloseIdleConnections()
	c, err := client.New(client.Config{CommandURL: cfg.CommandURL, QueryURL: cfg.QueryURL, HTTP: hc})
	if err != nil {
		return Result{}, err
	}
	r := &benchRun{
		cfg: cfg, client: c,
		byKind: map[string]int{}, byStatus: map[string]int{}, lastOf: map[string]acked{},
	}
	if err := r.setup(ctx); err != nil {
		return Result{}, err
	}
	r.reads = make(chan struct{}, maxVisibilityReads)
	runCtx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	stopProgress := r.progress(runCtx)
	begin := time.Now()
	r.begin = begin
	var clients sync.WaitGroup
	for c := range cfg.Concurrency {
		clients.Go(func() { r.client1(runCtx, uint64(c)) })
	}
	clients.Wait()
	elapsed := time.Since(begin)
	stopProgress()
	var caughtUp time.Duration
	var catchUpErr error
	var catchingUp sync.WaitGroup
	if cfg.QueryURL != "" && len(r.lastOf) > 0 {
		catchingUp.Go(func() { caughtUp, catchUpErr = r.catchUp(ctx, begin.Add(elapsed)) })
	}
	r.readers.Wait()
	catchingUp.Wait()

	res := Result{
		Concurrency: cfg.Concurrency, Mix: cfg.Mix.String(), Rate: cfg.Rate, Seconds: elapsed.Seconds(),
		Commands: int(r.done.Load()), ByKind: r.byKind, ByStatus: r.byStatus,
		Command: latencyOf(r.latencies), Visibility: latencyOf(r.visible), VisibilityFailed: r.visibleFail,
		VisibilitySkipped: r.visibleSkipped,
	}
	res.PerSecond = float64(res.Commands) / elapsed.Seconds()
	switch {
	case catchUpErr != nil:
		res.CatchUpFailed = catchUpErr.Error()
	case caughtUp > 0:
		res.CaughtUp = caughtUp.Seconds()
		res.EndToEnd = float64(res.Commands) / (elapsed + caughtUp).Seconds()
	}
	for status, n := range r.byStatus {
		if !strings.HasPrefix(status, "2") {
			res.Errors += n
		}
	}
	return res, nil
}

// setup creates the posts the updates spread over.
func (r *benchRun) setup(ctx context.Context) error {
	if r.cfg.Mix.Update == 0 {
		return nil
	}
	r.ids = make([]string, r.cfg.Posts)
	return inTurn(len(r.ids), r.cfg.Concurrency, func(i int) error {
		p, err := r.client.Create(ctx, newPost(i))
		if err != nil {
			return fmt.Errorf("create post %d of %d at %s: %w", i+1, len(r.ids), r.cfg.CommandURL, err)
		}
		r.ids[i] = p.ID
		return nil
	})
}

// inTurn calls f for 0 to n-1 from up to workers goroutines, each taking the next index in
// turn, and returns the first error; after an error no further index is begun.
func inTurn(n, workers int, f func(i int) error) error {
	var next atomic.Int64
	var failed atomic.Bool
	errs := make(chan error, max(min(workers, n), 1))
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n && !failed.Load(); i = int(next.Add(1) - 1) {
				if err := f(i); err != nil {
					failed.Store(true)
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// client1 is one client: it sends commands one after the other until ctx ends or the run has
// sent its requests.
func (r *benchRun) client1(ctx context.Context, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, uint64(time.Now().UnixNano())))
	m := r.cfg.Mix
	total := m.Create + m.Update + m.Delete
	var lat []time.Duration
	kinds, statuses := map[string]int{}, map[string]int{}
	lastOf := map[string]acked{}
	defer func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.latencies = append(r.latencies, lat...)
		for id, a := range lastOf {
			if a.version > r.lastOf[id].version {
				r.lastOf[id] = a
			}
		}
		for k, n := range kinds {
			r.byKind[k] += n
		}
		for k, n := range statuses {
			r.byStatus[k] += n
		}
	}()
	for ctx.Err() == nil {
		slot := r.sent.Add(1)
		if slot > int64(r.cfg.Requests) || !r.pace(ctx, slot) {
			return
		}
		n := rng.IntN(total)
		kind, send, status := "create", func() (client.Post, error) {
			return r.client.Create(ctx, newPost(int(r.sent.Load())))
		}, http.StatusCreated
		switch {
		case n < m.Create:
		case n < m.Create+m.Update:
			id, content := r.ids[rng.IntN(len(r.ids))], fmt.Sprintf("update %d from client %d", rng.Int(), seed)
			kind, status = "update", http.StatusOK
			send = func() (client.Post, error) { return r.client.Update(ctx, id, client.Changes{Content: &content}) }
		default:
			if id := r.takeDeletable(); id != "" {
				kind, status = "delete", http.StatusOK
				send = func() (client.Post, error) { return r.client.Delete(ctx, id) }
			}
		}
		sampled := r.cfg.Sample > 0 && r.cfg.QueryURL != "" && rng.Float64() < r.cfg.Sample
		begin := time.Now()
		p, err := send()
		if err != nil && ctx.Err() != nil {
			return // cut off by the end of the run: not a result
		}
		lat = append(lat, time.Since(begin))
		kinds[kind]++
		r.done.Add(1)
		if err != nil {
			if s := client.StatusOf(err); s != 0 {
				statuses[strconv.Itoa(s)]++
			} else {
				statuses["transport"]++
			}
			continue
		}
		statuses[strconv.Itoa(status)]++
		if kind == "create" && m.Delete > 0 {
			r.addDeletable(p.ID)
		}
		// With a query server, every answer may be its post's last, which the catch-up reads.
		a := acked{id: p.ID, version: p.Version, at: time.Now()}
		if r.cfg.QueryURL != "" && a.version > lastOf[a.id].version {
			lastOf[a.id] = a
		}
		if sampled {
			r.sample(a)
		}
	}
}

// pace waits until the slot'th command is due at the configured rate; false if ctx ended first.
func (r *benchRun) pace(ctx context.Context, slot int64) bool {
	if r.cfg.Rate <= 0 {
		return true
	}
	due := r.begin.Add(time.Duration(float64(slot-1) / r.cfg.Rate * float64(time.Second)))
	wait := time.Until(due)
	if wait <= 0 {
		return true
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (r *benchRun) addDeletable(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.deletable) < 100_000 {
		r.deletable = append(r.deletable, id)
	}
}

func (r *benchRun) takeDeletable() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.deletable) == 0 {
		return ""
	}
	p := r.deletable[len(r.deletable)-1]
	r.deletable = r.deletable[:len(r.deletable)-1]
	return p
}

// maxVisibilityReads bounds the sampled reads in flight at once. Each waits on the query server
// for its version, so a fixed handful of readers taking samples in turn would queue them and
// count the queueing as visibility latency; one read per sample, started at the
// acknowledgement, measures only the servers.
const maxVisibilityReads = 4096

// sample starts the read of one acknowledged version, unless maxVisibilityReads are in flight:
// then the sample is skipped and counted, rather than slowing the clients or queueing.
func (r *benchRun) sample(s acked) {
	select {
	case r.reads <- struct{}{}:
	default:
		r.mu.Lock()
		r.visibleSkipped++
		r.mu.Unlock()
		return
	}
	r.readers.Go(func() {
		defer func() { <-r.reads }()
		r.measureVisibility(s)
	})
}

// measureVisibility reads a sampled version back from the query server, waiting for it with
// min_version, and records how long after the acknowledgement it was returned.
func (r *benchRun) measureVisibility(s acked) {
	ok := r.readBack(context.Background(), s)
	took := time.Since(s.at)
	r.mu.Lock()
	defer r.mu.Unlock()
	if !ok {
		r.visibleFail++
		return
	}
	r.visible = append(r.visible, took)
}

// readBack reads an acknowledged version from the query server with min_version, which waits
// for it up to the server's read wait, and reports whether the server returned it (200, or 410
// for a post deleted at or before that version).
func (r *benchRun) readBack(ctx context.Context, a acked) bool {
	_, err := r.client.Get(ctx, a.id, a.version)
	return err == nil || client.StatusOf(err) == http.StatusGone
}

// catchUpWithin bounds the wait for the read side after the load.
const catchUpWithin = 5 * time.Minute

// catchUpReaders is how many posts the catch-up reads back at once.
const catchUpReaders = 8

// catchUp reads the last version acknowledged of every post the load changed from the query
// server until each is returned, oldest acknowledgement first, and says how long after loadEnd
// the last of them was. Each read waits on the server (min_version) for the server's read wait;
// one that ends without the version is made again.
func (r *benchRun) catchUp(ctx context.Context, loadEnd time.Time) (time.Duration, error) {
	ctx, cancel := context.WithDeadlineCause(ctx, loadEnd.Add(catchUpWithin),
		fmt.Errorf("the read side did not catch up within %s of the load's end", catchUpWithin))
	defer cancel()
	posts := slices.SortedFunc(maps.Values(r.lastOf), func(a, b acked) int { return a.at.Compare(b.at) })
	// The first failure is the answer; it ends the other readers' waits, whose failures follow.
	var first error
	var once sync.Once
	err := inTurn(len(posts), catchUpReaders, func(i int) error {
		err := r.waitFor(ctx, posts[i])
		if err != nil {
			once.Do(func() { first = err; cancel() })
		}
		return err
	})
	if err != nil {
		return 0, first
	}
	return time.Since(loadEnd), nil
}

// waitFor reads an acknowledged version back until the query server returns it.
func (r *benchRun) waitFor(ctx context.Context, a acked) error {
	for !r.readBack(ctx, a) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("the query server did not return post %s version %d: %w", a.id, a.version, context.Cause(ctx))
		case <-time.After(100 * time.Millisecond): // the server already waited; do not spin on a fast error
		}
	}
	return nil
}

// progress prints a line a second until stop is called.
func (r *benchRun) progress(ctx context.Context) (stop func()) {
	if r.cfg.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		begin := time.Now()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		last := int64(0)
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
				n := r.done.Load()
				fmt.Fprintf(r.cfg.Progress, "%6.0fs %9d commands %8d/s\n", time.Since(begin).Seconds(), n, n-last)
				last = n
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// newPost is a create of about 300 bytes.
func newPost(i int) client.NewPost {
	return client.NewPost{Title: fmt.Sprintf("bench post %d", i), Content: benchContent, AuthorName: fmt.Sprintf("bench-%d", i%50)}
}

var benchContent = strings.Repeat("lorem ipsum ", 20)

// Main runs `hexapost bench` with args (the flags after "bench") and returns the exit code: 0
// after a run, 1 when the run failed, 2 for a usage error.
func Main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, benchUsage); fs.PrintDefaults() }
	cfg := config{Mix: Mix{Create: 1, Update: 8, Delete: 1}}
	fs.StringVar(&cfg.CommandURL, "command", "http://127.0.0.1:3000", "command server URL")
	fs.StringVar(&cfg.QueryURL, "query", "http://127.0.0.1:4000", "query server URL; empty to skip visibility")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "longest run")
	fs.IntVar(&cfg.Requests, "requests", 200_000, "most commands sent")
	fs.IntVar(&cfg.Concurrency, "concurrency", 16, "concurrent clients")
	fs.Var(&cfg.Mix, "mix", "weights of the command kinds")
	fs.IntVar(&cfg.Posts, "posts", 100, "posts created first, for the updates to spread over")
	fs.Float64Var(&cfg.Sample, "sample", 0.1, "share of acknowledged commands whose visibility is measured (0–1)")
	fs.Float64Var(&cfg.Rate, "rate", 0, "commands a second for all clients together; 0 for as fast as they go")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	ceiling := fs.Bool("ceiling", false, "measure a bare net/http server decoding the same JSON instead (creates only)")
	serveCeiling := fs.String("serve-ceiling", "", "serve the bare server of -ceiling on this address, print its URL, stop when standard input closes (-ceiling starts it)")
	quiet := fs.Bool("quiet", false, "no progress lines")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *serveCeiling != "" {
		return serveCeilingUntilEOF(*serveCeiling, os.Stdin, stdout, stderr)
	}
	switch {
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "hexapost bench: unexpected arguments %q\n", fs.Args())
		return 2
	case cfg.Duration <= 0 || cfg.Requests <= 0 || cfg.Concurrency <= 0 || cfg.Posts <= 0:
		fmt.Fprintln(stderr, "hexapost bench: -duration, -requests, -concurrency and -posts must be positive")
		return 2
	case cfg.Rate < 0:
		fmt.Fprintln(stderr, "hexapost bench: -rate must not be negative")
		return 2
	case cfg.Sample < 0 || cfg.Sample > 1:
		fmt.Fprintln(stderr, "hexapost bench: -sample must be between 0 and 1")
		return 2
	}
	if !*quiet {
		cfg.Progress = stderr
	}
	if *ceiling {
		url, stop, err := startCeilingProcess()
		if err != nil {
			fmt.Fprintf(stderr, "hexapost bench: %v\n", err)
			return 1
		}
		defer stop()
		cfg.CommandURL, cfg.QueryURL, cfg.Mix, cfg.Sample = url, "", Mix{Create: 1}, 0
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	res, err := run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "hexapost bench: %v\n", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return 1
		}
		return 0
	}
	printBench(stdout, res)
	return 0
}

func printBench(w io.Writer, r Result) {
	fmt.Fprintf(w, "commands      %d in %.1fs at %d clients (%s): %.0f/s\n",
		r.Commands, r.Seconds, r.Concurrency, r.Mix, r.PerSecond)
	if r.Rate > 0 {
		fmt.Fprintf(w, "paced at      %.0f/s\n", r.Rate)
	}
	fmt.Fprintf(w, "latency       p50 %.2f ms   p99 %.2f ms   p99.9 %.2f ms   max %.2f ms\n",
		r.Command.P50, r.Command.P99, r.Command.P999, r.Command.Max)
	if r.Visibility.Count > 0 || r.VisibilityFailed > 0 {
		fmt.Fprintf(w, "visibility    p50 %.2f ms   p99 %.2f ms   (%d sampled, %d not returned)\n",
			r.Visibility.P50, r.Visibility.P99, r.Visibility.Count, r.VisibilityFailed)
	}
	if r.VisibilitySkipped > 0 {
		fmt.Fprintf(w, "              %d samples skipped: %d reads were in flight\n", r.VisibilitySkipped, maxVisibilityReads)
	}
	switch {
	case r.CatchUpFailed != "":
		fmt.Fprintf(w, "caught up     no: %s\n", r.CatchUpFailed)
	case r.CaughtUp > 0:
		fmt.Fprintf(w, "caught up     %.2f s after the load: end to end %.0f/s\n", r.CaughtUp, r.EndToEnd)
	}
	kinds := make([]string, 0, len(r.ByKind))
	for k, n := range r.ByKind {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
	}
	slices.Sort(kinds)
	statuses := make([]string, 0, len(r.ByStatus))
	for s, n := range r.ByStatus {
		statuses = append(statuses, fmt.Sprintf("%s: %d", s, n))
	}
	slices.Sort(statuses)
	fmt.Fprintf(w, "sent          %s\n", strings.Join(kinds, ", "))
	fmt.Fprintf(w, "by status     %s (errors %d)\n", strings.Join(statuses, ", "), r.Errors)
}

// startCeilingProcess starts the ceiling server in a process of its own (`hexapost bench
// -serve-ceiling`) and returns its URL and a function that stops it. The command server it is
// compared with runs in a process of its own too: served from the load tool's process, the
// bare server's requests would be handed over within one Go runtime instead of woken across
// processes, a gain no deployed server has.
func startCeilingProcess() (string, func(), error) {
	exe, err := os.Executable()
	if err != nil {
		return "", nil, fmt.Errorf("ceiling server: %w", err)
	}
	cmd := exec.Command(exe, "bench", "-serve-ceiling", "127.0.0.1:0")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", nil, fmt.Errorf("ceiling server: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, fmt.Errorf("ceiling server: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("ceiling server: %w", err)
	}
	stop := func() {
		_ = stdin.Close() // the server's signal to stop
		_ = cmd.Wait()
	}
	hung := time.AfterFunc(10*time.Second, func() { _ = cmd.Process.Kill() })
	url, err := bufio.NewReader(stdout).ReadString('\n')
	hung.Stop()
	if err != nil {
		stop()
		return "", nil, fmt.Errorf("ceiling server: no URL from %s: %w", exe, err)
	}
	return strings.TrimSpace(url), stop, nil
}

// serveCeilingUntilEOF serves the ceiling server on addr, prints its URL, and returns once in,
// its standard input, closes: the process that started it closes it to stop it, and so does
// that process's exit.
func serveCeilingUntilEOF(addr string, in io.Reader, stdout, stderr io.Writer) int {
	url, stop, err := startCeilingServer(addr)
	if err != nil {
		fmt.Fprintf(stderr, "hexapost bench: %v\n", err)
		return 1
	}
	defer stop()
	fmt.Fprintln(stdout, url)
	_, _ = io.Copy(io.Discard, in)
	return 0
}

// startCeilingServer serves POST /posts on addr with the least a JSON API can do: decode the
// body into a struct and answer 201 with a small JSON document. It is the ceiling the command
// server is compared with.
func startCeilingServer(addr string) (string, func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("ceiling server: %w", err)
	}
	var n atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("POST /posts", func(w http.ResponseWriter, req *http.Request) {
		var in struct {
			Title      string `json:"title"`
			Content    string `json:"content"`
			AuthorName string `json:"author_name"`
		}
		if err := json.NewDecoder(req.Body).Decode(&in); err != nil || in.Title == "" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]any{"id": strconv.FormatInt(n.Add(1), 10), "version": 1})
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { _ = srv.Close() }, nil
}
