package e2e_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hexapost/test/harness"
)

// broker is a bus server the test can kill and start again.
type broker interface {
	URL() string
	kill()
	start(t testing.TB)
}

// TestBrokerRestartLosesNothing sends 1 000 commands from 16 clients while the broker is killed
// (SIGKILL) and started again. Every command is acknowledged (the outbox does not need the
// bus), /readyz turns 503 while the broker is down and 200 after it is back without restarting
// hexapost, and every change then reaches the read model, none twice in the history.
func TestBrokerRestartLosesNothing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		start func(t *testing.T) (broker, map[string]string)
	}{
		{"redis", func(t *testing.T) (broker, map[string]string) {
			r := startPrivateRedis(t)
			return r, map[string]string{"POSTS_BUS": "redis", "POSTS_REDIS_URL": r.URL()}
		}},
		{"nats", func(t *testing.T) (broker, map[string]string) {
			n := startPrivateNATS(t)
			return n, map[string]string{"POSTS_BUS": "nats", "POSTS_NATS_URL": n.URL()}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, env := tt.start(t)
			query := start(t, env, "serve", "query")
			env["POSTS_EVENT_STORE"], env["POSTS_MYSQL_DSN"] = "mysql", mysqlDatabase(t)
			command := start(t, env, "serve", "command")

			const posts, commands, clients = 100, 1000, 16
			ids := make([]string, posts)
			for i := range ids {
				ids[i] = do(t, "POST", command.CommandURL+"/posts", map[string]string{
					"title": fmt.Sprintf("p%d", i), "content": "v1", "author_name": "fault",
				}).Must(t, http.StatusCreated).Str("id")
			}
			var (
				next, acked atomic.Int64
				versions    = make([]atomic.Int64, posts)
				failures    sync.Map
				killed      = make(chan struct{})
				seenDown    = make(chan struct{})
				restarted   = make(chan struct{})
				wg          sync.WaitGroup
			)
			for i := range versions {
				versions[i].Store(1)
			}
			for range clients {
				wg.Go(func() {
					for {
						n := next.Add(1)
						if n > commands-posts {
							return
						}
						switch n {
						case 300:
							b.kill()
							close(killed)
						case 600:
							<-seenDown // the outage lasts until /readyz has reported it
							b.start(t)
							close(restarted)
						}
						p := int(n) % posts
						r := do(t, "PATCH", command.CommandURL+"/posts/"+ids[p],
							map[string]string{"content": fmt.Sprintf("update %d", n)})
						if r.Status != http.StatusOK {
							failures.Store(n, r.Status)
							continue
						}
						acked.Add(1)
						for {
							v := versions[p].Load()
							if got := r.Num("version"); got <= v || versions[p].CompareAndSwap(v, got) {
								break
							}
						}
					}
				})
			}
			<-killed
			eventually(t, 15*time.Second, "/readyz to report the bus down", func() bool {
				r := do(t, "GET", command.CommandURL+"/readyz", nil)
				return r.Status == http.StatusServiceUnavailable && strings.Contains(string(r.Raw), "bus")
			})
			close(seenDown)
			<-restarted
			wg.Wait()
			failures.Range(func(k, v any) bool { t.Errorf("command %v: status %v", k, v); return true })
			eventually(t, 30*time.Second, "/readyz to recover without a restart", func() bool {
				return do(t, "GET", command.CommandURL+"/readyz", nil).Status == http.StatusOK &&
					do(t, "GET", query.QueryURL+"/readyz", nil).Status == http.StatusOK
			})

			lost, duplicated, matching := 0, 0, 0
			begin := time.Now()
			for p, id := range ids {
				want := versions[p].Load()
				r := do(t, "GET", fmt.Sprintf("%s/posts/%s?min_version=%d", query.QueryURL, id, want), nil)
				for r.Status == http.StatusServiceUnavailable && time.Since(begin) < 60*time.Second {
					r = do(t, "GET", fmt.Sprintf("%s/posts/%s?min_version=%d", query.QueryURL, id, want), nil)
				}
				history, _, err := harness.History(query.QueryURL, id)
				if err != nil {
					t.Fatal(err)
				}
				seen := map[float64]int{}
				for _, h := range history {
					seen[h["version"].(float64)]++
				}
				for v := int64(1); v <= want; v++ {
					switch seen[float64(v)] {
					case 0:
						lost++
					case 1:
					default:
						duplicated++
					}
				}
				if r.Status == http.StatusOK && r.Num("version") == want && len(history) == int(want) {
					matching++
				}
			}
			events := int64(posts) + acked.Load()
			t.Logf("bus=%s commands sent=%d acknowledged=%d events=%d views matching=%d/%d lost=%d duplicated=%d converged in %s",
				tt.name, commands, int64(posts)+acked.Load(), events, matching, posts, lost, duplicated,
				time.Since(begin).Round(time.Millisecond))
			if lost != 0 || duplicated != 0 || matching != posts || acked.Load() != commands-posts {
				t.Fatalf("lost %d, duplicated %d, views matching %d/%d, acknowledged %d/%d",
					lost, duplicated, matching, posts, acked.Load(), commands-posts)
			}
		})
	}
}
