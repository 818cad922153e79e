package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"
)

// TestChangesInBrowser opens a page with an EventSource on GET /changes in headless Chromium,
// makes a change with a command while it is open, and checks that the page received it. The
// page is served from another origin, which the query server allows (POSTS_CORS_ORIGINS), and
// tells the test what happens by requests to its own origin.
func TestChangesInBrowser(t *testing.T) {
	t.Parallel()
	browser := chromium(t)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	origin := "http://" + ln.Addr().String()
	p := start(t, map[string]string{"POSTS_CORS_ORIGINS": origin})

	opened, received := make(chan struct{}, 1), make(chan []byte, 4)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = fmt.Fprintf(w, `<!doctype html><title>changes</title><script>
const changes = new EventSource(%q);
changes.onopen = () => fetch("/opened", {method: "POST"});
changes.onmessage = (e) => fetch("/received", {method: "POST", body: e.data});
</script>`, p.QueryURL+"/changes")
	})
	mux.HandleFunc("POST /opened", func(http.ResponseWriter, *http.Request) {
		select {
		case opened <- struct{}{}:
		default:
		}
	})
	mux.HandleFunc("POST /received", func(_ http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		received <- body
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := headless(ctx, t, browser, "--remote-debugging-port=0", origin+"/")
	// The browser runs in a process group of its own, so that its helper processes go with it
	// before its profile directory is removed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})

	select {
	case <-opened:
	case <-ctx.Done():
		t.Fatal("the page's EventSource did not open within 90s")
	}
	created := do(t, "POST", p.CommandURL+"/posts",
		map[string]string{"title": "seen live", "content": "c", "author_name": "browser"}).Must(t, http.StatusCreated)
	select {
	case body := <-received:
		var c change
		if err := json.Unmarshal(body, &c); err != nil {
			t.Fatalf("the page received %s: %v", body, err)
		}
		if c.Post.ID != created.Str("id") || c.EventType != "post.created" || c.Version != 1 {
			t.Errorf("the page received %s, want the creation of %s", body, created.Str("id"))
		}
	case <-ctx.Done():
		t.Fatal("the page received no change within 90s")
	}
}
