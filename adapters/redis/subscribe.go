package redis

import (
	"context"
	"errors"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"hexapost/adapters/wire"
	"hexapost/ports"
	"hexapost/ports/delivery"
)

const (
	// maxBlock bounds one XREADGROUP BLOCK, and so how long Subscribe takes to notice that its
	// context ended or that a change of another consumer became due.
	maxBlock = 500 * time.Millisecond
	// scanCount bounds the pending entries looked at in one scan.
	scanCount = 100
)

// entry is a stream entry this consumer took, with its attempt number (its delivery count).
type entry struct {
	msg     goredis.XMessage
	attempt int
}

// message is a change in hand, which the bus's delivery.Policy settles in the group; once
// settled it is no longer in hand.
type message struct {
	s *subscription
	entry
}

var _ delivery.Message = (*message)(nil)

// claimable is a pending entry that may be claimed once it has been idle for minIdle.
type claimable struct {
	id      string
	minIdle time.Duration
	attempt int
}

// subscription is the state of one Subscribe call.
type subscription struct {
	b *Bus
	// scanned is when the group was last scanned for retries and changes held by dead
	// consumers.
	scanned time.Time
	// failures counts the reads that failed in a row.
	failures int
	// recover asks the next pass to scan at once, after a failed one: a read's answer may have
	// been lost on the way (Redis recorded the delivery, then the connection or the server
	// went), or an acknowledgement may have failed.
	recover bool
	// checked is when the stream was last checked for changes trimmed before the group was
	// given them; lost says that check found some, so that one incident is told once, however
	// many checks see it.
	checked time.Time
	lost    bool

	mu sync.Mutex
	// inHand are the ids of the changes this consumer took and has not finished: they are
	// pending in the group, and no scan may take them again.
	inHand map[string]struct{}
	// retryDue is when the first retry this consumer scheduled, or saw in a scan, becomes due;
	// zero when it knows of none.
	retryDue time.Time
}

// Subscribe reads the group and calls h for each change until ctx ends, then returns nil once
// the changes in hand are finished. A pass claims the retries once one it knows of is due, and,
// at least every half second, every due retry and the changes abandoned by dead consumers; then
// it reads new changes, blocking at most until the next retry it knows of is due and never more
// than half a second, which bounds how long it takes to notice that ctx ended. The changes taken
// go to the lanes of the bus's delivery.Policy while the next pass reads on. At most Batch
// changes are in hand at a time. A failed pass (Redis down) is logged and retried with backoff;
// Subscribe returns only when ctx ends. The package comment gives the rules.
func (b *Bus) Subscribe(ctx context.Context, h ports.Handler) error {
	s := &subscription{b: b, recover: true, inHand: map[string]struct{}{}}
	lanes := b.policy.Lanes(ctx, h)
	defer lanes.Wait()
	for ctx.Err() == nil {
		lanes.WaitBelow(b.cfg.Batch)
		held := lanes.Held()
		batch, err := s.next(ctx, b.cfg.Batch-held, held > 0)
		switch {
		case err != nil && ctx.Err() != nil:
			return nil
		case err != nil:
			s.pause(ctx, err)
			continue
		}
		s.failures = 0
		ds := make([]delivery.Delivery, len(batch))
		s.mu.Lock()
		for i, e := range batch {
			payload := field(e.msg, "payload")
			ds[i] = delivery.Delivery{Msg: &message{s, e}, Payload: payload, Attempt: e.attempt, ID: e.msg.ID}
			ds[i].Change, ds[i].Undecodable = wire.Decode(payload)
			s.inHand[e.msg.ID] = struct{}{}
		}
		s.mu.Unlock()
		lanes.Add(ds...)
	}
	return nil
}

// retryAfter notes that a retry becomes due after, from now; a negative after notes nothing.
// The earlier of two notes wins: each is a retry waiting.
func (s *subscription) retryAfter(now time.Time, after time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if at := now.Add(after); after >= 0 && (s.retryDue.IsZero() || at.Before(s.retryDue)) {
		s.retryDue = at
	}
}

// takeRetryDue reports whether a retry it knows of is due by now, and forgets it: the scan that
// follows notes the retries it leaves waiting, and one scheduled meanwhile notes itself.
func (s *subscription) takeRetryDue(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	due := !s.retryDue.IsZero() && !now.Before(s.retryDue)
	if due {
		s.retryDue = time.Time{}
	}
	return due
}

// untilRetryDue returns how long until the first retry it knows of is due, maxBlock if none.
func (s *subscription) untilRetryDue() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.retryDue.IsZero() {
		return maxBlock
	}
	return time.Until(s.retryDue)
}

// finished forgets a change in hand once its outcome is recorded in the group.
func (s *subscription) finished(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.inHand, id)
}

// held reports whether the change with this id is in hand.
func (s *subscription) held(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.inHand[id]
	return ok
}

// next returns at most room changes to handle now, oldest retries first; it may be empty. busy
// tells that changes are in hand: one of them may fail meanwhile and be due for its retry
// Backoff later, so the read then blocks no longer than that. Before the first read, and once
// every LossCheck, it checks for lost changes.
func (s *subscription) next(ctx context.Context, room int, busy bool) ([]entry, error) {
	b := s.b
	if err := s.checkLoss(ctx); err != nil {
		return nil, err
	}
	now := time.Now()
	scanEvery := min(max(b.cfg.VisibilityTimeout/4, 10*time.Millisecond), maxBlock)
	scan := s.recover || now.Sub(s.scanned) >= scanEvery
	var due []claimable
	if s.takeRetryDue(now) || scan {
		retries, after, err := b.dueRetries(ctx, room)
		if err != nil {
			return nil, err
		}
		due = retries
		s.retryAfter(now, after)
	}
	if scan {
		abandoned, err := b.abandoned(ctx, s.held)
		if err != nil {
			return nil, err
		}
		own, err := b.ownPending(ctx, s.held)
		if err != nil {
			return nil, err
		}
		due = append(append(due, abandoned...), own...)
		due = due[:min(len(due), room)]
		s.scanned, s.recover = now, false
	}
	wait := min(maxBlock, scanEvery-time.Since(s.scanned), b.policy.LossCheck-time.Since(s.checked),
		s.untilRetryDue())
	if busy {
		wait = min(wait, b.policy.Backoff)
	}
	batch, err := b.claim(ctx, due)
	if err != nil {
		return nil, err
	}
	if len(batch) >= room {
		return batch, nil
	}
	block := max(wait, time.Millisecond) // BLOCK 0 would wait forever
	if len(batch) > 0 {
		block = -1 // do not wait: there is work in hand already
	}
	fresh, err := b.read(ctx, block, room-len(batch))
	if err != nil && len(batch) > 0 {
		return batch, nil // the claimed changes are ours now; the next pass meets the error again
	}
	if err != nil {
		return nil, err
	}
	return append(batch, fresh...), nil
}

// checkLoss tells, once per incident, of changes the stream's bound trimmed before the group
// was given them. It asks Redis only once every LossCheck: a read cannot see a gap, but a gap
// closes once the group reads past it, so the first check comes before the first read.
func (s *subscription) checkLoss(ctx context.Context) error {
	b := s.b
	if time.Since(s.checked) < b.policy.LossCheck {
		return nil
	}
	n, err := b.trimmedUndelivered(ctx)
	if err != nil {
		return err
	}
	if n > 0 && !s.lost {
		b.policy.Lost(ports.LossTrimmed, b.lossAttrs("changes_lost", n)...)
	}
	s.checked, s.lost = time.Now(), n > 0
	return nil
}

// lossAttrs returns the attributes of a loss's log line, followed by more.
func (b *Bus) lossAttrs(more ...any) []any {
	return append([]any{"stream", b.cfg.Stream, "group", b.cfg.Group, "consumer", b.cfg.Consumer}, more...)
}

// pause logs a failed pass and waits before the next one, longer after each failure in a row.
// A missing group (the stream was deleted, or Redis restarted empty) is created again, and the
// changes it had not applied are reported lost.
func (s *subscription) pause(ctx context.Context, err error) {
	if goredis.HasErrorPrefix(err, "NOGROUP") {
		if err = s.b.createGroup(ctx); err == nil {
			s.b.policy.Lost(ports.LossStreamGone, s.b.lossAttrs()...)
			return
		}
	}
	s.recover = true
	s.failures++
	wait := s.b.policy.Delay(s.failures)
	s.b.policy.Log.Warn("bus read failed; will retry", "stream", s.b.cfg.Stream, "group", s.b.cfg.Group,
		"consumer", s.b.cfg.Consumer, "retry_in", wait, "error", err)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// dueRetries returns at most room changes awaiting a retry whose backoff has passed, and how
// long until the next one is due: 0 when due ones were left out, -1 when none waits. It looks
// at the scanCount oldest; any beyond wait until those are retried or dead-lettered.
func (b *Bus) dueRetries(ctx context.Context, room int) ([]claimable, time.Duration, error) {
	pending, err := b.client.XPendingExt(ctx, &goredis.XPendingExtArgs{
		Stream: b.cfg.Stream, Group: b.cfg.Group, Start: "-", End: "+", Count: scanCount,
		Consumer: retryConsumer,
	}).Result()
	if err != nil {
		return nil, 0, fail("scan retries of "+b.cfg.Stream, err)
	}
	after := time.Duration(-1)
	var due []claimable
	for _, p := range pending {
		failed := int(p.RetryCount)
		backoff := b.policy.Delay(failed)
		switch {
		case p.Idle < backoff && (after < 0 || backoff-p.Idle < after):
			after = backoff - p.Idle
		case p.Idle < backoff:
		case len(due) < room:
			due = append(due, claimable{id: p.ID, minIdle: backoff, attempt: failed + 1})
		default:
			after = 0
		}
	}
	return due, after, nil
}

// abandoned returns the changes that a consumer has held for longer than VisibilityTimeout:
// its process died, or its handler is slower than the timeout. Those this consumer has in
// hand (held) are left to it.
func (b *Bus) abandoned(ctx context.Context, held func(id string) bool) ([]claimable, error) {
	pending, err := b.client.XPendingExt(ctx, &goredis.XPendingExtArgs{
		Stream: b.cfg.Stream, Group: b.cfg.Group, Idle: b.cfg.VisibilityTimeout, Start: "-", End: "+",
		Count: scanCount,
	}).Result()
	if err != nil {
		return nil, fail("scan abandoned changes of "+b.cfg.Stream, err)
	}
	var out []claimable
	for _, p := range pending {
		if len(out) == b.cfg.Batch {
			break
		}
		if p.Consumer == retryConsumer {
			continue // retries follow their own backoff, in dueRetries
		}
		if p.Consumer == b.cfg.Consumer && held(p.ID) {
			continue
		}
		out = append(out, claimable{id: p.ID, minIdle: b.cfg.VisibilityTimeout, attempt: int(p.RetryCount) + 1})
	}
	return out, nil
}

// ownPending returns the changes Redis has recorded as delivered to this consumer and not yet
// acknowledged, other than those in hand (held). Each is a change whose delivery never arrived
// (the answer was lost with the connection, perhaps hidden by the client's own retry of the
// read) or whose acknowledgement failed: it is taken back at once rather than after
// VisibilityTimeout. Each delivery counts, as for an abandoned change.
func (b *Bus) ownPending(ctx context.Context, held func(id string) bool) ([]claimable, error) {
	pending, err := b.client.XPendingExt(ctx, &goredis.XPendingExtArgs{
		Stream: b.cfg.Stream, Group: b.cfg.Group, Start: "-", End: "+", Count: scanCount,
		Consumer: b.cfg.Consumer,
	}).Result()
	if err != nil {
		return nil, fail("scan own pending changes of "+b.cfg.Stream, err)
	}
	out := make([]claimable, 0, len(pending))
	for _, p := range pending {
		if !held(p.ID) {
			out = append(out, claimable{id: p.ID, attempt: int(p.RetryCount) + 1})
		}
	}
	return out, nil
}

// claim takes the entries for this consumer. XCLAIM with a min-idle time takes an entry only if
// it has been idle that long, so when several consumers race for one exactly one wins: the
// claim resets the idle time. An entry lost to another consumer, or trimmed from the stream
// meanwhile (Redis then drops it from the pending list), is left out.
func (b *Bus) claim(ctx context.Context, entries []claimable) ([]entry, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	// Not cancelled with ctx: what Redis gave this consumer must reach it, to be handled or
	// handed back.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ioTimeout)
	defer cancel()
	cmds := make([]*goredis.XMessageSliceCmd, len(entries))
	_, err := b.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, e := range entries {
			cmds[i] = p.XClaim(ctx, &goredis.XClaimArgs{
				Stream: b.cfg.Stream, Group: b.cfg.Group, Consumer: b.cfg.Consumer,
				MinIdle: e.minIdle, Messages: []string{e.id},
			})
		}
		return nil
	})
	var out []entry
	for i, cmd := range cmds {
		msgs, cerr := cmd.Result()
		if cerr != nil {
			continue
		}
		for _, m := range msgs {
			out = append(out, entry{msg: m, attempt: entries[i].attempt})
		}
	}
	if err != nil && len(out) == 0 {
		return nil, fail("claim from "+b.cfg.Stream, err)
	}
	return out, nil
}

// read takes up to count new changes, waiting up to block for the first (not at all when block
// is negative).
func (b *Bus) read(ctx context.Context, block time.Duration, count int) ([]entry, error) {
	// The read is not cancelled with ctx: changes Redis handed over must reach this process,
	// or they would wait VisibilityTimeout. block is short, so shutdown is not held up.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), max(block, 0)+ioTimeout)
	defer cancel()
	streams, err := b.client.XReadGroup(rctx, &goredis.XReadGroupArgs{
		Group: b.cfg.Group, Consumer: b.cfg.Consumer, Streams: []string{b.cfg.Stream, ">"},
		Count: int64(count), Block: block,
	}).Result()
	switch {
	case errors.Is(err, goredis.Nil):
		return nil, nil
	case err != nil:
		return nil, fail("read "+b.cfg.Stream, err)
	}
	var out []entry
	for _, s := range streams {
		for _, m := range s.Messages {
			out = append(out, entry{msg: m, attempt: 1})
		}
	}
	return out, nil
}

// settling bounds the settlement of the change in time; done ends it, and the change is then no
// longer in hand.
func (m *message) settling(ctx context.Context) (_ context.Context, done func()) {
	ctx, cancel := context.WithTimeout(ctx, ioTimeout)
	return ctx, func() { cancel(); m.s.finished(m.msg.ID) }
}

// Ack acknowledges the change; should that fail, it is claimed again after VisibilityTimeout.
func (m *message) Ack(ctx context.Context) (time.Duration, error) {
	ctx, done := m.settling(ctx)
	defer done()
	b := m.s.b
	return b.cfg.VisibilityTimeout, b.client.XAck(ctx, b.cfg.Stream, b.cfg.Group, m.msg.ID).Err()
}

// Retry hands the change to the retry consumer, where dueRetries finds it due once its idle
// time reaches the policy's delay for its delivery count, which is wait; this consumer scans
// for it then. Should that fail, it stays with this consumer and is claimed as abandoned after
// VisibilityTimeout.
func (m *message) Retry(ctx context.Context, wait time.Duration) (time.Duration, error) {
	ctx, done := m.settling(ctx)
	defer done()
	b := m.s.b
	m.s.retryAfter(time.Now(), wait)
	// JUSTID keeps the delivery count (the failures so far) and the idle time restarts at 0.
	return b.cfg.VisibilityTimeout, b.client.XClaimJustID(ctx, &goredis.XClaimArgs{
		Stream: b.cfg.Stream, Group: b.cfg.Group, Consumer: retryConsumer, Messages: []string{m.msg.ID},
	}).Err()
}

// Release hands the change back to the retry consumer, due at once and with the delivery count
// it had before it was taken: a shutdown costs no attempt.
func (m *message) Release(ctx context.Context) {
	ctx, done := m.settling(ctx)
	defer done()
	b := m.s.b
	failed := m.attempt - 1
	err := b.client.Do(ctx, "XCLAIM", b.cfg.Stream, b.cfg.Group, retryConsumer, 0, m.msg.ID,
		"IDLE", b.policy.Delay(failed).Milliseconds(), "RETRYCOUNT", failed, "JUSTID").Err()
	if err != nil {
		b.policy.Log.Warn("could not hand back an unfinished change at shutdown; it is claimed after "+
			"the visibility timeout", "message_id", m.msg.ID, "retry_in", b.cfg.VisibilityTimeout, "error", err)
	}
}

// DeadLetter adds the change to the dead-letter stream and acknowledges it, in one MULTI: a
// crash cannot leave it in both places or in neither.
func (m *message) DeadLetter(ctx context.Context, d *ports.DeadLetter) (time.Duration, error) {
	ctx, done := m.settling(ctx)
	defer done()
	b := m.s.b
	values := []any{
		"payload", d.Payload, "reason", d.Reason, "attempts", d.Attempts,
		"failed_at", d.FailedAt.UTC().Format(time.RFC3339Nano), "message_id", m.msg.ID,
	}
	if d.Change != nil {
		values = append(values, "event_id", d.Change.Event.ID)
	}
	var add *goredis.StringCmd
	_, err := b.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		add = p.XAdd(ctx, &goredis.XAddArgs{Stream: b.cfg.DeadLetterStream, Values: values})
		p.XAck(ctx, b.cfg.Stream, b.cfg.Group, m.msg.ID)
		return nil
	})
	if err != nil {
		return b.cfg.VisibilityTimeout, err
	}
	d.ID = add.Val()
	return 0, nil
}

// field returns a field of a stream entry as bytes; nil when it is missing.
func field(m goredis.XMessage, name string) []byte {
	switch v := m.Values[name].(type) {
	case string:
		return []byte(v)
	case []byte:
		return v
	}
	return nil
}
