package load_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hexapost/api/tooling/load"
)

func TestMixSet(t *testing.T) {
	t.Parallel()
	tests := []struct {
		give    string
		want    load.Mix
		wantErr string
	}{
		{give: "create=1,update=8,delete=1", want: load.Mix{Create: 1, Update: 8, Delete: 1}},
		{give: "update=1", want: load.Mix{Update: 1}},
		{give: " create=3 , delete=0", want: load.Mix{Create: 3}},
		{give: "create=0", wantErr: "every weight is 0"},
		{give: "create=-1", wantErr: "whole number ≥ 0"},
		{give: "create", wantErr: "want kind=weight"},
		{give: "read=1", wantErr: `unknown kind "read"`},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			t.Parallel()
			var got load.Mix
			err := got.Set(tt.give)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Set(%q) = %v, %v; want an error containing %q", tt.give, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Set(%q) = %+v, %v; want %+v", tt.give, got, err, tt.want)
			}
		})
	}
}

// runLoad runs `hexapost bench -json -quiet` with args and returns what it printed.
func runLoad(t *testing.T, args ...string) load.Result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := load.Main(append([]string{"-json", "-quiet"}, args...), &stdout, &stderr); code != 0 {
		t.Fatalf("bench %q exited %d: %s", args, code, stderr.String())
	}
	var res load.Result
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("bench -json printed %q: %v", stdout.String(), err)
	}
	return res
}

// The visibility of each sampled command is read back on its own, from its acknowledgement: a
// query server that holds every read until all the sampled ones have arrived must see them all
// at once. A fixed pool of readers taking samples in turn would keep the rest queued in the
// tool and count that queueing as the servers' visibility latency.
func TestBenchReadsEverySampleAtOnce(t *testing.T) {
	t.Parallel()
	const samples = 40
	var created atomic.Int64
	command := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := created.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"id":"%d","version":1}`, id)
	}))
	defer command.Close()

	var (
		mu       sync.Mutex
		inFlight int
		most     int
		all      = make(chan struct{}) // closed when every sampled read is in flight
		release  = sync.OnceFunc(func() { close(all) })
	)
	query := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inFlight++
		most = max(most, inFlight)
		if inFlight >= samples { // the read of the catch-up after the load may be one of them
			release()
		}
		mu.Unlock()
		select { // held until the last sampled read has arrived; bounded, so a failure ends
		case <-all:
		case <-time.After(5 * time.Second):
		}
		mu.Lock()
		inFlight--
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{}`)
	}))
	defer query.Close()

	res := runLoad(t, "-command", command.URL, "-query", query.URL, "-duration", "1m", "-requests", fmt.Sprint(samples),
		"-concurrency", "4", "-mix", "create=1", "-posts", "1", "-sample", "1")
	if res.Commands != samples || res.Visibility.Count != samples || res.VisibilityFailed != 0 {
		t.Fatalf("%d commands, %d visibility samples, %d failed; want %d, %d, 0",
			res.Commands, res.Visibility.Count, res.VisibilityFailed, samples, samples)
	}
	mu.Lock()
	defer mu.Unlock()
	if most < samples {
		t.Fatalf("the query server saw at most %d sampled reads at once; want all %d", most, samples)
	}
}

// TestBenchWaitsForTheReadSideToCatchUp checks the catch-up after the load: the tool reads the
// last version acknowledged of every post the load changed until the query server returns it,
// and counts the time that took in the end-to-end rate. A query server applies different
// posts' changes side by side, so the post acknowledged first may be returned last: here the
// query server answers its read 503 twice, as one does while its read model is behind, then
// holds it a little before returning it, and returns every other post at once.
func TestBenchWaitsForTheReadSideToCatchUp(t *testing.T) {
	t.Parallel()
	const commands, hold = 20, 300 * time.Millisecond
	var created atomic.Int64
	command := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := created.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"id":"p%d","version":%d}`, id, id)
	}))
	defer command.Close()
	const behind = "/posts/p1?min_version=1"
	var (
		mu    sync.Mutex
		reads = map[string]int{}
	)
	query := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		reads[r.URL.String()]++
		n := reads[r.URL.String()]
		mu.Unlock()
		if r.URL.String() == behind {
			if n <= 2 {
				http.Error(w, "not yet", http.StatusServiceUnavailable)
				return
			}
			time.Sleep(hold) // the server side of the wait being measured, not a wait in the test
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{}`)
	}))
	defer query.Close()

	res := runLoad(t, "-command", command.URL, "-query", query.URL, "-duration", "1m", "-requests", fmt.Sprint(commands),
		"-concurrency", "1", "-mix", "create=1", "-posts", "1", "-sample", "0")
	mu.Lock()
	defer mu.Unlock()
	for id := 1; id <= commands; id++ {
		url := fmt.Sprintf("/posts/p%d?min_version=%d", id, id)
		if want := map[bool]int{true: 3, false: 1}[url == behind]; reads[url] != want {
			t.Errorf("the query server was asked %s %d times; want %d", url, reads[url], want)
		}
	}
	if len(reads) != commands {
		t.Errorf("the query server was asked %d URLs, want the %d posts' last versions: %v", len(reads), commands, reads)
	}
	if res.CatchUpFailed != "" || res.CaughtUp < hold.Seconds() {
		t.Fatalf("caught up after %.3f s (failed: %q); want at least %.1f s", res.CaughtUp, res.CatchUpFailed, hold.Seconds())
	}
	if wantRate := float64(res.Commands) / (res.Seconds + res.CaughtUp); math.Abs(res.EndToEnd-wantRate) > wantRate*1e-6 || res.EndToEnd >= res.PerSecond {
		t.Fatalf("end to end %.1f/s with %d commands in %.3f s + %.3f s, command rate %.1f/s; want %.1f/s, below the command rate",
			res.EndToEnd, res.Commands, res.Seconds, res.CaughtUp, res.PerSecond, wantRate)
	}
}
