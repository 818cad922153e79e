package e2e_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"hexapost/test/harness"
)

// Walkthrough runs the foundation walkthrough against servers at the given URLs. It is shared
// by every configuration (memory, and the real backends in their own tests).
func Walkthrough(t *testing.T, commandURL, queryURL string) {
	t.Helper()
	author := fmt.Sprintf("walker-%d", time.Now().UnixNano())

	created := do(t, "POST", commandURL+"/posts", map[string]string{
		"title": "Hello", "content": "First post", "author_name": author,
	}).Must(t, http.StatusCreated)
	id := created.Str("id")
	location := created.Header.Get("Location")
	if created.Num("version") != 1 || !strings.HasSuffix(location, "/posts/"+id+"?min_version=1") ||
		created.Header.Get("ETag") != `"1"` {
		t.Fatalf("create: version %d, Location %q, ETag %q", created.Num("version"),
			location, created.Header.Get("ETag"))
	}

	// The Location leads to the post on the query server (a path when the command server does
	// not know the query server's URL).
	got := do(t, "GET", onQueryServer(queryURL, location), nil).Must(t, http.StatusOK)
	if got.Str("title") != "Hello" || got.Str("content") != "First post" || got.Str("author_name") != author {
		t.Fatalf("query: %s", got.Raw)
	}

	patch := map[string]string{"title": "Hello again"}
	updated := do(t, "PATCH", commandURL+"/posts/"+id, patch, "If-Match", `"1"`).Must(t, http.StatusOK)
	if updated.Num("version") != 2 || updated.Header.Get("ETag") != `"2"` {
		t.Fatalf("update: %s", updated.Raw)
	}
	got = do(t, "GET", onQueryServer(queryURL, updated.Header.Get("Content-Location")), nil).Must(t, http.StatusOK)
	if got.Num("version") != 2 || got.Str("title") != "Hello again" {
		t.Fatalf("query after the update, at its Content-Location: %s", got.Raw)
	}
	stale := do(t, "PATCH", commandURL+"/posts/"+id, patch, "If-Match", `"1"`).Must(t, http.StatusPreconditionFailed)
	if stale.Header.Get("ETag") != `"2"` {
		t.Fatalf("stale If-Match: ETag %q, want \"2\"", stale.Header.Get("ETag"))
	}

	deleted := do(t, "DELETE", commandURL+"/posts/"+id, nil).Must(t, http.StatusOK)
	if deleted.Body["deleted"] != true || deleted.Num("version") != 3 {
		t.Fatalf("delete: %s", deleted.Raw)
	}
	do(t, "GET", queryURL+"/posts/"+id+"?min_version=3", nil).Must(t, http.StatusGone)

	// With several query servers sharing the group, versions 2 and 3 may be projected by
	// different ones: version 3 can be current while version 2's entry is still on its way.
	wantTypes := []string{"post.created", "post.updated", "post.deleted"}
	var history []map[string]any
	eventually(t, 10*time.Second, "the history holds every version", func() bool {
		history = harness.MustHistory(t, queryURL, id)
		return len(history) >= len(wantTypes)
	})
	if len(history) != len(wantTypes) {
		t.Fatalf("history has %d entries, want 3: %v", len(history), history)
	}
	for i, e := range history {
		if e["event_type"] != wantTypes[i] || e["version"] != float64(i+1) {
			t.Errorf("history[%d] = %v %v, want %s version %d", i, e["event_type"], e["version"], wantTypes[i], i+1)
		}
	}

	// 45 posts by one author, paged 20 at a time: 20 + 20 + 5, newest first, no duplicates or gaps.
	const n = 45
	pager := author + "-pager"
	ids := make([]string, n)
	last := int64(0)
	for i := range n {
		r := do(t, "POST", commandURL+"/posts", map[string]string{
			"title": fmt.Sprintf("post %d", i), "content": "x", "author_name": pager,
		}).Must(t, http.StatusCreated)
		ids[i] = r.Str("id")
		last = r.Num("version")
	}
	// Another author's post must not show up in the filtered list.
	other := do(t, "POST", commandURL+"/posts", map[string]string{
		"title": "other", "content": "x", "author_name": author + "-other",
	}).Must(t, http.StatusCreated)
	do(t, "GET", queryURL+"/posts/"+other.Str("id")+"?min_version=1", nil).Must(t, http.StatusOK)
	do(t, "GET", fmt.Sprintf("%s/posts/%s?min_version=%d", queryURL, ids[n-1], last), nil).Must(t, http.StatusOK)
	waitListed(t, queryURL, pager, n)

	var seen []string
	cursor := ""
	pages := 0
	for {
		url := queryURL + "/posts?limit=20&author_name=" + pager
		if cursor != "" {
			url += "&cursor=" + cursor
		}
		page := do(t, "GET", url, nil).Must(t, http.StatusOK)
		pages++
		for _, it := range page.Items() {
			seen = append(seen, it["id"].(string))
		}
		cursor = page.Str("next_cursor")
		if cursor == "" {
			break
		}
		if pages > 5 {
			t.Fatal("more pages than possible")
		}
	}
	if pages != 3 || len(seen) != n {
		t.Fatalf("%d pages with %d posts, want 3 pages with %d", pages, len(seen), n)
	}
	for i, id := range seen {
		if want := ids[n-1-i]; id != want {
			t.Fatalf("item %d is %s, want %s (newest first, no duplicates or gaps)", i, id, want)
		}
	}
}

// onQueryServer returns the URL a Location of the command server leads to on the query server
// at queryURL: itself when absolute, else resolved against queryURL.
func onQueryServer(queryURL, location string) string {
	if strings.HasPrefix(location, "/") {
		return queryURL + location
	}
	return location
}

// waitListed waits until the list shows n posts of the author: the projection is asynchronous.
func waitListed(t *testing.T, queryURL, author string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := do(t, "GET", queryURL+"/posts?limit=100&author_name="+author, nil).Must(t, http.StatusOK)
		if len(r.Items()) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("list shows %d posts of %s after 10s, want %d", len(r.Items()), author, n)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
}

func TestWalkthroughMemory(t *testing.T) {
	t.Parallel()
	p := start(t, nil)
	Walkthrough(t, p.CommandURL, p.QueryURL)
}

func TestStartAndGracefulStop(t *testing.T) {
	t.Parallel()
	begin := time.Now()
	p := start(t, nil)
	if took := time.Since(begin); took > 5*time.Second {
		t.Errorf("servers listened after %s, want within 5s", took)
	}
	do(t, "GET", p.CommandURL+"/healthz", nil).Must(t, http.StatusOK)
	do(t, "GET", p.QueryURL+"/readyz", nil).Must(t, http.StatusOK)
	code, took := p.stop(t, syscall.SIGINT, 5*time.Second)
	if code != 0 {
		t.Fatalf("exit code %d after SIGINT, want 0; logs %v", code, p.Logs())
	}
	t.Logf("stopped in %s", took)
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	p := start(t, nil)
	body := map[string]string{"title": "once", "content": "only once", "author_name": "idem"}
	first := do(t, "POST", p.CommandURL+"/posts", body, "Idempotency-Key", "key-1").Must(t, http.StatusCreated)
	again := do(t, "POST", p.CommandURL+"/posts", body, "Idempotency-Key", "key-1").Must(t, http.StatusCreated)
	if first.Str("id") != again.Str("id") || again.Num("version") != 1 {
		t.Fatalf("repeat gave %s v%d, want %s v1", again.Str("id"), again.Num("version"), first.Str("id"))
	}
	// The history is projected asynchronously; wait for the post first.
	do(t, "GET", p.QueryURL+"/posts/"+first.Str("id")+"?min_version=1", nil).Must(t, http.StatusOK)
	if n := len(harness.MustHistory(t, p.QueryURL, first.Str("id"))); n != 1 {
		t.Fatalf("history has %d entries after a repeated create, want 1", n)
	}
	waitListed(t, p.QueryURL, "idem", 1)

	other := map[string]string{"title": "different", "content": "body", "author_name": "idem"}
	r := do(t, "POST", p.CommandURL+"/posts", other, "Idempotency-Key", "key-1").Must(t, http.StatusUnprocessableEntity)
	assertProblemNames(t, r, "Idempotency-Key")
}

func TestConcurrentUpdates(t *testing.T) {
	t.Parallel()
	p := start(t, nil)
	id := do(t, "POST", p.CommandURL+"/posts", map[string]string{
		"title": "race", "content": "c", "author_name": "racer",
	}).Must(t, http.StatusCreated).Str("id")

	const n = 50
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			statuses[i] = do(t, "PATCH", p.CommandURL+"/posts/"+id,
				map[string]string{"content": fmt.Sprintf("conditional %d", i)}, "If-Match", `"1"`).Status
		})
	}
	wg.Wait()
	count := map[int]int{}
	for _, s := range statuses {
		count[s]++
	}
	if count[http.StatusOK] != 1 || count[http.StatusPreconditionFailed] != n-1 {
		t.Fatalf("with If-Match: %v, want one 200 and %d 412", count, n-1)
	}

	fresh := do(t, "POST", p.CommandURL+"/posts", map[string]string{
		"title": "race 2", "content": "c", "author_name": "racer",
	}).Must(t, http.StatusCreated).Str("id")
	var mu sync.Mutex
	count = map[int]int{}
	for i := range n {
		wg.Go(func() {
			s := do(t, "PATCH", p.CommandURL+"/posts/"+fresh,
				map[string]string{"content": fmt.Sprintf("unconditional %d", i)}).Status
			mu.Lock()
			count[s]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if count[http.StatusOK] != n {
		t.Fatalf("without If-Match: %v, want %d × 200", count, n)
	}
	final := do(t, "GET", p.QueryURL+"/posts/"+fresh+"?min_version=51", nil).Must(t, http.StatusOK)
	if v := final.Num("version"); v != 51 {
		t.Fatalf("final version %d, want 51 (create + 50 updates)", v)
	}
}
