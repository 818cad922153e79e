// Package e2e tests hexapost from the outside: it builds the binary, runs it as a real process
// and talks to it over real HTTP on loopback.
package e2e_test

import (
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"hexapost/test/harness"
)

// binary is the hexapost executable built once for the package.
var binary string

func TestMain(m *testing.M) {
	bin, remove, err := harness.Build("e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = bin
	code := m.Run()
	remove()
	os.Exit(code)
}

// The names below are the package's own spellings of test/harness, which the tests use.

// process is a running hexapost.
type process struct{ *harness.Process }

// start runs hexapost with args and extra env on free loopback ports and waits until the servers
// it runs have logged that they listen.
func start(t testing.TB, env map[string]string, args ...string) *process {
	t.Helper()
	return startBinary(t, binary, env, args...)
}

// startBinary is start with another build of hexapost.
func startBinary(t testing.TB, bin string, env map[string]string, args ...string) *process {
	t.Helper()
	return &process{harness.Start(t, harness.Options{
		Binary: bin,
		// Reads with min_version wait longer than the 2s default: these tests check what the
		// read model converges to, not how fast, and they share the machine with race-built
		// processes and every backend. A test that needs another wait sets it in env.
		ReadWait:     20 * time.Second,
		ListenWithin: 10 * time.Second,
	}, env, args...)}
}

// stop sends sig and returns the exit code and how long the process took to exit.
func (p *process) stop(t testing.TB, sig syscall.Signal, within time.Duration) (int, time.Duration) {
	t.Helper()
	return p.Stop(t, sig, within)
}

// response is an HTTP answer with its decoded JSON body.
type response = harness.Response

// do sends a request with a JSON body (a string, sent as it is, or a value to encode).
func do(t testing.TB, method, url string, body any, headers ...string) response {
	t.Helper()
	return harness.Do(t, method, url, body, headers...)
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	harness.Eventually(t, timeout, 10*time.Millisecond, what, cond)
}
