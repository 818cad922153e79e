package redis

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"hexapost/adapters/wire"
	"hexapost/ports"
)

const (
	// maxBlock bounds one XREADGROUP BLOCK, and so how long Subscribe takes to notice that its
	// context ended or that a change of another consumer became due.
	maxBlock = 500 * time.Millisecond
	// scanCount bounds the pending entries looked at in one scan.
	scanCount = 100
)

// delivery is a change in hand: the stream entry and its attempt number (its delivery count),
// with the change decoded from it, or why it could not be.
type delivery struct {
	msg         goredis.XMessage
	attempt     int
	change      ports.Change
	undecodable error
	// later is the change of the same post handed to the handler after this one, if one is
	// waiting behind it (see ports.WithFollowing).
	later *ports.Change
}

// claimable is a pending entry that may be claimed once it has been idle for minIdle.
type claimable struct {
	id      string
	minIdle time.Duration
	attempt int
}

// subscription is the state of one Subscribe call.
type subscription struct {
	b *Bus
	// scanned is when the group was last scanned for changes held by dead consumers.
	scanned time.Time
	// failures counts the reads that failed in a row.
	failures int
	// recover asks the next pass to scan at once, after a failed one: a read's answer may have
	// been lost on the way (Redis recorded the delivery, then the connection or the server
	// went), or an acknowledgement may have failed.
	recover bool

	mu sync.Mutex
	// inHand are the ids of the changes this consumer took and has not finished: they are
	// pending in the group, and no scan may take them again.
	inHand map[string]struct{}
}

// Subscribe reads the group and calls h for each change until ctx ends, then returns nil once
// the changes in hand are finished. Each pass claims the retries that are due and the changes
// abandoned by dead consumers, then reads new changes, blocking at most until the next retry
// is due and never more than half a second, which bounds how long it takes to notice that ctx
// ended. The changes taken go to lanes that apply up to wire.PostsInParallel posts' changes at
// once, each post's in order, while the next pass reads on: a slow change holds up only the
// changes of its own post. At most Batch changes are in hand at a time. A failed pass (Redis
// down) is logged and retried with backoff; Subscribe returns only when ctx ends. The package
// comment gives the rules.
func (b *Bus) Subscribe(ctx context.Context, h ports.Handler) error {
	s := &subscription{b: b, recover: true, inHand: map[string]struct{}{}}
	handed := func(d delivery) (string, bool) {
		return d.change.Event.PostID, d.undecodable == nil && d.attempt <= b.cfg.MaxAttempts
	}
	lanes := wire.NewLanes(wire.PostsInParallel, handed, func(d delivery, later *delivery) {
		defer s.finished(d)
		if ctx.Err() != nil {
			b.release(ctx, []delivery{d}) // not begun: back to the group at once
			return
		}
		if later != nil {
			d.later = &later.change
		}
		b.handle(ctx, h, d)
	})
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
		s.mu.Lock()
		for i := range batch {
			batch[i].change, batch[i].undecodable = wire.Decode(field(batch[i].msg, "payload"))
			s.inHand[batch[i].msg.ID] = struct{}{}
		}
		s.mu.Unlock()
		lanes.Add(batch...)
	}
	return nil
}

// finished forgets a change in hand once its outcome is recorded in the group.
func (s *subscription) finished(d delivery) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.inHand, d.msg.ID)
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
// Backoff later, so the read then blocks no longer than that.
func (s *subscription) next(ctx context.Context, room int, busy bool) ([]delivery, error) {
	b := s.b
	due, wait, err := b.dueRetries(ctx, room)
	if err != nil {
		return nil, err
	}
	if busy {
		wait = min(wait, b.cfg.Backoff)
	}
	scanEvery := min(max(b.cfg.VisibilityTimeout/4, 10*time.Millisecond), maxBlock)
	if since := time.Since(s.scanned); s.recover || since >= scanEvery {
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
		s.scanned, s.recover = time.Now(), false
		wait = min(wait, scanEvery)
	} else {
		wait = min(wait, scanEvery-since)
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

// pause logs a failed pass and waits before the next one, longer after each failure in a row.
// A missing group (the stream was deleted, or Redis restarted empty) is created again.
func (s *subscription) pause(ctx context.Context, err error) {
	if goredis.HasErrorPrefix(err, "NOGROUP") {
		if err = s.b.createGroup(ctx); err == nil {
			return
		}
	}
	s.recover = true
	s.failures++
	wait := s.b.backoff(s.failures)
	s.b.cfg.Log.Warn("bus read failed; will retry", "stream", s.b.cfg.Stream, "group", s.b.cfg.Group,
		"consumer", s.b.cfg.Consumer, "retry_in", wait, "error", err)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// dueRetries returns at most room changes awaiting a retry whose backoff has passed, and how
// long until the next one that is not yet due (maxBlock if none). It looks at the scanCount
// oldest; any beyond wait until those are retried or dead-lettered.
func (b *Bus) dueRetries(ctx context.Context, room int) ([]claimable, time.Duration, error) {
	pending, err := b.client.XPendingExt(ctx, &goredis.XPendingExtArgs{
		Stream: b.cfg.Stream, Group: b.cfg.Group, Start: "-", End: "+", Count: scanCount,
		Consumer: retryConsumer,
	}).Result()
	if err != nil {
		return nil, 0, fail("scan retries of "+b.cfg.Stream, err)
	}
	wait := maxBlock
	var due []claimable
	for _, p := range pending {
		failed := int(p.RetryCount)
		backoff := b.backoff(failed)
		if p.Idle < backoff {
			wait = min(wait, backoff-p.Idle)
			continue
		}
		if len(due) < room {
			due = append(due, claimable{id: p.ID, minIdle: backoff, attempt: failed + 1})
		}
	}
	return due, wait, nil
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
func (b *Bus) claim(ctx context.Context, entries []claimable) ([]delivery, error) {
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
	var out []delivery
	for i, cmd := range cmds {
		msgs, cerr := cmd.Result()
		if cerr != nil {
			continue
		}
		for _, m := range msgs {
			out = append(out, delivery{msg: m, attempt: entries[i].attempt})
		}
	}
	if err != nil && len(out) == 0 {
		return nil, fail("claim from "+b.cfg.Stream, err)
	}
	return out, nil
}

// read takes up to count new changes, waiting up to block for the first (not at all when block
// is negative).
func (b *Bus) read(ctx context.Context, block time.Duration, count int) ([]delivery, error) {
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
	var out []delivery
	for _, s := range streams {
		for _, m := range s.Messages {
			out = append(out, delivery{msg: m, attempt: 1})
		}
	}
	return out, nil
}

// backoff is how long a change that failed n times waits before its next delivery:
// Backoff·2^(n-1), at most MaxBackoff; 0 for n = 0.
func (b *Bus) backoff(n int) time.Duration {
	if n <= 0 {
		return 0
	}
	d := b.cfg.Backoff
	for i := 1; i < n && d < b.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, b.cfg.MaxBackoff)
}

// handle decodes the change in hand, calls h and records the outcome in the group. The
// bookkeeping after h is not cancelled with ctx: the change in hand is finished.
func (b *Bus) handle(ctx context.Context, h ports.Handler, d delivery) {
	payload, c := field(d.msg, "payload"), d.change
	if d.undecodable != nil {
		b.deadLetter(ctx, d, payload, nil, d.attempt, ports.CauseUndecodable, d.undecodable)
		return
	}
	if d.attempt > b.cfg.MaxAttempts {
		// Every delivery so far ended with its consumer gone, without an outcome.
		err := fmt.Errorf("no outcome after %d deliveries: each consumer that took it stopped before acknowledging",
			d.attempt-1)
		b.deadLetter(ctx, d, payload, &c, d.attempt-1, ports.CauseAbandoned, err)
		return
	}
	err := h(wire.Followed(ctx, d.later), c)
	switch {
	case err == nil:
		b.ack(ctx, d, c)
	case ctx.Err() != nil:
		b.release(ctx, []delivery{d})
	case d.attempt >= b.cfg.MaxAttempts:
		b.deadLetter(ctx, d, payload, &c, d.attempt, ports.CauseAttemptsExhausted, err)
	default:
		b.retry(ctx, d, c, err)
	}
}

func (b *Bus) ack(ctx context.Context, d delivery, c ports.Change) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ioTimeout)
	defer cancel()
	if err := b.client.XAck(ctx, b.cfg.Stream, b.cfg.Group, d.msg.ID).Err(); err != nil {
		b.cfg.Log.Warn("acknowledgement failed; the change will be applied again",
			append(changeAttrs(c), "message_id", d.msg.ID, "attempt", d.attempt,
				"retry_in", b.cfg.VisibilityTimeout, "error", err)...)
	}
}

// retry hands a failed change to the retry consumer, where it waits out its backoff.
func (b *Bus) retry(ctx context.Context, d delivery, c ports.Change, cause error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ioTimeout)
	defer cancel()
	wait := b.backoff(d.attempt)
	// JUSTID keeps the delivery count (the failures so far) and the idle time restarts at 0.
	err := b.client.XClaimJustID(ctx, &goredis.XClaimArgs{
		Stream: b.cfg.Stream, Group: b.cfg.Group, Consumer: retryConsumer, Messages: []string{d.msg.ID},
	}).Err()
	b.cfg.Observer.Retrying()
	attrs := append(changeAttrs(c), "message_id", d.msg.ID, "attempt", d.attempt, "error", cause)
	if err != nil {
		// It stays with this consumer and is claimed as abandoned after VisibilityTimeout.
		wait = b.cfg.VisibilityTimeout
		attrs = append(attrs, "schedule_error", err)
	}
	b.cfg.Log.Warn("projection failed; will retry", append(attrs, "retry_in", wait)...)
}

// release hands changes taken but not finished back to the retry consumer, due at once and
// with the delivery count they had before they were taken: a shutdown costs no attempt.
func (b *Bus) release(ctx context.Context, ds []delivery) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ioTimeout)
	defer cancel()
	_, err := b.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for _, d := range ds {
			failed := d.attempt - 1
			p.Do(ctx, "XCLAIM", b.cfg.Stream, b.cfg.Group, retryConsumer, 0, d.msg.ID,
				"IDLE", b.backoff(failed).Milliseconds(), "RETRYCOUNT", failed, "JUSTID")
		}
		return nil
	})
	if err != nil {
		ids := make([]string, len(ds))
		for i, d := range ds {
			ids[i] = d.msg.ID
		}
		b.cfg.Log.Warn("could not hand back unfinished changes at shutdown; they are claimed after the visibility timeout",
			"message_ids", ids, "retry_in", b.cfg.VisibilityTimeout, "error", err)
	}
}

// deadLetter adds the change to the dead-letter stream and acknowledges it, in one MULTI: a
// crash cannot leave it in both places or in neither. c is nil when it could not be decoded.
func (b *Bus) deadLetter(ctx context.Context, d delivery, payload []byte, c *ports.Change, attempts int,
	why ports.DeadLetterCause, cause error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ioTimeout)
	defer cancel()
	values := []any{
		"payload", payload, "reason", cause.Error(), "attempts", attempts,
		"failed_at", time.Now().UTC().Format(time.RFC3339Nano), "message_id", d.msg.ID,
	}
	attrs := []any{"message_id", d.msg.ID, "attempt", attempts, "reason", cause.Error(), "error", cause}
	if c != nil {
		values = append(values, "event_id", c.Event.ID)
		attrs = append(changeAttrs(*c), attrs...)
	} else {
		attrs = append(attrs, "payload_bytes", len(payload))
	}
	var add *goredis.StringCmd
	_, err := b.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		add = p.XAdd(ctx, &goredis.XAddArgs{Stream: b.cfg.DeadLetterStream, Values: values})
		p.XAck(ctx, b.cfg.Stream, b.cfg.Group, d.msg.ID)
		return nil
	})
	if err != nil {
		b.cfg.Log.Error("dead-lettering failed; the change is claimed again after the visibility timeout",
			append(attrs, "dead_letter_error", err)...)
		return
	}
	b.cfg.Observer.DeadLettered(why)
	b.cfg.Log.Error("message dead-lettered", append([]any{"dead_letter_id", add.Val()}, attrs...)...)
}

func changeAttrs(c ports.Change) []any {
	return []any{"post_id", c.Event.PostID, "version", c.Event.Version, "event_id", c.Event.ID}
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
