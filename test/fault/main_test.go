// Package fault runs hexapost's fault suite (issue 6): scripted scenarios over real hexapost
// processes and real backends on loopback — processes and servers killed under load, poison
// messages, competing servers, floods of bad requests — each bounded in time and count and each
// ending with a consistency check of the read model against the event store. The suite prints
// one table with a row per scenario.
//
// The CI form runs in the normal `go test ./...`; HEXAPOST_FAULT_SCALE=full (make fault) runs
// the bigger form.
package fault_test

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"hexapost/test/harness"
)

// binary is the hexapost executable built once for the package.
var binary string

func TestMain(m *testing.M) {
	flag.Parse()
	// The scenarios spend most of their time waiting on processes, servers and timeouts, not
	// on the CPU: run more of them at once than the default of GOMAXPROCS, unless told otherwise.
	parallelSet := false
	flag.Visit(func(f *flag.Flag) { parallelSet = parallelSet || f.Name == "test.parallel" })
	if !parallelSet {
		_ = flag.Set("test.parallel", "8")
	}
	bin, remove, err := harness.Build("fault")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = bin
	code := m.Run()
	printTable(os.Stdout)
	remove()
	os.Exit(code)
}

// row is one line of the suite's table.
type row struct {
	Scenario            string
	Sent, Acked, Stored int
	Matching, Posts     int
	Lost, Duplicated    int
	Converged           time.Duration
	// Drifted and Healed, for the drift scenarios: the posts the query servers found drifted
	// and the time from the drift to a read model equal to the store.
	Drifted int
	Healed  time.Duration
}

var (
	rowsMu sync.Mutex
	rows   []row
)

func record(r row) {
	rowsMu.Lock()
	defer rowsMu.Unlock()
	rows = append(rows, r)
}

// setDrift adds what a drift scenario found to its row.
func setDrift(scenario string, drifted int, healed time.Duration) {
	rowsMu.Lock()
	defer rowsMu.Unlock()
	for i := range rows {
		if rows[i].Scenario == scenario {
			rows[i].Drifted, rows[i].Healed = drifted, healed
		}
	}
}

func printTable(w io.Writer) {
	rowsMu.Lock()
	defer rowsMu.Unlock()
	if len(rows) == 0 {
		return
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Scenario < rows[j].Scenario })
	fmt.Fprintf(w, "\nfault suite (%s scale)\n", scaleName())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tsent\tacknowledged\tevents stored\tviews matching\tlost\tduplicated\tconverged in\tdrifted posts\thealed in\t")
	for _, r := range rows {
		drifted, healed := "-", "-"
		if r.Healed > 0 {
			drifted, healed = strconv.Itoa(r.Drifted), r.Healed.Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d/%d\t%d\t%d\t%s\t%s\t%s\t\n", r.Scenario, r.Sent, r.Acked, r.Stored,
			r.Matching, r.Posts, r.Lost, r.Duplicated, r.Converged.Round(time.Millisecond), drifted, healed)
	}
	_ = tw.Flush()
}

// The names below are the package's own spellings of test/harness, which the scenarios use.

// process is a running hexapost.
type process struct {
	*harness.Process
	cmd *exec.Cmd
}

// start runs hexapost with args and extra env on free loopback ports and waits until the servers
// it runs have logged that they listen.
func start(t testing.TB, env map[string]string, args ...string) *process {
	t.Helper()
	p := harness.Start(t, harness.Options{
		Binary: binary,
		// Reads with min_version wait long: the suite checks what the read model converges to
		// under faults on a shared machine, and polls with its own deadline.
		ReadWait:     5 * time.Second,
		ListenWithin: 30 * time.Second,
		MaxLogLines:  1000, // a fault can make a process log a lot
	}, env, args...)
	return &process{Process: p, cmd: p.Cmd()}
}

// Logs returns the log lines kept so far.
func (p *process) Logs() string { return p.LogText() }

// kill sends SIGKILL and waits for the process to exit.
func (p *process) kill(t testing.TB) {
	t.Helper()
	p.Kill(t)
}

// alive reports whether the process is still running.
func (p *process) alive() bool { return p.Alive() }

// response is an HTTP answer with its decoded JSON body.
type response = harness.Response

// send sends a request with a body (a string or []byte as it is, any other value as JSON) and
// returns the answer, or the transport error (expected while a process or server is killed).
func send(method, url string, body any, headers ...string) (response, error) {
	return harness.Send(method, url, body, headers...)
}

// do is send for requests that must reach the server.
func do(t testing.TB, method, url string, body any, headers ...string) response {
	t.Helper()
	return harness.Do(t, method, url, body, headers...)
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	harness.Eventually(t, timeout, 20*time.Millisecond, what, cond)
}
