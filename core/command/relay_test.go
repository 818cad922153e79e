package command_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"hexapost/core/command"
	"hexapost/ports"
)

// never is a poll interval no test waits for: whatever happens, happens through a signal.
const never = time.Hour

// startRelay runs a relay until the test ends; stop cancels it and waits until Run returned.
func startRelay(t *testing.T, st *store, pub ports.Publisher, cfg command.RelayConfig) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		command.NewRelay(st, pub, slog.New(slog.DiscardHandler), cfg).Run(ctx)
	}()
	stop = func() {
		t.Helper()
		cancel()
		returnsWithin(t, 2*time.Second, "Relay.Run after cancel", done)
	}
	t.Cleanup(stop)
	return stop
}

// createPosts appends n posts to the store through the service.
func createPosts(t *testing.T, svc *command.Service, n int) {
	t.Helper()
	for range n {
		if _, err := svc.Create(t.Context(), hello, command.Options{}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRelay(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name           string
		giveBefore     int // posts created before the relay starts
		giveAfter      int // posts created while it runs
		giveFailures   int // first calls of the bus that fail
		giveConfig     command.RelayConfig
		wantMoreCalls  int // calls of the bus beyond the successful ones, at least
		wantMinBatches int
	}{
		{
			name:       "publishes what was appended before it started, batch after batch",
			giveBefore: 10, giveConfig: command.RelayConfig{Batch: 3, Poll: never},
			wantMinBatches: 4,
		},
		{
			name:      "is woken by an append, not by the poll",
			giveAfter: 5, giveConfig: command.RelayConfig{Batch: 100, Poll: never},
			wantMinBatches: 1,
		},
		{
			name:       "a bus that fails twice loses nothing",
			giveBefore: 4, giveAfter: 3, giveFailures: 2,
			giveConfig:    command.RelayConfig{Batch: 2, Poll: time.Millisecond, MaxBackoff: 5 * time.Millisecond},
			wantMoreCalls: 2, wantMinBatches: 4,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := newStore()
			svc := newService(st, st, command.Config{})
			pub := &publisher{failFirst: tt.giveFailures}
			createPosts(t, svc, tt.giveBefore)

			stop := startRelay(t, st, pub, tt.giveConfig)
			createPosts(t, svc, tt.giveAfter)
			eventually(t, "every change is published", func() bool {
				_, published := pub.got()
				return len(published) >= tt.giveBefore+tt.giveAfter
			})
			stop()

			calls, published := pub.got()
			if want := st.changes(); !reflect.DeepEqual(published, want) {
				t.Errorf("published %d changes %s,\nwant each of the %d in the outbox once, in order %s",
					len(published), ids(published), len(want), ids(want))
			}
			if calls < tt.wantMinBatches+tt.wantMoreCalls {
				t.Errorf("bus called %d times, want at least %d", calls, tt.wantMinBatches+tt.wantMoreCalls)
			}
		})
	}
}

// TestRelayBatchesWhatArrivesDuringAPublish: an append to an idle relay is published at once,
// on its own, and the appends made while that publish is in flight go out together in the
// round after it.
func TestRelayBatchesWhatArrivesDuringAPublish(t *testing.T) {
	t.Parallel()
	st := newStore()
	svc := newService(st, st, command.Config{})
	pub := &gatedPublisher{entered: make(chan struct{}), release: make(chan struct{})}
	startRelay(t, st, pub, command.RelayConfig{Batch: 100, Poll: never})

	createPosts(t, svc, 1)
	returnsWithin(t, 2*time.Second, "the first publish", pub.entered)
	createPosts(t, svc, 5)
	close(pub.release)
	eventually(t, "every change is published", func() bool { _, n := pub.got(); return n == 6 })

	if got, _ := pub.got(); !reflect.DeepEqual(got, []int{1, 5}) {
		t.Errorf("batch sizes %v, want [1 5]", got)
	}
}

// gatedPublisher holds its first publish until release is closed, and records the size of
// every batch.
type gatedPublisher struct {
	entered, release chan struct{}
	once             sync.Once
	mu               sync.Mutex
	sizes            []int
	changes          int
}

func (p *gatedPublisher) Publish(_ context.Context, changes []ports.Change) error {
	p.once.Do(func() { close(p.entered); <-p.release })
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sizes = append(p.sizes, len(changes))
	p.changes += len(changes)
	return nil
}

// got returns the sizes of the batches published so far and how many changes they held.
func (p *gatedPublisher) got() (sizes []int, changes int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]int(nil), p.sizes...), p.changes
}

// TestRelayLogNamesTheRequest: at debug, the line of a published change names the request
// that caused it, as the command's own lines do.
func TestRelayLogNamesTheRequest(t *testing.T) {
	t.Parallel()
	st := newStore()
	svc := newService(st, st, command.Config{})
	if _, err := svc.Create(t.Context(), hello, command.Options{RequestID: "abc-123"}); err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	pub := &publisher{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		log := slog.New(slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
		command.NewRelay(st, pub, log, command.RelayConfig{Poll: never}).Run(ctx)
	}()
	eventually(t, "the change is published", func() bool {
		_, published := pub.got()
		return len(published) == 1
	})
	cancel()
	returnsWithin(t, 2*time.Second, "Relay.Run after cancel", done)

	var line struct {
		Msg       string `json:"msg"`
		RequestID string `json:"request_id"`
	}
	for l := range strings.Lines(out.String()) {
		if err := json.Unmarshal([]byte(l), &line); err == nil && line.Msg == "event published" {
			break
		}
	}
	if line.Msg != "event published" || line.RequestID != "abc-123" {
		t.Errorf("published line %+v, want request_id abc-123; log:\n%s", line, out.String())
	}
}

// syncBuffer is a bytes.Buffer that a goroutine may write while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestRelayRunReturnsWhenTheContextEnds(t *testing.T) {
	t.Parallel()

	// giveBefore prepares the store before the relay starts; giveWhile brings the running relay
	// into the state in which it is waiting when the context ends.
	type setup func(t *testing.T, st *store, svc *command.Service, pub ports.Publisher)
	nothing := func(*testing.T, *store, *command.Service, ports.Publisher) {}
	onePostNoSignal := func(t *testing.T, st *store, svc *command.Service, _ ports.Publisher) {
		t.Helper()
		createPosts(t, svc, 1)
		st.drainAppended()
	}
	failed := func(t *testing.T, _ *store, _ *command.Service, pub ports.Publisher) {
		t.Helper()
		eventually(t, "the bus failed", func() bool { calls, _ := pub.(*publisher).got(); return calls > 0 })
	}

	tests := []struct {
		name       string
		givePub    func() ports.Publisher
		giveBefore setup
		giveWhile  setup
	}{
		{
			name:       "idle",
			givePub:    func() ports.Publisher { return &publisher{} },
			giveBefore: nothing,
			giveWhile:  nothing,
		},
		{
			name:       "waiting for a bus that does not answer",
			givePub:    func() ports.Publisher { return &stuckPublisher{} },
			giveBefore: onePostNoSignal,
			giveWhile: func(t *testing.T, _ *store, _ *command.Service, pub ports.Publisher) {
				t.Helper()
				eventually(t, "the bus is called", func() bool { return pub.(*stuckPublisher).calls.Load() > 0 })
			},
		},
		{
			name:       "backing off after a failed round",
			givePub:    func() ports.Publisher { return &publisher{failFirst: math.MaxInt} },
			giveBefore: onePostNoSignal,
			giveWhile:  failed,
		},
		{
			name:       "backing off after a failed round, an append waiting",
			givePub:    func() ports.Publisher { return &publisher{failFirst: math.MaxInt} },
			giveBefore: onePostNoSignal,
			giveWhile: func(t *testing.T, st *store, svc *command.Service, pub ports.Publisher) {
				t.Helper()
				failed(t, st, svc, pub)
				createPosts(t, svc, 1)
				if !st.pendingSignal() {
					t.Fatal("the append signal was taken during the backoff")
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := newStore()
			svc := newService(st, st, command.Config{})
			pub := tt.givePub()
			tt.giveBefore(t, st, svc, pub)
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan struct{})
			go func() {
				defer close(done)
				cfg := command.RelayConfig{Poll: never, MaxBackoff: never}
				command.NewRelay(st, pub, slog.New(slog.DiscardHandler), cfg).Run(ctx)
			}()
			tt.giveWhile(t, st, svc, pub)

			cancel()

			returnsWithin(t, 2*time.Second, "Relay.Run", done)
		})
	}
}

func ids(changes []ports.Change) []string {
	out := make([]string, len(changes))
	for i, c := range changes {
		out[i] = fmt.Sprintf("%s/v%d", c.Event.PostID, c.Event.Version)
	}
	return out
}
