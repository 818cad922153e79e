// Package harness runs hexapost from the outside for the suites in test/e2e and test/fault: it
// builds the binary, starts it as a real process on free loopback ports, talks to it over real
// HTTP, and gives each test throwaway databases and private backend servers it may kill.
//
// Real backends come from their env variables through contract.Backend, so a missing one skips
// the test, except under CI=true, where it fails it.
package harness

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Build builds hexapost with the race detector into a new temporary directory named after the
// suite, from the module two directories up (the suites live in test/<suite>). It returns the
// binary and a func that removes the directory. The go tool's output goes to stderr.
func Build(suite string) (binary string, remove func(), err error) {
	dir, err := os.MkdirTemp("", "hexapost-"+suite+"-")
	if err != nil {
		return "", nil, err
	}
	remove = func() { _ = os.RemoveAll(dir) }
	binary = filepath.Join(dir, "hexapost")
	build := exec.Command("go", "build", "-race", "-o", binary, ".")
	build.Dir = filepath.Join("..", "..")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		remove()
		return "", nil, fmt.Errorf("build hexapost: %w", err)
	}
	return binary, remove, nil
}

// Eventually polls cond every interval until it holds, and fails the test once timeout passes
// without it holding. what names the condition in the failure.
func Eventually(t testing.TB, timeout, every time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(every) // polling a condition with a deadline
	}
}

// FreePort returns a loopback port nobody listens on right now, for a server the test starts.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().(*net.TCPAddr).Port
}

// RandomHex returns n random bytes in hex, for names that tests running at once must not share.
func RandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
