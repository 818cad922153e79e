package e2e_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// chromium returns the headless browser, or skips the test when there is none — except under
// CI=true, where a missing browser fails the run (the test command installs it).
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("HEXAPOST_TEST_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium not found; test/backends/up.sh installs it (CI=true: not skipping)")
	}
	t.Skip("chromium not found; set HEXAPOST_TEST_CHROMIUM or run test/backends/up.sh")
	return ""
}

// TestDocsRenderEveryOperation loads /docs of both servers in headless Chromium with every
// non-loopback address unreachable, and checks that Swagger UI rendered every operation of the
// spec. It fails if the UI needs anything from the internet or renders no operation.
func TestDocsRenderEveryOperation(t *testing.T) {
	t.Parallel()
	browser := chromium(t)
	p := start(t, nil)

	var spec struct {
		Paths map[string]map[string]struct {
			OperationID string `json:"operationId"`
		} `json:"paths"`
	}
	raw := do(t, "GET", p.CommandURL+"/openapi.json", nil).Must(t, http.StatusOK).Raw
	if err := json.Unmarshal(raw, &spec); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, ops := range spec.Paths {
		for _, op := range ops {
			ids = append(ids, op.OperationID)
		}
	}
	if len(ids) < 15 {
		t.Fatalf("spec has %d operations, want at least 15", len(ids))
	}

	for _, url := range []string{p.CommandURL + "/docs", p.QueryURL + "/docs"} {
		t.Run(url, func(t *testing.T) {
			dom := renderDOM(t, browser, url)
			rendered := strings.Count(dom, `class="opblock-summary-operation-id"`)
			if rendered == 0 {
				t.Fatalf("Swagger UI rendered no operation; DOM starts %.500s", dom)
			}
			for _, id := range ids {
				if !strings.Contains(dom, ">"+id+"<") {
					t.Errorf("operation %s not rendered", id)
				}
			}
			t.Logf("%s: %d operations rendered", url, rendered)
		})
	}
}

func renderDOM(t *testing.T, browser, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := headless(ctx, t, browser, "--virtual-time-budget=15000", "--dump-dom", url).Output()
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	return string(out)
}

// headless is the browser run headless with args, with a profile of its own, and the network
// off for its pages: names resolve nowhere and anything not on loopback goes to a proxy that
// does not exist.
func headless(ctx context.Context, t *testing.T, browser string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, browser, append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
		"--user-data-dir=" + t.TempDir(),
		"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
		"--proxy-server=http://127.0.0.1:9",
	}, args...)...)
}
