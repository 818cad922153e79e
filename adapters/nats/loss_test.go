package nats_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"hexapost/adapters/nats"
	"hexapost/core/post"
	"hexapost/ports"
	"hexapost/test/contract"
)

// lossConfig returns a config for a fresh stream on POSTS_NATS_URL, deleted when the test
// ends, that checks for lost changes every 50 ms.
func lossConfig(t *testing.T) nats.Config {
	t.Helper()
	url := contract.Backend(t, "POSTS_NATS_URL")
	name := "T" + strings.ToUpper(rand.Text())
	cfg := nats.Config{URL: url, Stream: name, Subject: "hexapost.test." + name, Durable: "loss",
		Backoff: 50 * time.Millisecond, LossCheck: 50 * time.Millisecond, Log: slog.New(slog.DiscardHandler)}
	js := jetStream(t, url)
	t.Cleanup(func() {
		for _, s := range []string{name, name + "_DEAD"} {
			_ = js.DeleteStream(context.Background(), s)
		}
	})
	return cfg
}

// openBus opens a bus that is closed when the test ends.
func openBus(t *testing.T, cfg nats.Config) *nats.Bus {
	t.Helper()
	bus, err := nats.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bus.Close() })
	return bus
}

// someChanges returns n changes creating as many posts.
func someChanges(n int) []ports.Change {
	at := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	out := make([]ports.Change, n)
	for i := range out {
		id := rand.Text()
		out[i] = ports.Change{
			Event: post.Event{ID: id + "-e", PostID: id, Version: 1, Type: post.EventDeleted, OccurredAt: at},
			State: post.State{ID: id, Version: 1, CreatedAt: at, UpdatedAt: at, Deleted: true},
		}
	}
	return out
}

// losses is a ports.DeliveryObserver that counts the losses it hears.
type losses struct {
	mu  sync.Mutex
	got map[ports.LossCause]int
}

func (*losses) Retrying()                          {}
func (*losses) DeadLettered(ports.DeadLetterCause) {}

func (l *losses) Lost(c ports.LossCause) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.got == nil {
		l.got = map[ports.LossCause]int{}
	}
	l.got[c]++
}

func (l *losses) count(c ports.LossCause) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.got[c]
}

func (l *losses) total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, k := range l.got {
		n += k
	}
	return n
}

// subscribeAll subscribes bus until the test ends, sending each change applied on the channel.
func subscribeAll(t *testing.T, bus *nats.Bus) <-chan ports.Change {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	got := make(chan ports.Change, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = bus.Subscribe(ctx, func(_ context.Context, c ports.Change, _ *ports.Change) error {
			got <- c
			return nil
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	return got
}

// waitFor fails the test unless cond holds within 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("no %s within 10s", what)
		}
	}
}

// receiveID waits for the change with this event id.
func receiveID(t *testing.T, got <-chan ports.Change, id string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case c := <-got:
			if c.Event.ID == id {
				return
			}
		case <-timeout:
			t.Fatalf("change %s not delivered within 10s", id)
		}
	}
}

// running opens a bus on a fresh stream, reporting to o, and subscribes to it; once it returns,
// the subscriber has applied a change, and so checked for losses.
func running(t *testing.T, o *losses) (nats.Config, *nats.Bus, <-chan ports.Change) {
	t.Helper()
	cfg := lossConfig(t)
	cfg.Observer = o
	bus := openBus(t, cfg)
	got := subscribeAll(t, bus)
	publishAndReceive(t, bus, got)
	return cfg, bus, got
}

// publishAndReceive publishes a change with bus and waits until the subscriber applied it.
func publishAndReceive(t *testing.T, bus *nats.Bus, got <-chan ports.Change) {
	t.Helper()
	c := someChanges(1)
	if err := bus.Publish(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	receiveID(t, got, c[0].Event.ID)
}

// stays fails the test unless the observer has heard exactly want losses, of any cause, all
// the while the subscriber checks for losses four times more.
func (l *losses) stays(t *testing.T, cfg nats.Config, want int) {
	t.Helper()
	for end := time.Now().Add(4 * cfg.LossCheck); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if n := l.total(); n != want {
			t.Fatalf("%d losses told, want %d", n, want)
		}
	}
}

// TestRecreatesADeletedConsumer deletes the consumer, not its stream, under a running
// subscriber: the subscriber creates it again, tells of the loss once and goes on.
func TestRecreatesADeletedConsumer(t *testing.T) {
	t.Parallel()
	o := &losses{}
	cfg, bus, got := running(t, o)

	if err := jetStream(t, cfg.URL).DeleteConsumer(t.Context(), cfg.Stream, cfg.Durable); err != nil {
		t.Fatal(err)
	}

	publishAndReceive(t, bus, got)
	waitFor(t, "report of the loss", func() bool { return o.count(ports.LossStreamGone) == 1 })
	o.stays(t, cfg, 1)
}

// TestReopeningIsNoLoss opens a second bus on the same stream and consumer, as a restarted
// command server does, while a subscriber runs: updating the consumer is not losing it.
func TestReopeningIsNoLoss(t *testing.T) {
	t.Parallel()
	o := &losses{}
	cfg, _, got := running(t, o)

	other := openBus(t, cfg)

	publishAndReceive(t, other, got)
	o.stays(t, cfg, 0)
}

// TestWarnsOfABacklogCloseToTheBound opens the bus again after changes were published that no
// query server took: a backlog close to MaxMsgs is worth a warning, with the backlog and the
// bound.
func TestWarnsOfABacklogCloseToTheBound(t *testing.T) {
	t.Parallel()
	cfg := lossConfig(t)
	cfg.MaxMsgs = 100
	if err := openBus(t, cfg).Publish(t.Context(), someChanges(90)); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cfg.Log = slog.New(slog.NewJSONHandler(&logs, nil))

	openBus(t, cfg)

	var line map[string]any
	if err := json.Unmarshal(logs.Bytes(), &line); err != nil || line["level"] != "WARN" || line["backlog"] != 90.0 ||
		line["bound"] != 100.0 || !strings.Contains(fmt.Sprint(line["msg"]), "raise the stream bound") {
		t.Errorf("logged %q, want one warning with the backlog 90, the bound 100 and what to do", logs.String())
	}
}

// TestPublishCreatesADeletedStreamAgain deletes the stream while nobody subscribes: Publish
// must create it again and store the changes, rather than fail until a query server comes.
func TestPublishCreatesADeletedStreamAgain(t *testing.T) {
	t.Parallel()
	cfg := lossConfig(t)
	bus := openBus(t, cfg)
	if err := jetStream(t, cfg.URL).DeleteStream(t.Context(), cfg.Stream); err != nil {
		t.Fatal(err)
	}

	if err := bus.Publish(t.Context(), someChanges(2)); err != nil {
		t.Fatalf("Publish after the stream was deleted: %v", err)
	}

	if info := streamInfo(t, cfg.URL, cfg.Stream); info.State.Msgs != 2 || info.Config.MaxMsgs != nats.DefaultMaxMsgs {
		t.Errorf("the stream holds %d changes, bound %d; want 2, bound %d", info.State.Msgs, info.Config.MaxMsgs,
			nats.DefaultMaxMsgs)
	}
}
