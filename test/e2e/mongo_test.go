package e2e_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestMongoLostAtRuntime kills the read model's server under a running hexapost: reads answer
// 503 in bounded time, /readyz names the read model, and reads recover by themselves.
func TestMongoLostAtRuntime(t *testing.T) {
	t.Parallel()
	f := startPrivateFerretDB(t)
	p := start(t, map[string]string{"POSTS_READ_MODEL": "mongo", "POSTS_MONGO_URI": f.URI()})
	id := do(t, "POST", p.CommandURL+"/posts", map[string]string{
		"title": "t", "content": "c", "author_name": "outage",
	}).Must(t, http.StatusCreated).Str("id")
	do(t, "GET", p.QueryURL+"/posts/"+id+"?min_version=1", nil).Must(t, http.StatusOK)

	f.kill()
	begin := time.Now()
	r := do(t, "GET", p.QueryURL+"/posts/"+id, nil)
	took := time.Since(begin)
	if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" || took > 15*time.Second {
		t.Fatalf("with the read model down: %d after %s (Retry-After %q), want 503 in bounded time; %s",
			r.Status, took, r.Header.Get("Retry-After"), r.Raw)
	}
	ready := do(t, "GET", p.QueryURL+"/readyz", nil)
	if ready.Status != http.StatusServiceUnavailable || !strings.Contains(string(ready.Raw), "read_model") {
		t.Fatalf("readyz with the read model down: %d %s", ready.Status, ready.Raw)
	}
	t.Logf("503 after %s; readyz: %s", took.Round(time.Millisecond), ready.Raw)

	f.start(t)
	eventually(t, 30*time.Second, "reads to recover", func() bool {
		return do(t, "GET", p.QueryURL+"/posts/"+id, nil).Status == http.StatusOK
	})
	do(t, "GET", p.QueryURL+"/readyz", nil).Must(t, http.StatusOK)
}

// TestMemoryBusWithADurableReadModelLosesNothingInACrash: with the in-process bus, a change the
// relay has handed to the bus (and so taken out of the outbox) lives only in memory until it is
// projected. Here the read model is down, so the changes wait in the bus, and the process is
// killed. After a restart they must still reach the read model.
func TestMemoryBusWithADurableReadModelLosesNothingInACrash(t *testing.T) {
	t.Parallel()
	f := startPrivateFerretDB(t)
	env := map[string]string{
		"POSTS_EVENT_STORE": "mysql", "POSTS_MYSQL_DSN": mysqlDatabase(t),
		"POSTS_READ_MODEL": "mongo", "POSTS_MONGO_URI": f.URI(),
	}
	p := start(t, env)
	first := do(t, "POST", p.CommandURL+"/posts", map[string]string{
		"title": "before", "content": "c", "author_name": "crash",
	}).Must(t, http.StatusCreated).Str("id")
	do(t, "GET", p.QueryURL+"/posts/"+first+"?min_version=1", nil).Must(t, http.StatusOK)

	f.kill()
	var waiting []string
	for i := range 3 {
		waiting = append(waiting, do(t, "POST", p.CommandURL+"/posts", map[string]string{
			"title": fmt.Sprintf("waiting %d", i), "content": "c", "author_name": "crash",
		}).Must(t, http.StatusCreated).Str("id"))
	}
	eventually(t, 15*time.Second, "the relay to hand every change to the bus", func() bool {
		return scrape(t, p.CommandURL).value("hexapost_outbox_backlog") == 0
	})
	p.Kill(t)
	f.start(t)

	p = start(t, env)
	for _, id := range append(waiting, first) {
		do(t, "GET", p.QueryURL+"/posts/"+id+"?min_version=1", nil).Must(t, http.StatusOK)
	}
}
