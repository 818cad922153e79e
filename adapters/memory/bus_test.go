package memory_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"hexapost/adapters/memory"
	"hexapost/ports"
)

// lockedBuffer is a log sink that the bus's goroutines and timers may write concurrently.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the logged records as JSON objects.
func (b *lockedBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b.buf.Bytes()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

func run(t *testing.T, b *memory.Bus, h ports.Handler) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = b.Subscribe(ctx, h)
	}()
	t.Cleanup(func() { cancel(); <-done })
}

func TestBusLogsEachRetryAndTheDeadLetterWithCappedDelays(t *testing.T) {
	t.Parallel()
	logs := &lockedBuffer{}
	failedAt := t0.Add(time.Hour)
	b := memory.NewBus(memory.BusConfig{
		MaxAttempts: 4, Backoff: 2 * time.Millisecond, MaxBackoff: 3 * time.Millisecond,
		Now: func() time.Time { return failedAt }, Log: slog.New(slog.NewJSONHandler(logs, nil)),
	})
	run(t, b, func(context.Context, ports.Change, *ports.Change) error { return errors.New("view store down") })

	if err := b.Publish(t.Context(), []ports.Change{created("p1")}); err != nil {
		t.Fatal(err)
	}

	var dead []ports.DeadLetter
	// The dead letter is listed a moment before its log line is written: wait for both.
	waitFor(t, "the dead letter and its log line", func() bool {
		dead, _ = b.List(t.Context())
		return len(dead) == 1 && len(logs.lines(t)) == 4
	})
	if !dead[0].FailedAt.Equal(failedAt) || dead[0].Attempts != 4 || dead[0].Reason != "view store down" {
		t.Errorf("dead letter = %+v", dead[0])
	}
	lines := logs.lines(t)
	want := []struct {
		msg     string
		attempt float64
		retryIn string
	}{
		{"projection failed; will retry", 1, "2ms"},
		{"projection failed; will retry", 2, "3ms"},
		{"projection failed; will retry", 3, "3ms"},
		{"message dead-lettered", 4, ""},
	}
	if len(lines) != len(want) {
		t.Fatalf("logged %d lines, want %d: %v", len(lines), len(want), lines)
	}
	for i, w := range want {
		l := lines[i]
		if l["msg"] != w.msg || l["attempt"] != w.attempt || l["post_id"] != "p1" || l["version"] != 1.0 ||
			l["event_id"] != "p1-e1" || l["error"] != "view store down" {
			t.Errorf("line %d = %v, want %q for attempt %v of p1 v1 p1-e1 with the error", i, l, w.msg, w.attempt)
		}
		if w.retryIn != "" && l["retry_in"] != float64(mustDuration(t, w.retryIn)) {
			t.Errorf("line %d retry_in = %v, want %s", i, l["retry_in"], w.retryIn)
		}
	}
	if l := lines[3]; l["reason"] != "view store down" || l["dead_letter_id"] != dead[0].ID || l["level"] != "ERROR" {
		t.Errorf("dead letter line = %v", l)
	}
}

func mustDuration(t *testing.T, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestBusDeadLettersAreCopies(t *testing.T) {
	t.Parallel()
	b := memory.NewBus(memory.BusConfig{Log: slog.New(slog.DiscardHandler)})
	run(t, b, func(context.Context, ports.Change, *ports.Change) error { return nil })
	if err := b.PublishRaw(t.Context(), []byte("poison")); err != nil {
		t.Fatal(err)
	}
	var dead []ports.DeadLetter
	waitFor(t, "the dead letter", func() bool {
		dead, _ = b.List(t.Context())
		return len(dead) == 1
	})

	dead[0].Payload[0] = 'X'

	again, _ := b.List(t.Context())
	if string(again[0].Payload) != "poison" {
		t.Errorf("payload %q after a caller changed its copy, want %q", again[0].Payload, "poison")
	}
}

func TestSubscribeReturnsAtOnceOnAnEndedContext(t *testing.T) {
	t.Parallel()
	b := memory.NewBus(memory.BusConfig{})
	if err := b.Publish(t.Context(), []ports.Change{created("p1")}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	called := false

	err := b.Subscribe(ctx, func(context.Context, ports.Change, *ports.Change) error { called = true; return nil })

	if err != nil || called {
		t.Errorf("Subscribe on an ended context = %v, handler called %t; want nil without a delivery", err, called)
	}
}
