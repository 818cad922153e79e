// Package redis is the event bus on Redis Streams (Redis 7 or later): changes are XADDed to one
// stream and read by one consumer group, so the query servers share the work; a change is
// XACKed only after its handler applied it.
//
// Retries, backoff and crash recovery live in the broker, in the group's pending entries list
// (PEL), where each entry has an owner, an idle time and a delivery count:
//
//   - Delivery. XREADGROUP hands a new change to one consumer (delivery count 1). XCLAIM of a
//     pending change to a consumer adds one to its count, so the count is the attempt number.
//   - Failure. When the handler fails, the change is not acknowledged but handed (XCLAIM
//     JUSTID, which leaves the count alone and resets the idle time) to the reserved consumer
//     "~awaiting-retry". Its idle time is then the time since the failure.
//   - Backoff. A change of ~awaiting-retry that failed n times is due once it has been idle for
//     the delay the bus's delivery.Policy gives n failures. A consumer scans ~awaiting-retry
//     (XPENDING) when a retry it scheduled or saw is due, and on the schedule of its scans for
//     abandoned changes, which finds those of other consumers; it claims the due ones (XCLAIM
//     with that min-idle, so only one consumer wins), and sleeps in XREADGROUP BLOCK no longer
//     than until the next one it knows of is due.
//   - Dead letters. When attempt MaxAttempts fails, or a change cannot be decoded at all, it
//     is XADDed to the dead-letter stream with its payload, reason, attempts, time and
//     original id, and XACKed, in one MULTI. It stays in the stream until trimmed (other
//     groups may read the same stream).
//   - Crashes. A change owned by a real consumer for longer than VisibilityTimeout was taken
//     by a process that died (or by a handler slower than the timeout); any consumer claims it
//     (XPENDING IDLE, XCLAIM). The delivery that never finished counts as an attempt, so a
//     change delivered MaxAttempts times without an outcome, one that kills every process
//     that takes it, is dead-lettered when next claimed instead of being retried forever.
//   - Shutdown. When Subscribe's context ends, the changes being applied are finished. If a
//     handler failed because of the shutdown its change is handed to ~awaiting-retry, and so
//     are the changes taken and not yet begun: due at once and with the count they had before
//     they were taken, so another consumer takes them within its next pass and the shutdown
//     costs no attempt.
//   - Losses. A change the stream's bound trimmed before the group was given it is gone, and
//     so is every change of a stream or group that vanished (deleted, flushed, Redis restarted
//     without persistence). A subscriber compares the group's last delivered entry with the
//     stream's first (XINFO STREAM and GROUPS in one MULTI) when it starts and every LossCheck;
//     it meets a vanished group as NOGROUP and creates it again. It tells of each incident
//     once, through the delivery.Policy. The event store still has the changes.
//   - Redrive. A Lua script adds the dead letter's payload to the stream as a new entry (so
//     its count starts again) and deletes the dead letter, atomically.
//
// The contract suite in test/contract holds the bus to the same promises as the others.
package redis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"hexapost/adapters/wire"
	"hexapost/ports"
	"hexapost/ports/delivery"
)

// Timeouts of the connection: short, so that a wrong address (nothing listening, or a server
// that does not speak Redis) fails within seconds instead of hanging. Blocking reads get their
// block time on top of ioTimeout.
const (
	dialTimeout = 2 * time.Second
	ioTimeout   = 3 * time.Second
	openTimeout = 4 * time.Second
)

// Bus is a Publisher, Subscriber and DeadLetters on Redis Streams. It is safe for concurrent
// use; each Bus is one consumer of the group.
type Bus struct {
	cfg     Config
	policy  delivery.Policy
	client  *goredis.Client
	redrive *goredis.Script
}

var (
	_ ports.Publisher   = (*Bus)(nil)
	_ ports.Subscriber  = (*Bus)(nil)
	_ ports.DeadLetters = (*Bus)(nil)
	_ ports.Pinger      = (*Bus)(nil)
)

// Open validates cfg, connects, proves with a PING that Redis answers and creates the stream
// and the consumer group if they are missing. It warns when Redis keeps nothing on disk or the
// group's backlog is close to the stream's bound. It fails within a few seconds when nothing
// listens at the URL or what listens is not Redis; errors name the URL and never show its
// password.
func Open(ctx context.Context, cfg Config) (*Bus, error) {
	cfg, policy, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	safe := redact(cfg.URL)
	opts, err := goredis.ParseURL(cfg.URL)
	if err != nil {
		// The parser's message may quote the whole URL, password included.
		return nil, fmt.Errorf("redis: %s: %s", safe, strings.ReplaceAll(err.Error(), cfg.URL, safe))
	}
	opts.DialTimeout = dialTimeout
	opts.ReadTimeout = ioTimeout
	opts.WriteTimeout = ioTimeout
	opts.ContextTimeoutEnabled = true
	opts.MaxRetries = 1
	opts.DialerRetries = 2 // the callers retry on their own schedule; Ping must answer quickly
	opts.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	b := &Bus{cfg: cfg, policy: policy, client: goredis.NewClient(opts), redrive: goredis.NewScript(redriveScript)}

	ctx, cancel := context.WithTimeout(ctx, openTimeout)
	defer cancel()
	if err := b.client.Ping(ctx).Err(); err != nil {
		_ = b.client.Close()
		return nil, fail(safe+": no answer to PING (is Redis listening there?)", err)
	}
	if err := b.createGroup(ctx); err != nil {
		_ = b.client.Close()
		return nil, err
	}
	b.warnIfFragile(ctx)
	return b, nil
}

// createGroup creates the stream and the group, reading from the start of the stream, so that
// changes published before the first query server started are delivered too.
func (b *Bus) createGroup(ctx context.Context) error {
	err := b.client.XGroupCreateMkStream(ctx, b.cfg.Stream, b.cfg.Group, "0").Err()
	if err != nil && !goredis.HasErrorPrefix(err, "BUSYGROUP") {
		return fail(fmt.Sprintf("create group %s on %s", b.cfg.Group, b.cfg.Stream), err)
	}
	return nil
}

// Close removes this consumer from the group when it holds no pending change (so restarts do
// not pile up consumer names; one that holds changes stays, for them to be claimed) and closes
// the connections. Call it after Subscribe returned. Failing to remove the consumer is only
// logged: it is housekeeping, and Redis may be down.
func (b *Bus) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	consumers, err := b.client.XInfoConsumers(ctx, b.cfg.Stream, b.cfg.Group).Result()
	if err == nil {
		for _, c := range consumers {
			// Only this consumer ever gives changes to itself, so none can arrive after the check.
			if c.Name == b.cfg.Consumer && c.Pending == 0 {
				err = b.client.XGroupDelConsumer(ctx, b.cfg.Stream, b.cfg.Group, c.Name).Err()
			}
		}
	}
	if err != nil && !goredis.HasErrorPrefix(err, "NOGROUP") && !goredis.HasErrorPrefix(err, "no such key") {
		b.policy.Log.Warn("could not remove the consumer from the group", "stream", b.cfg.Stream,
			"group", b.cfg.Group, "consumer", b.cfg.Consumer, "error", err)
	}
	if err := b.client.Close(); err != nil {
		return fail("close", err)
	}
	return nil
}

// Ping proves Redis answers with a PING round trip; ports.ErrUnavailable when it does not.
func (b *Bus) Ping(ctx context.Context) error {
	if err := b.client.Ping(ctx).Err(); err != nil {
		return fail("ping", err)
	}
	return nil
}

// Publish encodes the changes and XADDs them, in order, in one pipeline, each with its event id
// and its W3C trace context (traceparent, tracestate; when it has one) beside the payload for
// tracing. It returns nil only when Redis accepted every one; when one cannot be encoded
// nothing is sent.
func (b *Bus) Publish(ctx context.Context, changes []ports.Change) error {
	if len(changes) == 0 {
		return nil
	}
	entries := make([][]any, 0, len(changes))
	for _, c := range changes {
		p, err := wire.Encode(c)
		if err != nil {
			return fmt.Errorf("redis: publish: %w", err)
		}
		values := []any{"payload", p, "event_id", c.Event.ID}
		if md := c.Metadata; md.TraceParent != "" {
			values = append(values, "traceparent", md.TraceParent)
			if md.TraceState != "" {
				values = append(values, "tracestate", md.TraceState)
			}
		}
		entries = append(entries, values)
	}
	cmds, err := b.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for _, values := range entries {
			p.XAdd(ctx, b.addArgs(values))
		}
		return nil
	})
	for i, cmd := range cmds {
		if cmd.Err() != nil {
			return fail("publish "+changes[i].Event.ID, cmd.Err())
		}
	}
	if err != nil {
		return fail("publish", err)
	}
	return nil
}

// PublishRaw XADDs payload as it is, bypassing the wire format. It exists for tests and fault
// drills: a payload that is not a valid message must end in the dead letters and block nothing.
func (b *Bus) PublishRaw(ctx context.Context, payload []byte) error {
	if err := b.client.XAdd(ctx, b.addArgs([]any{"payload", payload})).Err(); err != nil {
		return fail("publish raw", err)
	}
	return nil
}

func (b *Bus) addArgs(values []any) *goredis.XAddArgs {
	return &goredis.XAddArgs{Stream: b.cfg.Stream, MaxLen: b.cfg.MaxLen, Approx: true, Values: values}
}

// Purge deletes the stream and the dead-letter stream, and with them the group. Tests use it
// to clean up after themselves.
func (b *Bus) Purge(ctx context.Context) error {
	if err := b.client.Del(ctx, b.cfg.Stream, b.cfg.DeadLetterStream).Err(); err != nil {
		return fail("purge "+b.cfg.Stream, err)
	}
	return nil
}

// fail wraps an error of go-redis for the operation. A connection that cannot be made, breaks
// or times out, a closed client and a server that is loading or has no master are
// ports.ErrUnavailable: the caller may retry later. Errors Redis answered with are not.
func fail(op string, err error) error {
	if unavailable(err) {
		return fmt.Errorf("redis: %s: %w: %w", op, ports.ErrUnavailable, err)
	}
	return fmt.Errorf("redis: %s: %w", op, err)
}

func unavailable(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	var reply goredis.Error
	if !errors.As(err, &reply) {
		return true // no reply: network, timeout, EOF, closed client or pool, garbled protocol
	}
	return goredis.IsLoadingError(err) || goredis.IsMasterDownError(err) || goredis.IsTryAgainError(err) ||
		goredis.IsClusterDownError(err) || goredis.IsMaxClientsError(err)
}
