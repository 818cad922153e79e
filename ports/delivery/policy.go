// Package delivery is what every ports.Subscriber promises, implemented once, as watermill keeps
// its Retry and PoisonQueue middlewares beside its router: the attempts and growing delays of a
// change whose handler failed, the dead-letter record, the DeliveryObserver calls, the
// operator's log lines (with those telling of lost changes and of a backlog close to the
// stream's bound), and lanes that apply several posts' changes at once, each post's in order,
// telling the handler of the later change of its post. A bus adapter keeps only what is
// particular to its broker: how a message is taken, acknowledged, scheduled again and stored
// in the dead letters (Message), and how it finds lost changes.
package delivery

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"hexapost/ports"
)

// Defaults of Policy.
const (
	DefaultMaxAttempts = 3
	DefaultBackoff     = 100 * time.Millisecond
	DefaultMaxBackoff  = 5 * time.Second
	DefaultLossCheck   = 5 * time.Second
)

// Policy says what a subscriber does with the outcome of each delivery. WithDefaults fills in
// its zero fields.
type Policy struct {
	// MaxAttempts is how many deliveries a change gets before it is moved to the dead letters
	// (default DefaultMaxAttempts).
	MaxAttempts int
	// Backoff is the delay before the first redelivery (default DefaultBackoff); each further
	// one doubles it, so a struggling read model gets room to recover, up to MaxBackoff (default
	// DefaultMaxBackoff, or Backoff if that is longer).
	Backoff, MaxBackoff time.Duration
	// Abandon dead-letters a change delivered more than MaxAttempts times without handing it to
	// the handler. It suits a broker whose delivery count counts only deliveries that could end
	// in an outcome: such a change was taken by consumers that all stopped before acknowledging
	// it, as one that kills every process that takes it would be.
	Abandon bool
	// Log receives one line per retry and per dead letter (default slog.Default()).
	Log *slog.Logger
	// Observer hears every retry and dead letter (default: nobody).
	Observer ports.DeliveryObserver
	// Now stamps dead letters (default time.Now).
	Now func() time.Time
	// LossCheck is how often a subscriber asks its broker whether changes it was never given
	// are gone (default DefaultLossCheck); it also asks when it starts.
	LossCheck time.Duration
}

// WithDefaults returns p with each zero or negative field set to its default.
func (p Policy) WithDefaults() Policy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = DefaultMaxAttempts
	}
	if p.Backoff <= 0 {
		p.Backoff = DefaultBackoff
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = max(DefaultMaxBackoff, p.Backoff)
	}
	if p.Log == nil {
		p.Log = slog.Default()
	}
	if p.Observer == nil {
		p.Observer = nobody{}
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	if p.LossCheck <= 0 {
		p.LossCheck = DefaultLossCheck
	}
	return p
}

// nobody is the DeliveryObserver of a policy without one.
type nobody struct{}

func (nobody) Retrying()                          {}
func (nobody) DeadLettered(ports.DeadLetterCause) {}
func (nobody) Lost(ports.LossCause)               {}

// Message is a message a subscriber took from its broker, as the policy settles it: exactly one
// of its methods is called for each delivery, with a ctx that does not end with the
// subscription's, since the change in hand is finished; each bounds its own time.
type Message interface {
	// Ack acknowledges the change: it was applied. When that fails, the broker delivers the
	// change again after the duration returned.
	Ack(ctx context.Context) (again time.Duration, err error)
	// Retry schedules the change's next delivery after wait. When that fails, the broker
	// delivers the change again after the duration returned.
	Retry(ctx context.Context, wait time.Duration) (again time.Duration, err error)
	// Release hands the change back for a delivery at once, without counting this one as an
	// attempt: the subscription ended before the change had an outcome.
	Release(ctx context.Context)
	// DeadLetter stores d in the dead letters, setting d.ID (and d.Payload, when nil, to the
	// message as it was on the bus), and acknowledges the change. When that fails, the broker
	// delivers the change again after the duration returned.
	DeadLetter(ctx context.Context, d *ports.DeadLetter) (again time.Duration, err error)
}

// Delivery is one delivery of a message.
type Delivery struct {
	// Msg settles the message with its broker.
	Msg Message
	// Change is what the message carries, unless Undecodable says why it carries none.
	Change      ports.Change
	Undecodable error
	// Payload is the message as it was on the bus, or nil when Msg.DeadLetter fills it in.
	Payload []byte
	// Attempt numbers the delivery, from 1.
	Attempt int
	// ID names the message in log lines (message_id) when its broker has a name for it.
	ID string
	// Later is the change handed to the handler after this one, as ports.Handler tells.
	Later *ports.Change
}

// Deliver hands d to h and settles it: acknowledged when h succeeded; released when h failed
// because ctx ended; after a failed attempt n, delivered again Delay(n) later, or moved to the
// dead letters once MaxAttempts attempts failed. A message that could not be decoded (or was
// abandoned, see Abandon) goes to the dead letters without reaching h.
func (p *Policy) Deliver(ctx context.Context, h ports.Handler, d Delivery) {
	settle := context.WithoutCancel(ctx)
	switch {
	case d.Undecodable != nil:
		p.deadLetter(settle, d, d.Attempt, ports.CauseUndecodable, d.Undecodable)
		return
	case !p.hands(d):
		err := fmt.Errorf("no outcome after %d deliveries: each consumer that took it stopped before acknowledging",
			d.Attempt-1)
		p.deadLetter(settle, d, d.Attempt-1, ports.CauseAbandoned, err)
		return
	}
	err := h(ctx, d.Change, d.Later)
	switch {
	case err == nil:
		if again, err := d.Msg.Ack(settle); err != nil {
			p.Log.Warn("acknowledgement failed; the change will be applied again",
				attrs(d, "attempt", d.Attempt, "retry_in", again, "error", err)...)
		}
	case ctx.Err() != nil:
		d.Msg.Release(settle)
	case d.Attempt >= p.MaxAttempts:
		p.deadLetter(settle, d, d.Attempt, ports.CauseAttemptsExhausted, err)
	default:
		wait := p.Delay(d.Attempt)
		again, serr := d.Msg.Retry(settle, wait)
		p.Observer.Retrying()
		a := attrs(d, "attempt", d.Attempt, "error", err)
		if serr != nil {
			wait, a = again, append(a, "schedule_error", serr)
		}
		p.Log.Warn("projection failed; will retry", append(a, "retry_in", wait)...)
	}
}

// lossMessages say, per cause, what a subscriber found gone and what to do about it.
var lossMessages = map[ports.LossCause]string{
	ports.LossTrimmed: "changes were trimmed from the bus before this group was given them: the read model " +
		"lacks them until it is reconciled with the event store; raise the stream bound above the number of " +
		"changes published while the query side is down or behind",
	ports.LossStreamGone: "the bus lost its stream or this group's place in it (deleted, flushed, or a broker " +
		"restart without persistence) and the subscriber created them again: changes not yet applied are gone " +
		"from the bus, and the read model lacks them until it is reconciled with the event store; keep the " +
		"broker's data persistent",
}

// Lost tells of changes the subscriber was never given that are gone from its bus: one error
// line saying what was lost and what to do, with attrs naming the stream and the group (and how
// many changes, when the broker can tell), and Observer.Lost(cause). A subscriber calls it once
// per incident, not once per check that still sees it.
func (p *Policy) Lost(cause ports.LossCause, attrs ...any) {
	p.Observer.Lost(cause)
	p.Log.Error(lossMessages[cause], append([]any{"cause", string(cause)}, attrs...)...)
}

// backlogWarnAt is the share of a stream's bound at which a group's backlog is worth a warning:
// a little more, and the bound removes changes before the group is given them.
const backlogWarnAt = 0.8

// WarnBacklog logs a warning, with what to set, when backlog (the changes the group has not
// been given or not finished) is at or above backlogWarnAt of the stream's bound; attrs name
// the stream and the group. A bus calls it when it opens.
func (p *Policy) WarnBacklog(backlog, bound int64, attrs ...any) {
	if bound <= 0 || float64(backlog) < backlogWarnAt*float64(bound) {
		return
	}
	p.Log.Warn("the bus's backlog is close to the stream bound: changes beyond it are removed before the "+
		"query side is given them; raise the stream bound, or let the query side catch up",
		append(attrs, "backlog", backlog, "bound", bound)...)
}

// Delay is how long a change that failed n times waits before its next delivery:
// Backoff·2^(n-1), at most MaxBackoff; 0 for n = 0.
func (p *Policy) Delay(n int) time.Duration {
	if n <= 0 {
		return 0
	}
	d := p.Backoff
	for i := 1; i < n && d < p.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, p.MaxBackoff)
}

// hands reports whether Deliver hands d to the handler.
func (p *Policy) hands(d Delivery) bool {
	return d.Undecodable == nil && (!p.Abandon || d.Attempt <= p.MaxAttempts)
}

// deadLetter moves d's message to the dead letters after the given attempts.
func (p *Policy) deadLetter(ctx context.Context, d Delivery, attempts int, why ports.DeadLetterCause, cause error) {
	rec := ports.DeadLetter{Payload: d.Payload, Reason: cause.Error(), Attempts: attempts, FailedAt: p.Now()}
	if d.Undecodable == nil {
		c := d.Change // only here on the heap: a change delivered is not
		rec.Change = &c
	}
	again, err := d.Msg.DeadLetter(ctx, &rec)
	a := attrs(d, "attempt", attempts, "reason", rec.Reason, "error", cause)
	if rec.Change == nil {
		a = append(a, "payload_bytes", len(rec.Payload))
	}
	if err != nil {
		p.Log.Error("dead-lettering failed; the change will be delivered again",
			append(a, "retry_in", again, "dead_letter_error", err)...)
		return
	}
	p.Observer.DeadLettered(why)
	p.Log.Error("message dead-lettered", append([]any{"dead_letter_id", rec.ID}, a...)...)
}

// attrs returns the attributes that name d's change, when it has one, and its message in a log
// line, followed by more.
func attrs(d Delivery, more ...any) []any {
	var a []any
	if d.Undecodable == nil {
		e := d.Change.Event
		a = append(a, "post_id", e.PostID, "version", e.Version, "event_id", e.ID)
	}
	if d.ID != "" {
		a = append(a, "message_id", d.ID)
	}
	return append(a, more...)
}
