package bootstrap_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hexapost/bootstrap"
)

func TestParseMix(t *testing.T) {
	t.Parallel()
	tests := []struct {
		give    string
		want    bootstrap.Mix
		wantErr string
	}{
		{give: "create=1,update=8,delete=1", want: bootstrap.Mix{Create: 1, Update: 8, Delete: 1}},
		{give: "update=1", want: bootstrap.Mix{Update: 1}},
		{give: " create=3 , delete=0", want: bootstrap.Mix{Create: 3}},
		{give: "create=0", wantErr: "every weight is 0"},
		{give: "create=-1", wantErr: "whole number ≥ 0"},
		{give: "create", wantErr: "want kind=weight"},
		{give: "read=1", wantErr: `unknown kind "read"`},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			t.Parallel()
			got, err := bootstrap.ParseMix(tt.give)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseMix(%q) = %v, %v; want an error containing %q", tt.give, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseMix(%q) = %+v, %v; want %+v", tt.give, got, err, tt.want)
			}
		})
	}
}

// The visibility of each sampled command is read back on its own, from its acknowledgement: a
// query server that holds every read until all the sampled ones have arrived must see them all
// at once. A fixed pool of readers taking samples in turn would keep the rest queued in the
// tool and count that queueing as the servers' visibility latency.
func TestBenchReadsEverySampleAtOnce(t *testing.T) {
	t.Parallel()
	const samples = 40
	var created atomic.Int64
	command := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := created.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"id":"%d","version":1}`, id)
	}))
	defer command.Close()

	var (
		mu       sync.Mutex
		inFlight int
		most     int
		all      = make(chan struct{}) // closed when every sampled read is in flight
	)
	query := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inFlight++
		most = max(most, inFlight)
		if inFlight == samples {
			close(all)
		}
		mu.Unlock()
		select { // held until the last sampled read has arrived; bounded, so a failure ends
		case <-all:
		case <-time.After(5 * time.Second):
		}
		mu.Lock()
		inFlight--
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{}`)
	}))
	defer query.Close()

	res, err := bootstrap.RunBench(context.Background(), bootstrap.BenchConfig{
		CommandURL: command.URL, QueryURL: query.URL, Duration: time.Minute, Requests: samples,
		Concurrency: 4, Mix: bootstrap.Mix{Create: 1}, Posts: 1, Sample: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Commands != samples || res.Visibility.Count != samples || res.VisibilityFailed != 0 {
		t.Fatalf("%d commands, %d visibility samples, %d failed; want %d, %d, 0",
			res.Commands, res.Visibility.Count, res.VisibilityFailed, samples, samples)
	}
	mu.Lock()
	defer mu.Unlock()
	if most != samples {
		t.Fatalf("the query server saw at most %d sampled reads at once; want all %d", most, samples)
	}
}
