package fault_test

import (
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"
)

// with returns env with the key/value pairs added.
func with(env map[string]string, kv ...string) map[string]string {
	out := maps.Clone(env)
	if out == nil {
		out = map[string]string{}
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// waitReady polls url+/readyz until its status is want and, for a 503, its body names what.
func waitReady(t *testing.T, url string, want int, what string) {
	t.Helper()
	eventually(t, 30*time.Second, url+"/readyz to answer "+http.StatusText(want), func() bool {
		r, err := send("GET", url+"/readyz", nil)
		return err == nil && r.Status == want && strings.Contains(string(r.Raw), what)
	})
}

// thirds are the marks at a third and two thirds of the updates.
func thirds(sc scale) []int {
	u := sc.commands - sc.posts
	return []int{u / 3, 2 * u / 3}
}

// TestFault runs the scenarios, in parallel where they share no server they kill.
func TestFault(t *testing.T) {
	t.Parallel()
	sc := currentScale()

	t.Run("1 command server SIGKILL", func(t *testing.T) {
		t.Parallel()
		_, redisURL := startRedis(t)
		dsn := mysqlDatabase(t)
		bus := map[string]string{"POSTS_BUS": "redis", "POSTS_REDIS_URL": redisURL}
		query := start(t, bus, "serve", "query")
		cmdEnv := with(bus, "POSTS_EVENT_STORE", "mysql", "POSTS_MYSQL_DSN", dsn)
		command := start(t, cmdEnv, "serve", "command")
		tg := newTargets(command.CommandURL)
		l := runLoad(t, sc, tg, loadPlan{marks: thirds(sc)}, func(reached []chan struct{}) {
			for _, r := range reached {
				<-r
				command.kill(t)
				tg.replace(0, func() string {
					command = start(t, cmdEnv, "serve", "command")
					return command.CommandURL
				})
			}
		})
		consistency(t, "1 command server SIGKILL ×2", sc, dsn, []string{query.QueryURL}, l)
	})

	t.Run("2 query server SIGKILL", func(t *testing.T) {
		t.Parallel()
		_, redisURL := startRedis(t)
		dsn := mysqlDatabase(t)
		bus := map[string]string{"POSTS_BUS": "redis", "POSTS_REDIS_URL": redisURL}
		queryEnv := with(bus, "POSTS_READ_MODEL", "mongo", "POSTS_MONGO_URI", mongoDatabase(t, ""))
		doomed := start(t, queryEnv, "serve", "query")
		survivor := start(t, queryEnv, "serve", "query")
		command := start(t, with(bus, "POSTS_EVENT_STORE", "mysql", "POSTS_MYSQL_DSN", dsn), "serve", "command")
		l := runLoad(t, sc, newTargets(command.CommandURL), loadPlan{marks: thirds(sc)[:1]}, func(reached []chan struct{}) {
			<-reached[0]
			doomed.kill(t)
		})
		consistency(t, "2 query server SIGKILL", sc, dsn, []string{survivor.QueryURL}, l)
	})

	t.Run("3 MySQL SIGKILL and restart", func(t *testing.T) {
		t.Parallel()
		db, dsn := startMariaDB(t)
		_, redisURL := startRedis(t)
		bus := map[string]string{"POSTS_BUS": "redis", "POSTS_REDIS_URL": redisURL}
		query := start(t, bus, "serve", "query")
		command := start(t, with(bus, "POSTS_EVENT_STORE", "mysql", "POSTS_MYSQL_DSN", dsn), "serve", "command")
		l := runLoad(t, sc, newTargets(command.CommandURL), loadPlan{marks: thirds(sc)}, func(reached []chan struct{}) {
			<-reached[0]
			db.kill()
			waitReady(t, command.CommandURL, http.StatusServiceUnavailable, "event_store")
			<-reached[1]
			db.start(t)
		})
		waitReady(t, command.CommandURL, http.StatusOK, "")
		consistency(t, "3 MySQL SIGKILL, restart", sc, dsn, []string{query.QueryURL}, l)
	})

	for _, broker := range []string{"redis", "nats"} {
		t.Run("4 broker SIGKILL and restart "+broker, func(t *testing.T) {
			t.Parallel()
			var (
				b   *server
				bus map[string]string
			)
			if broker == "redis" {
				s, u := startRedis(t)
				b, bus = s, map[string]string{"POSTS_BUS": "redis", "POSTS_REDIS_URL": u}
			} else {
				s, u := startNATS(t)
				b, bus = s, map[string]string{"POSTS_BUS": "nats", "POSTS_NATS_URL": u}
			}
			dsn := mysqlDatabase(t)
			query := start(t, bus, "serve", "query")
			command := start(t, with(bus, "POSTS_EVENT_STORE", "mysql", "POSTS_MYSQL_DSN", dsn), "serve", "command")
			l := runLoad(t, sc, newTargets(command.CommandURL), loadPlan{marks: thirds(sc)}, func(reached []chan struct{}) {
				<-reached[0]
				b.kill()
				waitReady(t, command.CommandURL, http.StatusServiceUnavailable, "bus")
				<-reached[1]
				b.start(t)
			})
			waitReady(t, command.CommandURL, http.StatusOK, "")
			waitReady(t, query.QueryURL, http.StatusOK, "")
			consistency(t, "4 "+broker+" SIGKILL, restart", sc, dsn, []string{query.QueryURL}, l)
		})
	}

	t.Run("5 MongoDB-wire server SIGKILL and restart", func(t *testing.T) {
		t.Parallel()
		f, ferretURI, _ := startFerretDB(t)
		_, redisURL := startRedis(t)
		dsn := mysqlDatabase(t)
		bus := map[string]string{"POSTS_BUS": "redis", "POSTS_REDIS_URL": redisURL}
		query := start(t, with(bus, "POSTS_READ_MODEL", "mongo", "POSTS_MONGO_URI", mongoDatabase(t, ferretURI)), "serve", "query")
		command := start(t, with(bus, "POSTS_EVENT_STORE", "mysql", "POSTS_MYSQL_DSN", dsn), "serve", "command")
		l := runLoad(t, sc, newTargets(command.CommandURL), loadPlan{marks: thirds(sc)}, func(reached []chan struct{}) {
			<-reached[0]
			f.kill()
			waitReady(t, query.QueryURL, http.StatusServiceUnavailable, "read_model")
			<-reached[1]
			f.start(t)
		})
		waitReady(t, query.QueryURL, http.StatusOK, "")
		consistency(t, "5 MongoDB-wire SIGKILL, restart", sc, dsn, []string{query.QueryURL}, l)
	})

	t.Run("7 two command and two query servers, conflicting updates", func(t *testing.T) {
		t.Parallel()
		_, redisURL := startRedis(t)
		dsn := mysqlDatabase(t)
		bus := map[string]string{"POSTS_BUS": "redis", "POSTS_REDIS_URL": redisURL}
		queryEnv := with(bus, "POSTS_READ_MODEL", "mongo", "POSTS_MONGO_URI", mongoDatabase(t, ""))
		q1, q2 := start(t, queryEnv, "serve", "query"), start(t, queryEnv, "serve", "query")
		cmdEnv := with(bus, "POSTS_EVENT_STORE", "mysql", "POSTS_MYSQL_DSN", dsn)
		c1, c2 := start(t, cmdEnv, "serve", "command"), start(t, cmdEnv, "serve", "command")
		hot := sc
		hot.posts, hot.clients = max(sc.posts/5, 4), 2*sc.clients // few posts, many clients: contention
		l := runLoad(t, hot, newTargets(c1.CommandURL, c2.CommandURL), loadPlan{conditional: 2}, nil)
		for status, n := range l.statuses {
			if status != http.StatusPreconditionFailed && status != http.StatusConflict {
				t.Errorf("%d answers %d; only 412 (a stale If-Match) and 409 are expected besides 2xx", n, status)
			}
		}
		if l.statuses[http.StatusPreconditionFailed] == 0 {
			t.Errorf("no conditional update conflicted; the scenario did not test contention")
		}
		consistency(t, "7 2 command + 2 query servers, conflicts", hot, dsn, []string{q1.QueryURL, q2.QueryURL}, l)
	})
}

func TestFaultMessagesAndInput(t *testing.T) {
	t.Parallel()
	sc := currentScale()
	t.Run("6 poison message and failing projection", func(t *testing.T) {
		t.Parallel()
		deadLetterScenario(t, sc)
	})
	t.Run("8 flood of bad requests", func(t *testing.T) {
		t.Parallel()
		floodScenario(t, sc)
	})
}
