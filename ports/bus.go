package ports

import (
	"context"
	"time"
)

// Publisher puts changes on the event bus.
type Publisher interface {
	// Publish returns nil only after the bus has durably accepted every change. On error some may
	// have been accepted: the caller publishes all of them again (subscribers tolerate duplicates).
	// It is safe for concurrent use.
	Publish(ctx context.Context, changes []Change) error
}

// Handler applies one delivered change, c. An error asks for a redelivery of c.
//
// later, when not nil, is a later change of c's post that the subscriber holds and will hand to
// the handler after c, whatever becomes of c (the last such change it holds). The handler may
// leave to later what later supersedes: the projector stores c's history entry and leaves the
// current view to later, so a post's backlog costs one view write per run of its changes
// instead of one per change.
type Handler func(ctx context.Context, c Change, later *Change) error

// Subscriber delivers changes to a handler, at least once.
type Subscriber interface {
	// Subscribe calls h for every change published on the bus until ctx ends, then returns nil
	// after the change in hand is finished. A change is acknowledged only after h returned nil.
	// When h fails the change is delivered again after a growing delay, up to the configured
	// number of attempts; then it is moved to the dead letters with the last error as the reason.
	// A message that cannot be decoded is dead-lettered at once. Several subscribers of one group
	// (in one or many processes) share the work: each change goes to one of them in steady state.
	Subscribe(ctx context.Context, h Handler) error
}

// DeadLetter is a message that could not be applied.
type DeadLetter struct {
	ID string
	// Change is nil when the message could not be decoded.
	Change *Change
	// Payload is the message as it was on the bus.
	Payload  []byte
	Reason   string
	Attempts int
	FailedAt time.Time
}

// DeadLetters lets an operator inspect and resolve messages that could not be applied.
type DeadLetters interface {
	// List returns the dead letters, oldest first.
	List(ctx context.Context) ([]DeadLetter, error)
	// Redrive puts the message back on the bus with a fresh attempt count and removes it from the
	// dead letters; ErrNotFound if there is no such id.
	Redrive(ctx context.Context, id string) error
	// Discard removes the message for good; ErrNotFound if there is no such id.
	Discard(ctx context.Context, id string) error
}

// DeadLetterCause says in one fixed word why a message went to the dead letters; the dead
// letter's Reason holds the error itself. The set is closed, so it can label a metric.
type DeadLetterCause string

// The causes of dead letters.
const (
	// CauseUndecodable: the payload is not a message this version can read; it was
	// dead-lettered on its first delivery.
	CauseUndecodable DeadLetterCause = "undecodable"
	// CauseAttemptsExhausted: the handler failed on every attempt it was given.
	CauseAttemptsExhausted DeadLetterCause = "attempts_exhausted"
	// CauseAbandoned: every consumer that took the message stopped before it had an outcome.
	CauseAbandoned DeadLetterCause = "abandoned"
)

// DeliveryObserver hears what a Subscriber does with messages that fail, so the process can
// count them. A Subscriber calls it on its delivering goroutine, possibly from several at once,
// so it must be safe for concurrent use and return quickly.
type DeliveryObserver interface {
	// Retrying is called once each time a change whose handler failed is scheduled to be
	// delivered again.
	Retrying()
	// DeadLettered is called once for each message stored in the dead letters, after it was
	// stored.
	DeadLettered(cause DeadLetterCause)
	// Lost is called once each time the subscriber finds that changes it was never given are
	// gone from the bus. The event store still has them: the read model has drifted until it is
	// reconciled with the store.
	Lost(cause LossCause)
}

// LossCause says in one fixed word how changes left the bus before a subscriber was given them.
type LossCause string

// The causes of lost changes.
const (
	// LossTrimmed: the stream's configured bound removed changes
	// the group had not been given yet.
	LossTrimmed LossCause = "trimmed"
	// LossStreamGone: the stream or the group's place in it is gone: deleted, purged, flushed, or
	// a broker restarted without persistence.
	LossStreamGone LossCause = "stream_gone"
)
