package contract

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hexapost/adapters/wire"
	"hexapost/core/post"
	"hexapost/ports"
)

// BusClient is one client of the bus under test, as one process holds it.
type BusClient interface {
	ports.Publisher
	ports.Subscriber
}

// BusPair is what a bus factory returns: two clients of one fresh, isolated bus and consumer
// group, as two processes would hold them, and the group's dead letters. For an in-process bus
// A and B may be the same value.
type BusPair struct {
	A, B        BusClient
	DeadLetters ports.DeadLetters
	// PublishRaw puts payload on the bus as it is, bypassing the wire format, so the suite can
	// send a message that cannot be decoded.
	PublishRaw func(ctx context.Context, payload []byte) error
	// DropStream deletes what the bus keeps of the changes and the group's place in them, as a
	// flush, a deletion or a broker restart without persistence does. A bus that can lose
	// changes (BusFeatures.Bound) sets it.
	DropStream func(ctx context.Context) error
	// Eraser removes erased posts from the bus.
	Eraser ports.BusEraser

	// observed is what the observer given to the factory heard.
	observed *deliveries
}

// BusFeatures declares how the factory configured its buses and how long the suite may wait
// for them.
type BusFeatures struct {
	// MaxAttempts is the configured number of deliveries before a message is dead-lettered
	// (default 3).
	MaxAttempts int
	// Backoff is the configured delay before the first redelivery. The suite checks that retry
	// n waits at least about Backoff·2^(n-1) and that no wait is shorter than the one before, so
	// the configured cap must lie above the waits of MaxAttempts attempts. Keep it short, since
	// several cases wait for a message's every attempt, but well above the bus's own timer
	// granularity, or that noise can make a later wait look shorter than an earlier one.
	Backoff time.Duration
	// Following says that the subscriber tells the handler, as later (ports.Handler), of the
	// last later change of the same post that it holds behind the change in hand; a subscriber
	// without it must never say so.
	Following bool
	// Lanes says that the subscriber applies several posts' changes at once and goes on taking
	// changes while it does, so that a slow change holds up only the changes of its own post.
	Lanes bool
	// Bound is how many changes the factory's streams keep at most, for a bus that removes the
	// oldest beyond a bound, and so can lose changes its subscribers were never given: the
	// suite checks that they tell of each loss once. 0 says the bus never loses a change. It
	// must exceed what the other cases publish at once (200).
	Bound int
	// LossCheck is how often the factory's subscribers check for lost changes; the suite
	// watches that long, a few times over, for a loss told twice.
	LossCheck time.Duration
	// Timeout bounds each wait of the suite (default 10s). A bus that hands an unacknowledged
	// message to another subscriber only after an acknowledgement deadline (JetStream's
	// AckWait, a Redis claim idle time) needs it well above that deadline.
	Timeout time.Duration
}

// Bus holds a bus to the promises of ports.Publisher, ports.Subscriber and ports.DeadLetters,
// and its subscribers to telling o of every retry and dead letter (ports.DeliveryObserver).
// newBus must return a fresh, isolated bus on every call, with both clients configured to
// report to o; the cases run in parallel, each with its own bus.
func Bus(t *testing.T, newBus func(t *testing.T, o ports.DeliveryObserver) BusPair, f BusFeatures) {
	if f.MaxAttempts <= 0 {
		f.MaxAttempts = 3
	}
	if f.Timeout <= 0 {
		f.Timeout = defaultTimeout
	}
	if f.Bound > 0 && f.LossCheck <= 0 {
		t.Fatal("BusFeatures: a bus with a Bound declares its LossCheck too")
	}
	cases := []struct {
		name string
		run  func(*testing.T, BusPair, BusFeatures)
	}{
		{"delivers from one client to a subscriber of the other", busDelivery},
		{"keeps messages published before anyone subscribes", busKeepsUntilSubscribed},
		{"redelivers a change whose handler failed", busRedelivery},
		{"a failing change does not hold up the ones behind it", busRetryDoesNotBlock},
		{"hands an unacknowledged change to another subscriber", busUnacknowledged},
		{"competing subscribers share the work", busCompeting},
		{"retries with growing delays, then dead-letters with reason and attempts", busRetriesThenDeadLetter},
		{"dead-letters an undecodable message at once and goes on", busUndecodable},
		{"lists dead letters oldest first", busDeadLetterOrder},
		{"redrive delivers again with a fresh attempt count", busRedrive},
		{"discard removes a dead letter", busDiscard},
		{"unknown dead letter is not found", busUnknownDeadLetter},
		{"tells the handler of the last later change of the post it holds", busFollowing},
		{"a slow change holds up only the changes of its own post", busSlowChangeHoldsOnlyItsPost},
		{"erasing posts removes their messages and dead letters", busErasure},
		{"tells once of changes the bound removed before they were given", busTellsOfTrimmedChanges},
		{"tells of a lost stream and goes on delivering", busTellsOfALostStream},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			o := &deliveries{}
			p := newBus(t, o)
			p.observed = o
			c.run(t, p, f)
		})
	}
}

func busDelivery(t *testing.T, p BusPair, f BusFeatures) {
	rec := newRecorder(nil)
	subscribe(t.Context(), t, f, p.B, rec.handle)
	sent := someChanges(t, 3)

	publish(t, p.A, sent...)

	eventually(t, f.Timeout, func() bool { return rec.appliedAll(sent) }, "every change to be applied")
	for _, c := range sent {
		got := rec.change(c.Event.ID)
		if !reflect.DeepEqual(utcChange(got), utcChange(c)) {
			t.Errorf("delivered\n%+v\nwant\n%+v", got, c)
		}
	}
}

func busKeepsUntilSubscribed(t *testing.T, p BusPair, f BusFeatures) {
	sent := someChanges(t, 3)
	publish(t, p.A, sent...)
	rec := newRecorder(nil)

	subscribe(t.Context(), t, f, p.B, rec.handle)

	eventually(t, f.Timeout, func() bool { return rec.appliedAll(sent) }, "the earlier changes to be applied")
}

func busRedelivery(t *testing.T, p BusPair, f BusFeatures) {
	errTransient := errors.New("transient failure")
	rec := newRecorder(func(_ ports.Change, delivery int) error {
		if delivery == 1 {
			return errTransient
		}
		return nil
	})
	subscribe(t.Context(), t, f, p.B, rec.handle)
	sent := someChanges(t, 2)

	publish(t, p.A, sent...)

	eventually(t, f.Timeout, func() bool { return rec.appliedAll(sent) }, "the failed changes to be applied")
	for _, c := range sent {
		if n, d := rec.applied(c.Event.ID), len(rec.deliveries(c.Event.ID)); n != 1 || d != 2 {
			t.Errorf("%s: %d deliveries, applied %d times; want 2 deliveries, applied once", c.Event.ID, d, n)
		}
	}
	if dead := deadLetters(t, p); len(dead) != 0 {
		t.Errorf("%d dead letters, want none", len(dead))
	}
}

func busRetryDoesNotBlock(t *testing.T, p BusPair, f BusFeatures) {
	if f.MaxAttempts < 2 {
		t.Skip("needs at least two attempts")
	}
	sent := someChanges(t, 2)
	first, second := sent[0], sent[1]
	var rec *recorder
	// The first change fails until the second is applied: a bus that retried it in place,
	// ahead of everything else, would dead-letter it before the second ever came.
	rec = newRecorder(func(c ports.Change, _ int) error {
		if c.Event.ID == first.Event.ID && rec.applied(second.Event.ID) == 0 {
			return errors.New("waiting for the change behind")
		}
		return nil
	})
	subscribe(t.Context(), t, f, p.B, rec.handle)

	publish(t, p.A, sent...)

	eventually(t, f.Timeout, func() bool {
		return rec.appliedAll(sent) || len(deadLetters(t, p)) > 0
	}, "both changes to be applied")
	if dead := deadLetters(t, p); len(dead) != 0 {
		t.Fatalf("the first change was dead-lettered after %d attempts: the change behind it was held up",
			dead[0].Attempts)
	}
}

func busUnacknowledged(t *testing.T, p BusPair, f BusFeatures) {
	holding := make(chan ports.Change, 1)
	ctx1, cancel1 := context.WithCancel(t.Context())
	defer cancel1()
	stop1 := subscribe(ctx1, t, f, p.A, func(_ context.Context, c ports.Change, _ *ports.Change) error {
		holding <- c
		<-ctx1.Done() // hold the change until this subscriber is stopped, then fail it
		return ctx1.Err()
	})
	sent := someChanges(t, 1)
	publish(t, p.A, sent...)
	receive(t, f.Timeout, holding, "the first subscriber to take the change")
	rec := newRecorder(nil)
	subscribe(t.Context(), t, f, p.B, rec.handle)

	cancel1()
	stop1()

	eventually(t, f.Timeout, func() bool { return rec.appliedAll(sent) },
		"the other subscriber to apply the change the stopped one held")
	if dead := deadLetters(t, p); len(dead) != 0 {
		t.Errorf("%d dead letters, want none", len(dead))
	}
}

func busCompeting(t *testing.T, p BusPair, f BusFeatures) {
	const n = 200
	var (
		mu      sync.Mutex
		applied = map[string]int{}
		counts  [2]int
		first   = [2]chan struct{}{make(chan struct{}), make(chan struct{})}
	)
	// handler i records the change; on its first change it waits (bounded) until the other
	// subscriber has one too, so a bus that hands everything to one subscriber is caught
	// instead of winning a race.
	handler := func(i int) ports.Handler {
		return func(_ context.Context, c ports.Change, _ *ports.Change) error {
			mu.Lock()
			applied[c.Event.ID]++
			counts[i]++
			isFirst := counts[i] == 1
			mu.Unlock()
			if isFirst {
				close(first[i])
				wait := time.NewTimer(f.Timeout / 2)
				defer wait.Stop()
				select {
				case <-first[1-i]:
				case <-wait.C:
				}
			}
			return nil
		}
	}
	subscribe(t.Context(), t, f, p.A, handler(0))
	subscribe(t.Context(), t, f, p.B, handler(1))
	sent := someChanges(t, n)

	for i := 0; i < n; i += 20 {
		publish(t, p.A, sent[i:i+20]...)
	}

	eventually(t, f.Timeout, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(applied) == n
	}, fmt.Sprintf("all %d changes to be applied", n))
	mu.Lock()
	defer mu.Unlock()
	for _, c := range sent {
		if k := applied[c.Event.ID]; k != 1 {
			t.Errorf("%s applied %d times, want once", c.Event.ID, k)
		}
	}
	if counts[0] == 0 || counts[1] == 0 {
		t.Errorf("subscribers applied %d and %d changes, want both some", counts[0], counts[1])
	}
	t.Logf("split %d/%d", counts[0], counts[1])
}

func busRetriesThenDeadLetter(t *testing.T, p BusPair, f BusFeatures) {
	errDown := errors.New("view store rejects writes")
	rec := newRecorder(func(ports.Change, int) error { return errDown })
	subscribe(t.Context(), t, f, p.B, rec.handle)
	sent := someChanges(t, 1)
	c := sent[0]
	before := time.Now()

	publish(t, p.A, c)

	dead := waitDeadLetters(t, p, f, 1)
	at := rec.deliveries(c.Event.ID)
	if len(at) != f.MaxAttempts {
		t.Fatalf("%d deliveries before the dead letter, want %d", len(at), f.MaxAttempts)
	}
	var gaps []time.Duration
	for i := 1; i < len(at); i++ {
		gaps = append(gaps, at[i].Sub(at[i-1]))
	}
	t.Logf("delays between attempts: %v", gaps)
	for i := 1; i < len(gaps); i++ {
		if gaps[i] < gaps[i-1] {
			t.Errorf("delay %d (%s) is shorter than delay %d (%s), want growing delays", i+1, gaps[i], i, gaps[i-1])
		}
	}
	for i, g := range gaps {
		// A lower bound only: a loaded machine delays timers, it never hurries them.
		if want := f.Backoff << i; g < want*4/5 {
			t.Errorf("retry %d came after %s, want at least about %s (backoff %s doubling)", i+1, g, want, f.Backoff)
		}
	}
	d := dead[0]
	switch {
	case d.ID == "":
		t.Error("dead letter without an id")
	case d.Attempts != f.MaxAttempts:
		t.Errorf("dead letter attempts = %d, want %d", d.Attempts, f.MaxAttempts)
	case !strings.Contains(d.Reason, errDown.Error()):
		t.Errorf("dead letter reason = %q, want it to contain %q", d.Reason, errDown)
	case d.Change == nil || !reflect.DeepEqual(utcChange(*d.Change), utcChange(c)):
		t.Errorf("dead letter change = %+v, want %+v", d.Change, c)
	case d.FailedAt.Before(before.Add(-time.Minute)) || d.FailedAt.After(time.Now().Add(time.Minute)):
		t.Errorf("dead letter failed at %s, want about now", d.FailedAt)
	}
	if got, err := wire.Decode(d.Payload); err != nil || !reflect.DeepEqual(utcChange(got), utcChange(c)) {
		t.Errorf("dead letter payload %q decodes to %+v, %v; want the change", d.Payload, got, err)
	}
	if rec.applied(c.Event.ID) != 0 {
		t.Error("a change that always failed was applied")
	}
	want := observedDeliveries{Retries: f.MaxAttempts - 1,
		DeadLetters: map[ports.DeadLetterCause]int{ports.CauseAttemptsExhausted: 1}}
	p.observed.waitFor(t, f, want)
}

func busUndecodable(t *testing.T, p BusPair, f BusFeatures) {
	rec := newRecorder(nil)
	subscribe(t.Context(), t, f, p.B, rec.handle)
	poison := []byte("{not json")
	sent := someChanges(t, 1)

	if err := p.PublishRaw(t.Context(), poison); err != nil {
		t.Fatal(err)
	}
	publish(t, p.A, sent...)

	eventually(t, f.Timeout, func() bool { return rec.appliedAll(sent) }, "the change behind the poison message")
	dead := waitDeadLetters(t, p, f, 1)
	d := dead[0]
	if d.Change != nil || d.Attempts != 1 || !bytes.Equal(d.Payload, poison) || d.Reason == "" || d.ID == "" {
		t.Errorf("dead letter = %+v, want the payload %q with no change, a reason and 1 attempt", d, poison)
	}
	p.observed.waitFor(t, f, observedDeliveries{DeadLetters: map[ports.DeadLetterCause]int{ports.CauseUndecodable: 1}})
}

func busDeadLetterOrder(t *testing.T, p BusPair, f BusFeatures) {
	subscribe(t.Context(), t, f, p.B, newRecorder(nil).handle)
	payloads := [][]byte{[]byte("first poison"), []byte(`{"schema":99}`), []byte("third poison")}

	for i, b := range payloads {
		if err := p.PublishRaw(t.Context(), b); err != nil {
			t.Fatal(err)
		}
		waitDeadLetters(t, p, f, i+1)
	}

	dead := deadLetters(t, p)
	for i, d := range dead {
		if !bytes.Equal(d.Payload, payloads[i]) {
			t.Errorf("dead letter %d is %q, want %q", i, d.Payload, payloads[i])
		}
	}
}

func busRedrive(t *testing.T, p BusPair, f BusFeatures) {
	ctx := t.Context()
	var broken atomic.Bool
	broken.Store(true)
	errDown := errors.New("view store rejects writes")
	rec := newRecorder(func(ports.Change, int) error {
		if broken.Load() {
			return errDown
		}
		return nil
	})
	subscribe(ctx, t, f, p.B, rec.handle)
	sent := someChanges(t, 1)
	id := sent[0].Event.ID
	publish(t, p.A, sent...)
	first := waitDeadLetters(t, p, f, 1)[0]

	if err := p.DeadLetters.Redrive(ctx, first.ID); err != nil {
		t.Fatalf("Redrive while still failing: %v", err)
	}

	eventually(t, f.Timeout, func() bool {
		return len(rec.deliveries(id)) == 2*f.MaxAttempts && len(deadLetters(t, p)) == 1
	}, "the redriven change to fail all its attempts again")
	second := deadLetters(t, p)[0]
	if second.Attempts != f.MaxAttempts {
		t.Errorf("after a redrive the dead letter has %d attempts, want a fresh count of %d", second.Attempts, f.MaxAttempts)
	}

	broken.Store(false)
	if err := p.DeadLetters.Redrive(ctx, second.ID); err != nil {
		t.Fatalf("Redrive: %v", err)
	}

	for _, d := range deadLetters(t, p) {
		if d.ID == second.ID {
			t.Errorf("dead letter %s still listed after its redrive", d.ID)
		}
	}
	eventually(t, f.Timeout, func() bool { return rec.applied(id) == 1 }, "the redriven change to be applied")
	if dead := deadLetters(t, p); len(dead) != 0 {
		t.Errorf("%d dead letters after a successful redrive, want none", len(dead))
	}
}

func busDiscard(t *testing.T, p BusPair, f BusFeatures) {
	ctx := t.Context()
	subscribe(ctx, t, f, p.B, newRecorder(nil).handle)
	if err := p.PublishRaw(ctx, []byte("poison")); err != nil {
		t.Fatal(err)
	}
	d := waitDeadLetters(t, p, f, 1)[0]

	if err := p.DeadLetters.Discard(ctx, d.ID); err != nil {
		t.Fatalf("Discard: %v", err)
	}

	if dead := deadLetters(t, p); len(dead) != 0 {
		t.Errorf("%d dead letters after the discard, want none", len(dead))
	}
	if err := p.DeadLetters.Discard(ctx, d.ID); !errors.Is(err, ports.ErrNotFound) {
		t.Errorf("Discard again: %v, want %v", err, ports.ErrNotFound)
	}
	if err := p.DeadLetters.Redrive(ctx, d.ID); !errors.Is(err, ports.ErrNotFound) {
		t.Errorf("Redrive after the discard: %v, want %v", err, ports.ErrNotFound)
	}
}

func busUnknownDeadLetter(t *testing.T, p BusPair, _ BusFeatures) {
	for _, id := range []string{"no-such-dead-letter", newID(), "0-0", ""} {
		if err := p.DeadLetters.Redrive(t.Context(), id); !errors.Is(err, ports.ErrNotFound) {
			t.Errorf("Redrive(%q): %v, want %v", id, err, ports.ErrNotFound)
		}
		if err := p.DeadLetters.Discard(t.Context(), id); !errors.Is(err, ports.ErrNotFound) {
			t.Errorf("Discard(%q): %v, want %v", id, err, ports.ErrNotFound)
		}
	}
}

func busFollowing(t *testing.T, p BusPair, f BusFeatures) {
	st := newStory(t, epoch)
	id := st.create("post", "body", "ada")
	for v := 2; v <= 5; v++ {
		st.update(id, post.Update{Content: ptr(fmt.Sprint("body ", v))})
	}
	st.create("another post", "body", "bob")
	sent := st.changes
	publish(t, p.A, sent...) // before anyone subscribes: the subscriber takes them all at once
	var (
		mu        sync.Mutex
		following = map[string]int64{} // event id → the version said to follow it, 0 for none
	)
	subscribe(t.Context(), t, f, p.B, func(_ context.Context, c ports.Change, later *ports.Change) error {
		mu.Lock()
		defer mu.Unlock()
		following[c.Event.ID] = 0
		if later != nil {
			following[c.Event.ID] = later.Event.Version
			if later.Event.PostID != c.Event.PostID {
				t.Errorf("%s v%d: told that a change of %s follows", c.Event.PostID, c.Event.Version, later.Event.PostID)
			}
		}
		return nil
	})
	eventually(t, f.Timeout, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(following) == len(sent)
	}, "every change to be handled")

	mu.Lock()
	defer mu.Unlock()
	for _, c := range sent {
		want := int64(0)
		if f.Following && c.Event.PostID == id && c.Event.Version < 5 {
			want = 5
		}
		got := following[c.Event.ID]
		if c.Event.Version == 1 && got == 0 {
			continue // the first change after an idle spell may come alone (JetStream's waiting fetch takes one)
		}
		if got != want {
			t.Errorf("%s v%d: told that v%d follows, want v%d (0: none)", c.Event.PostID, c.Event.Version, got, want)
		}
	}
}

func busSlowChangeHoldsOnlyItsPost(t *testing.T, p BusPair, f BusFeatures) {
	if !f.Lanes {
		t.Skip("the subscriber applies one change at a time")
	}
	st := newStory(t, epoch)
	slow := st.create("slow post", "body", "ada")
	st.update(slow, post.Update{Content: ptr("body 2")})
	st.create("another post", "body", "bob")
	slow1, slow2, other := st.changes[0], st.changes[1], st.changes[2]
	begun, release := make(chan struct{}), make(chan struct{})
	var (
		mu          sync.Mutex
		order       []string // event ids, as handled
		releaseOnce sync.Once
	)
	// Deferred too, so that a failure below does not leave the handler blocked.
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	defer unblock()
	subscribe(t.Context(), t, f, p.B, func(_ context.Context, c ports.Change, _ *ports.Change) error {
		if c.Event.ID == slow1.Event.ID {
			close(begun)
			<-release
		}
		mu.Lock()
		defer mu.Unlock()
		order = append(order, c.Event.ID)
		return nil
	})
	handled := func(id string) bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(order, id)
	}

	publish(t, p.A, slow1)
	receive(t, f.Timeout, begun, "the slow change to be begun")
	// Published while the slow change is in hand, so the subscriber takes them after it.
	publish(t, p.A, slow2, other)
	eventually(t, f.Timeout, func() bool { return handled(other.Event.ID) },
		"the other post's change to be applied while the slow one is in hand")
	if handled(slow2.Event.ID) {
		t.Error("the slow post's second change was applied before its first")
	}
	unblock()
	eventually(t, f.Timeout, func() bool { return handled(slow2.Event.ID) }, "the slow post's second change to be applied")
	mu.Lock()
	defer mu.Unlock()
	if want := []string{other.Event.ID, slow1.Event.ID, slow2.Event.ID}; !slices.Equal(order, want) {
		t.Errorf("handled %v, want %v (the other post's change, then the slow post's in order)", order, want)
	}
}

func busTellsOfTrimmedChanges(t *testing.T, p BusPair, f BusFeatures) {
	if f.Bound == 0 {
		t.Skip("the bus never loses a change")
	}
	// The group has its place in the stream: it was given a change, as a query server that ran.
	rec := newRecorder(nil)
	stop := subscribe(t.Context(), t, f, p.B, rec.handle)
	first := someChanges(t, 1)
	publish(t, p.A, first...)
	eventually(t, f.Timeout, func() bool { return rec.appliedAll(first) }, "the first change to be applied")
	stop()
	// While no subscriber runs, three bounds' worth: the oldest are removed before anyone is
	// given them.
	sent := someChanges(t, 3*f.Bound)
	for i := 0; i < len(sent); i += 100 {
		publish(t, p.A, sent[i:min(i+100, len(sent))]...)
	}

	subscribe(t.Context(), t, f, p.B, rec.handle)

	last := sent[len(sent)-1:]
	eventually(t, f.Timeout, func() bool { return rec.appliedAll(last) }, "the last change to be applied")
	want := observedDeliveries{Losses: map[ports.LossCause]int{ports.LossTrimmed: 1}}
	p.observed.waitFor(t, f, want)
	if rec.appliedAll(sent) {
		t.Fatalf("all %d changes were applied: the bound of %d did not remove any", len(sent), f.Bound)
	}
	// A subscriber that starts after the others caught up finds nothing new to tell.
	subscribe(t.Context(), t, f, p.A, rec.handle)
	more := someChanges(t, 1)
	publish(t, p.A, more...)
	eventually(t, f.Timeout, func() bool { return rec.appliedAll(more) }, "a later change to be applied")
	p.observed.stays(t, f, want)
}

func busTellsOfALostStream(t *testing.T, p BusPair, f BusFeatures) {
	if f.Bound == 0 {
		t.Skip("the bus never loses a change")
	}
	rec := newRecorder(nil)
	subscribe(t.Context(), t, f, p.B, rec.handle)
	before := someChanges(t, 1)
	publish(t, p.A, before...)
	eventually(t, f.Timeout, func() bool { return rec.appliedAll(before) }, "a change to be applied")

	if err := p.DropStream(t.Context()); err != nil {
		t.Fatalf("DropStream: %v", err)
	}

	// Told with nothing published since: the subscriber finds the loss on its own.
	want := observedDeliveries{Losses: map[ports.LossCause]int{ports.LossStreamGone: 1}}
	p.observed.waitFor(t, f, want)
	after := someChanges(t, 3)
	publish(t, p.A, after...)
	eventually(t, f.Timeout, func() bool { return rec.appliedAll(after) }, "the changes published after the loss")
	p.observed.stays(t, f, want)
}

// subscribe runs c.Subscribe(ctx, h) in a goroutine until stop is called or the test ends.
// stop cancels the subscription and checks that Subscribe returns nil in time.
func subscribe(ctx context.Context, t *testing.T, f BusFeatures, c BusClient, h ports.Handler) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Subscribe(ctx, h) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			wait := time.NewTimer(f.Timeout)
			defer wait.Stop()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Subscribe returned %v when its context ended, want nil", err)
				}
			case <-wait.C:
				t.Errorf("Subscribe did not return within %s of its context ending", f.Timeout)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func publish(t *testing.T, c ports.Publisher, changes ...ports.Change) {
	t.Helper()
	if err := c.Publish(t.Context(), changes); err != nil {
		t.Fatalf("Publish: %v", err)
	}
}

// someChanges returns n changes of as many new posts.
// someChanges returns n creates, each with the metadata of the request that made it, which
// every bus must deliver (and dead-letter) with the change.
func someChanges(t *testing.T, n int) []ports.Change {
	st := newStory(t, epoch)
	for i := range n {
		st.create(fmt.Sprintf("post %d", i), "body", "ada")
	}
	for i := range st.changes {
		st.changes[i].Metadata = ports.Metadata{
			TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
			RequestID:   fmt.Sprintf("request-%d", i),
		}
	}
	return st.changes
}

func deadLetters(t *testing.T, p BusPair) []ports.DeadLetter {
	t.Helper()
	dead, err := p.DeadLetters.List(t.Context())
	if err != nil {
		t.Fatalf("List dead letters: %v", err)
	}
	return dead
}

// waitDeadLetters waits until there are n dead letters and returns them.
func waitDeadLetters(t *testing.T, p BusPair, f BusFeatures, n int) []ports.DeadLetter {
	t.Helper()
	var dead []ports.DeadLetter
	eventually(t, f.Timeout, func() bool {
		dead = deadLetters(t, p)
		return len(dead) >= n
	}, fmt.Sprintf("%d dead letters", n))
	if len(dead) != n {
		t.Fatalf("%d dead letters, want %d", len(dead), n)
	}
	return dead
}

// recorder is a handler that records every delivery and fails when fail says so.
type recorder struct {
	// fail returns the error for the given delivery (1, 2, …) of c, or nil to apply it.
	fail func(c ports.Change, delivery int) error

	mu      sync.Mutex
	times   map[string][]time.Time // event id → when each delivery came
	counts  map[string]int         // event id → times applied
	changes map[string]ports.Change
}

func newRecorder(fail func(ports.Change, int) error) *recorder {
	return &recorder{fail: fail, times: map[string][]time.Time{}, counts: map[string]int{},
		changes: map[string]ports.Change{}}
}

func (r *recorder) handle(_ context.Context, c ports.Change, _ *ports.Change) error {
	now := time.Now()
	id := c.Event.ID
	r.mu.Lock()
	r.times[id] = append(r.times[id], now)
	delivery := len(r.times[id])
	r.mu.Unlock()
	if r.fail != nil {
		if err := r.fail(c, delivery); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counts[id]++
	r.changes[id] = c
	return nil
}

func (r *recorder) deliveries(id string) []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.times[id]...)
}

func (r *recorder) applied(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[id]
}

func (r *recorder) change(id string) ports.Change {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changes[id]
}

func (r *recorder) appliedAll(cs []ports.Change) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range cs {
		if r.counts[c.Event.ID] == 0 {
			return false
		}
	}
	return true
}

// deliveries is a ports.DeliveryObserver that counts what it hears.
type deliveries struct {
	mu  sync.Mutex
	got observedDeliveries
}

type observedDeliveries struct {
	Retries     int
	DeadLetters map[ports.DeadLetterCause]int
	Losses      map[ports.LossCause]int
}

func (d *deliveries) Retrying() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.got.Retries++
}

func (d *deliveries) DeadLettered(c ports.DeadLetterCause) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.got.DeadLetters == nil {
		d.got.DeadLetters = map[ports.DeadLetterCause]int{}
	}
	d.got.DeadLetters[c]++
}

func (d *deliveries) Lost(c ports.LossCause) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.got.Losses == nil {
		d.got.Losses = map[ports.LossCause]int{}
	}
	d.got.Losses[c]++
}

func (d *deliveries) snapshot() observedDeliveries {
	d.mu.Lock()
	defer d.mu.Unlock()
	return observedDeliveries{Retries: d.got.Retries, DeadLetters: maps.Clone(d.got.DeadLetters),
		Losses: maps.Clone(d.got.Losses)}
}

// waitFor waits until the observer heard exactly want. The dead letter is visible before the
// subscriber reports it, so the report may come a moment after the suite saw it.
func (d *deliveries) waitFor(t *testing.T, f BusFeatures, want observedDeliveries) {
	t.Helper()
	same := func() bool { return d.heard(want) }
	deadline := time.Now().Add(f.Timeout)
	for !same() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // polling a condition with a deadline
	}
	if got := d.snapshot(); !same() {
		t.Errorf("the observer heard %+v, want %+v", got, want)
	}
}

// heard reports whether the observer heard exactly want.
func (d *deliveries) heard(want observedDeliveries) bool {
	got := d.snapshot()
	return got.Retries == want.Retries && maps.Equal(got.DeadLetters, want.DeadLetters) &&
		maps.Equal(got.Losses, want.Losses)
}

// stays checks that the observer goes on having heard exactly want while the subscribers check
// for lost changes three times more: a loss is told once, not at every check that still sees it.
func (d *deliveries) stays(t *testing.T, f BusFeatures, want observedDeliveries) {
	t.Helper()
	for end := time.Now().Add(3 * f.LossCheck); time.Now().Before(end); {
		if !d.heard(want) {
			t.Fatalf("the observer heard %+v, want %+v", d.snapshot(), want)
		}
		time.Sleep(5 * time.Millisecond) // watching for a report that must not come
	}
}
