package e2e_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var (
	plainOnce   sync.Once
	plainBinary string
	plainErr    error
)

// benchBinary builds hexapost without the race detector, which would distort the figures.
func benchBinary(b *testing.B) string {
	b.Helper()
	plainOnce.Do(func() {
		plainBinary = filepath.Join(filepath.Dir(binary), "hexapost-bench")
		build := exec.Command("go", "build", "-o", plainBinary, ".")
		build.Dir = filepath.Join("..", "..")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		plainErr = build.Run()
	})
	if plainErr != nil {
		b.Fatal(plainErr)
	}
	return plainBinary
}

// BenchmarkCommandsMySQL measures create and update throughput and latency through the command
// server on the MySQL event store, at 1, 16 and 64 concurrent clients, with the relay and the
// projector running. Reproduce with:
//
//	eval "$(bash test/backends/up.sh)"
//	go test ./test/e2e -run '^$' -bench CommandsMySQL -benchtime 2000x
func BenchmarkCommandsMySQL(b *testing.B) {
	env := map[string]string{"POSTS_EVENT_STORE": "mysql", "POSTS_MYSQL_DSN": mysqlDatabase(b)}
	p := startBinary(b, benchBinary(b), env)
	for _, clients := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("create/clients=%d", clients), func(b *testing.B) {
			runLoad(b, clients, func(i int) (int, error) {
				return postJSON(p.CommandURL+"/posts", fmt.Sprintf(`{"title":"bench %d","content":"c","author_name":"bench"}`, i))
			})
		})
		b.Run(fmt.Sprintf("update/clients=%d", clients), func(b *testing.B) {
			ids := make([]string, 100)
			for i := range ids {
				ids[i] = mustCreate(b, p.CommandURL)
			}
			runLoad(b, clients, func(i int) (int, error) {
				return patchJSON(p.CommandURL+"/posts/"+ids[i%len(ids)], fmt.Sprintf(`{"content":"update %d"}`, i))
			})
		})
	}
}

// runLoad sends b.N requests from the given number of clients and reports commands/s and the
// p50/p99 latency in milliseconds. Any status other than 200/201 fails the benchmark.
func runLoad(b *testing.B, clients int, send func(i int) (int, error)) {
	b.Helper()
	latencies := make([]time.Duration, b.N)
	var next atomic.Int64
	var failed atomic.Value
	b.ResetTimer()
	begin := time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= b.N {
					return
				}
				t0 := time.Now()
				status, err := send(i)
				latencies[i] = time.Since(t0)
				if err != nil || (status != http.StatusOK && status != http.StatusCreated) {
					failed.Store(fmt.Sprintf("request %d: status %d, error %v", i, status, err))
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(begin)
	b.StopTimer()
	if f := failed.Load(); f != nil {
		b.Fatal(f)
	}
	slices.Sort(latencies)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "cmds/s")
	b.ReportMetric(ms(latencies[len(latencies)*50/100]), "p50-ms")
	b.ReportMetric(ms(latencies[min(len(latencies)-1, len(latencies)*99/100)]), "p99-ms")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

var benchClient = &http.Client{
	Timeout:   30 * time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: 128},
}

func postJSON(url, body string) (int, error)  { return send(http.MethodPost, url, body) }
func patchJSON(url, body string) (int, error) { return send(http.MethodPatch, url, body) }

func send(method, url, body string) (int, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := benchClient.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
	return res.StatusCode, nil
}

func mustCreate(b *testing.B, commandURL string) string {
	b.Helper()
	return do(b, "POST", commandURL+"/posts", map[string]string{
		"title": "bench", "content": "c", "author_name": "bench",
	}).Must(b, http.StatusCreated).Str("id")
}

// BenchmarkVisibility measures, per bus, how long after the command server acknowledged a create
// the query server returns it (GET with min_version=1, which waits for the projector), at 16
// clients, with the MySQL event store and the command and query servers in separate processes
// (one process for the memory bus). Reproduce with:
//
//	eval "$(bash test/backends/up.sh)"
//	go test ./test/e2e -run '^$' -bench Visibility -benchtime 2000x
func BenchmarkVisibility(b *testing.B) {
	buses := []struct {
		name string
		env  func() map[string]string
	}{
		{"memory", func() map[string]string { return map[string]string{} }},
		{"redis", func() map[string]string {
			return map[string]string{"POSTS_BUS": "redis", "POSTS_REDIS_URL": backend(b, "POSTS_REDIS_URL"),
				"POSTS_CONSUMER_GROUP": "bench-" + randomHex(4)}
		}},
		{"nats", func() map[string]string {
			return map[string]string{"POSTS_BUS": "nats", "POSTS_NATS_URL": backend(b, "POSTS_NATS_URL"),
				"POSTS_CONSUMER_GROUP": "bench-" + randomHex(4)}
		}},
	}
	for _, bus := range buses {
		b.Run("bus="+bus.name, func(b *testing.B) {
			env := bus.env()
			env["POSTS_EVENT_STORE"], env["POSTS_MYSQL_DSN"] = "mysql", mysqlDatabase(b)
			var commandURL, queryURL string
			if bus.name == "memory" {
				p := startBinary(b, benchBinary(b), env)
				commandURL, queryURL = p.CommandURL, p.QueryURL
			} else {
				queryURL = startBinary(b, benchBinary(b), env, "serve", "query").QueryURL
				commandURL = startBinary(b, benchBinary(b), env, "serve", "command").CommandURL
			}
			author := "vis-" + randomHex(4)
			visible := make([]time.Duration, b.N)
			runLoad(b, 16, func(i int) (int, error) {
				req, err := http.NewRequest(http.MethodPost, commandURL+"/posts", strings.NewReader(
					fmt.Sprintf(`{"title":"v%d","content":"c","author_name":%q}`, i, author)))
				if err != nil {
					return 0, err
				}
				req.Header.Set("Content-Type", "application/json")
				res, err := benchClient.Do(req)
				if err != nil {
					return 0, err
				}
				acked := time.Now()
				loc := res.Header.Get("Location")
				_, _ = io.Copy(io.Discard, res.Body)
				_ = res.Body.Close()
				if res.StatusCode != http.StatusCreated {
					return res.StatusCode, nil
				}
				res, err = benchClient.Get(queryURL + loc + "?min_version=1")
				if err != nil {
					return 0, err
				}
				visible[i] = time.Since(acked)
				_, _ = io.Copy(io.Discard, res.Body)
				_ = res.Body.Close()
				return res.StatusCode, nil
			})
			slices.Sort(visible)
			b.ReportMetric(ms(visible[len(visible)*50/100]), "visible-p50-ms")
			b.ReportMetric(ms(visible[min(len(visible)-1, len(visible)*99/100)]), "visible-p99-ms")
		})
	}
}
