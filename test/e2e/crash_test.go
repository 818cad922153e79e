package e2e_test

import (
	"fmt"
	"net/http"
	"syscall"
	"testing"
	"time"

	"hexapost/test/harness"
)

// TestCommandServerCrashBetweenAppendAndPublish shows the outbox's promise over real processes:
// changes appended and acknowledged while the bus is unreachable, then lost from the command
// process by SIGKILL before its relay could publish them, all reach the read side after a
// restart — each exactly once in the history.
func TestCommandServerCrashBetweenAppendAndPublish(t *testing.T) {
	t.Parallel()
	redis := startPrivateRedis(t)
	dsn := mysqlDatabase(t)
	commandEnv := map[string]string{
		"POSTS_EVENT_STORE": "mysql", "POSTS_MYSQL_DSN": dsn, "POSTS_BUS": "redis", "POSTS_REDIS_URL": redis.URL(),
	}
	queryEnv := map[string]string{"POSTS_BUS": "redis", "POSTS_REDIS_URL": redis.URL()}
	query := start(t, queryEnv, "serve", "query")
	command := start(t, commandEnv, "serve", "command")

	create := func(i int) string {
		return do(t, "POST", command.CommandURL+"/posts", map[string]string{
			"title": fmt.Sprintf("post %d", i), "content": "c", "author_name": "crash",
		}).Must(t, http.StatusCreated).Str("id")
	}
	var ids []string
	for i := range 10 {
		ids = append(ids, create(i))
	}
	for _, id := range ids {
		do(t, "GET", query.QueryURL+"/posts/"+id+"?min_version=1", nil).Must(t, http.StatusOK)
	}

	// The bus goes away: appends still succeed (they are only in MySQL and its outbox), and
	// the command process dies before its relay can publish them.
	redis.kill()
	var pending []string
	for i := 10; i < 30; i++ {
		pending = append(pending, create(i))
	}
	_, _ = command.stop(t, syscall.SIGKILL, 10*time.Second)
	for _, id := range pending {
		if r := do(t, "GET", query.QueryURL+"/posts/"+id, nil); r.Status != http.StatusNotFound {
			t.Fatalf("post %s visible before it could have been published: %d", id, r.Status)
		}
	}

	redis.start(t)
	start(t, commandEnv, "serve", "command")
	for _, id := range append(ids, pending...) {
		do(t, "GET", query.QueryURL+"/posts/"+id+"?min_version=1", nil).Must(t, http.StatusOK)
		history := harness.MustHistory(t, query.QueryURL, id)
		if len(history) != 1 {
			t.Fatalf("post %s has %d history entries, want exactly 1", id, len(history))
		}
	}
	t.Logf("%d changes before the crash, %d appended during the outage and published after restart; none lost, none twice",
		len(ids), len(pending))
}
