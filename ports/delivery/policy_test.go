package delivery_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"hexapost/core/post"
	"hexapost/ports"
	"hexapost/ports/delivery"
)

// broker is a delivery.Message that records how the policy settled it.
type broker struct {
	settled  []string
	wait     time.Duration
	dead     ports.DeadLetter
	failWith error // returned by every settlement that can fail
}

func (b *broker) Ack(context.Context) (time.Duration, error) {
	b.settled = append(b.settled, "ack")
	return time.Minute, b.failWith
}

func (b *broker) Retry(_ context.Context, wait time.Duration) (time.Duration, error) {
	b.settled, b.wait = append(b.settled, "retry"), wait
	return time.Minute, b.failWith
}

func (b *broker) Release(context.Context) { b.settled = append(b.settled, "release") }

func (b *broker) DeadLetter(_ context.Context, d *ports.DeadLetter) (time.Duration, error) {
	b.settled = append(b.settled, "dead letter")
	if b.failWith != nil {
		return time.Minute, b.failWith
	}
	d.ID = "d1"
	b.dead = *d
	return 0, nil
}

// observer counts what a delivery.Policy reports.
type observer struct {
	retries int
	dead    []ports.DeadLetterCause
	lost    []ports.LossCause
}

func (o *observer) Retrying()                            { o.retries++ }
func (o *observer) DeadLettered(c ports.DeadLetterCause) { o.dead = append(o.dead, c) }
func (o *observer) Lost(c ports.LossCause)               { o.lost = append(o.lost, c) }

var (
	failedAt  = time.Date(2025, 11, 23, 12, 0, 0, 0, time.UTC)
	errView   = errors.New("view store down")
	errBroker = errors.New("broker down")
)

func change() ports.Change {
	return ports.Change{
		Event: post.Event{ID: "p1-e2", PostID: "p1", Version: 2, Type: post.EventUpdated, OccurredAt: failedAt},
		State: post.State{ID: "p1", Version: 2, Title: "t", Content: "c", AuthorName: "a"},
	}
}

func TestDeliverSettlesEachOutcomeOnce(t *testing.T) {
	t.Parallel()
	later := change()
	later.Event.Version = 3
	tests := []struct {
		name          string
		giveDelivery  delivery.Delivery
		giveAbandon   bool
		giveErr       error // returned by the handler
		giveEnded     bool  // the subscription's context ended before the handler returned
		giveSettleErr error // returned by the broker's settlements
		wantSettled   []string
		wantWait      time.Duration
		wantRetries   int
		wantDead      []ports.DeadLetterCause
		wantLines     []string // the messages logged
		wantHandled   bool
	}{
		{
			name: "applied", giveDelivery: delivery.Delivery{Change: change(), Attempt: 1, Later: &later},
			wantSettled: []string{"ack"}, wantHandled: true,
		},
		{
			name: "applied, acknowledgement failed", giveDelivery: delivery.Delivery{Change: change(), Attempt: 1},
			giveSettleErr: errBroker, wantSettled: []string{"ack"}, wantHandled: true,
			wantLines: []string{"acknowledgement failed; the change will be applied again"},
		},
		{
			name: "failed at shutdown", giveDelivery: delivery.Delivery{Change: change(), Attempt: 2},
			giveErr: context.Canceled, giveEnded: true, wantSettled: []string{"release"}, wantHandled: true,
		},
		{
			name: "failed, attempts left", giveDelivery: delivery.Delivery{Change: change(), Attempt: 2},
			giveErr: errView, wantSettled: []string{"retry"}, wantWait: 20 * time.Millisecond, wantRetries: 1,
			wantLines: []string{"projection failed; will retry"}, wantHandled: true,
		},
		{
			name: "failed, attempts left, scheduling failed", giveDelivery: delivery.Delivery{Change: change(), Attempt: 1},
			giveErr: errView, giveSettleErr: errBroker, wantSettled: []string{"retry"}, wantWait: 10 * time.Millisecond,
			wantRetries: 1, wantLines: []string{"projection failed; will retry"}, wantHandled: true,
		},
		{
			name: "failed the last attempt", giveDelivery: delivery.Delivery{Change: change(), Attempt: 3},
			giveErr: errView, wantSettled: []string{"dead letter"},
			wantDead:  []ports.DeadLetterCause{ports.CauseAttemptsExhausted},
			wantLines: []string{"message dead-lettered"}, wantHandled: true,
		},
		{
			name: "failed the last attempt, dead-lettering failed", giveDelivery: delivery.Delivery{Change: change(), Attempt: 3},
			giveErr: errView, giveSettleErr: errBroker, wantSettled: []string{"dead letter"},
			wantLines: []string{"dead-lettering failed; the change will be delivered again"}, wantHandled: true,
		},
		{
			name:         "undecodable",
			giveDelivery: delivery.Delivery{Undecodable: errors.New("not json"), Payload: []byte("x"), Attempt: 1},
			wantSettled:  []string{"dead letter"}, wantDead: []ports.DeadLetterCause{ports.CauseUndecodable},
			wantLines: []string{"message dead-lettered"},
		},
		{
			name: "delivered past its attempts, abandoning", giveDelivery: delivery.Delivery{Change: change(), Attempt: 4},
			giveAbandon: true, wantSettled: []string{"dead letter"},
			wantDead: []ports.DeadLetterCause{ports.CauseAbandoned}, wantLines: []string{"message dead-lettered"},
		},
		{
			name: "delivered past its attempts, not abandoning", giveDelivery: delivery.Delivery{Change: change(), Attempt: 4},
			wantSettled: []string{"ack"}, wantHandled: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var logs bytes.Buffer
			o := &observer{}
			p := delivery.Policy{MaxAttempts: 3, Backoff: 10 * time.Millisecond, Abandon: tt.giveAbandon,
				Log: slog.New(slog.NewJSONHandler(&logs, nil)), Observer: o, Now: func() time.Time { return failedAt }}.WithDefaults()
			b := &broker{failWith: tt.giveSettleErr}
			d := tt.giveDelivery
			d.Msg = b
			handled := false
			var toldLater *ports.Change

			p.Deliver(subscription(t, tt.giveEnded), func(_ context.Context, _ ports.Change, later *ports.Change) error {
				handled, toldLater = true, later
				return tt.giveErr
			}, d)

			if !reflect.DeepEqual(b.settled, tt.wantSettled) || b.wait != tt.wantWait || handled != tt.wantHandled {
				t.Errorf("settled %q (wait %s), handled %t; want %q (wait %s), handled %t",
					b.settled, b.wait, handled, tt.wantSettled, tt.wantWait, tt.wantHandled)
			}
			if toldLater != d.Later {
				t.Errorf("handler told of %v as the later change, want %v", toldLater, d.Later)
			}
			if o.retries != tt.wantRetries || !reflect.DeepEqual(o.dead, tt.wantDead) {
				t.Errorf("observed %d retries and dead letters %v, want %d and %v", o.retries, o.dead, tt.wantRetries, tt.wantDead)
			}
			if got := messages(t, &logs); !reflect.DeepEqual(got, tt.wantLines) {
				t.Errorf("logged %q, want %q", got, tt.wantLines)
			}
		})
	}
}

// subscription returns the context of a subscription, ended already when ended is set.
func subscription(t *testing.T, ended bool) context.Context {
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	if ended {
		cancel()
	}
	return ctx
}

// messages returns the messages of the JSON lines logged.
func messages(t *testing.T, logs *bytes.Buffer) []string {
	t.Helper()
	var out []string
	for l := range strings.Lines(logs.String()) {
		var line map[string]any
		if err := json.Unmarshal([]byte(l), &line); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, fmt.Sprint(line["msg"]))
	}
	return out
}

func TestDeadLetterRecordsTheChangeReasonAttemptsAndTime(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	p := delivery.Policy{Log: slog.New(slog.NewJSONHandler(&logs, nil)), Now: func() time.Time { return failedAt }}.WithDefaults()
	b := &broker{}

	p.Deliver(t.Context(), func(context.Context, ports.Change, *ports.Change) error { return errView },
		delivery.Delivery{Msg: b, Change: change(), Attempt: p.MaxAttempts, ID: "m1"})

	c := change()
	want := ports.DeadLetter{ID: "d1", Change: &c, Reason: errView.Error(), Attempts: p.MaxAttempts, FailedAt: failedAt}
	if !reflect.DeepEqual(b.dead, want) {
		t.Errorf("dead letter %+v, want %+v", b.dead, want)
	}
	var line map[string]any
	if err := json.Unmarshal(logs.Bytes(), &line); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]any{"level": "ERROR", "msg": "message dead-lettered", "dead_letter_id": "d1",
		"post_id": "p1", "version": 2.0, "event_id": "p1-e2", "message_id": "m1", "attempt": 3.0,
		"reason": errView.Error(), "error": errView.Error()} {
		if line[k] != v {
			t.Errorf("log line %s = %v, want %v", k, line[k], v)
		}
	}
}

func TestLostLogsOneLineSayingWhatToDoAndTellsTheObserver(t *testing.T) {
	t.Parallel()
	tests := []struct {
		give      ports.LossCause
		wantInMsg []string
	}{
		{ports.LossTrimmed, []string{"trimmed", "reconciled with the event store", "raise the stream bound"}},
		{ports.LossStreamGone, []string{"created them again", "reconciled with the event store", "persistent"}},
	}
	for _, tt := range tests {
		t.Run(string(tt.give), func(t *testing.T) {
			t.Parallel()
			var logs bytes.Buffer
			o := &observer{}
			p := delivery.Policy{Log: slog.New(slog.NewJSONHandler(&logs, nil)), Observer: o}.WithDefaults()

			p.Lost(tt.give, "stream", "s1", "group", "g1")

			if !reflect.DeepEqual(o.lost, []ports.LossCause{tt.give}) {
				t.Errorf("the observer heard %v, want [%s]", o.lost, tt.give)
			}
			var line map[string]any
			if err := json.Unmarshal(logs.Bytes(), &line); err != nil {
				t.Fatalf("want one JSON log line, got %q: %v", logs.String(), err)
			}
			for k, v := range map[string]any{"level": "ERROR", "cause": string(tt.give), "stream": "s1", "group": "g1"} {
				if line[k] != v {
					t.Errorf("log line %s = %v, want %v", k, line[k], v)
				}
			}
			for _, w := range tt.wantInMsg {
				if msg := fmt.Sprint(line["msg"]); !strings.Contains(msg, w) {
					t.Errorf("log message %q does not say %q", msg, w)
				}
			}
		})
	}
}

func TestWarnBacklogFromFourFifthsOfTheBound(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                   string
		giveBacklog, giveBound int64
		wantWarn               bool
	}{
		{name: "at 80%", giveBacklog: 800, giveBound: 1000, wantWarn: true},
		{name: "above the bound", giveBacklog: 1200, giveBound: 1000, wantWarn: true},
		{name: "below 80%", giveBacklog: 799, giveBound: 1000},
		{name: "no bound", giveBacklog: 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var logs bytes.Buffer
			p := delivery.Policy{Log: slog.New(slog.NewJSONHandler(&logs, nil))}.WithDefaults()

			p.WarnBacklog(tt.giveBacklog, tt.giveBound, "stream", "s1")

			if got := messages(t, &logs); len(got) != map[bool]int{true: 1}[tt.wantWarn] {
				t.Errorf("logged %q, want a warning: %v", got, tt.wantWarn)
			}
		})
	}
}

func TestDelayDoublesUpToMaxBackoff(t *testing.T) {
	t.Parallel()
	p := delivery.Policy{Backoff: 100 * time.Millisecond, MaxBackoff: 300 * time.Millisecond}.WithDefaults()
	tests := []struct {
		giveFailures int
		want         time.Duration
	}{
		{0, 0},
		{1, 100 * time.Millisecond},
		{2, 200 * time.Millisecond},
		{3, 300 * time.Millisecond},
		{50, 300 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := p.Delay(tt.giveFailures); got != tt.want {
			t.Errorf("Delay(%d) = %s, want %s", tt.giveFailures, got, tt.want)
		}
	}
}
