// Package redis is the event bus on Redis Streams: changes are XADDed to one stream and read
// by a consumer group, so several query servers share the work; a change is XACKed only after
// it was applied.
//
// Retries live in the broker. A change whose handler failed stays pending; it is claimed again
// (by any consumer of the group) once it has been idle for the backoff of its delivery count
// (Backoff·2^(n-1), capped at MaxBackoff). The delivery count is the attempt number. After
// MaxAttempts failed deliveries the change is copied to the dead-letter stream with the reason
// and acknowledged. The same rule recovers changes held by a consumer that died: they become
// claimable after the backoff of their delivery count. A handler slower than that backoff may
// therefore see its change delivered twice, which the projector tolerates by design.
package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"hexapost/adapters/wire"
	"hexapost/ports"
)

// Config configures a Bus. Only URL is required.
type Config struct {
	// URL is POSTS_REDIS_URL, e.g. redis://127.0.0.1:6379/0.
	URL string
	// Stream holds the changes (default "hexapost:changes"); DeadLetterStream the dead letters
	// (default Stream + ":dead").
	Stream           string
	DeadLetterStream string
	// Group is the consumer group of the query servers (POSTS_CONSUMER_GROUP, default
	// "hexapost-query"); Consumer names this process in it (default host-pid).
	Group    string
	Consumer string
	// MaxLen bounds the stream: older entries are trimmed (approximately) beyond it, default
	// 1 000 000. Trimming never drops a pending entry's place in the group, but a consumer group
	// that falls further behind than MaxLen loses changes: size it for the longest outage of the
	// query side you want to survive.
	MaxLen int64
	// MaxAttempts is how many deliveries a change gets before it is dead-lettered (default 3).
	MaxAttempts int
	// Backoff is the delay before the first redelivery, doubling each time (default 100ms),
	// capped at MaxBackoff (default 5s).
	Backoff    time.Duration
	MaxBackoff time.Duration
	// Timeout bounds each call to Redis (default 3s).
	Timeout time.Duration
	// Log receives one line per retry and per dead letter (default: discarded).
	Log *slog.Logger
}

// Bus is a Publisher, Subscriber and DeadLetters on Redis Streams.
type Bus struct {
	cfg    Config
	client *goredis.Client
}

var (
	_ ports.Publisher   = (*Bus)(nil)
	_ ports.Subscriber  = (*Bus)(nil)
	_ ports.DeadLetters = (*Bus)(nil)
	_ ports.Pinger      = (*Bus)(nil)
)

// Open connects to Redis, proves it answers and creates the consumer group if needed.
func Open(ctx context.Context, cfg Config) (*Bus, error) {
	if cfg.URL == "" {
		return nil, errors.New("redis: POSTS_REDIS_URL is empty")
	}
	opts, err := goredis.ParseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("redis: POSTS_REDIS_URL=%s: %w", redact(cfg.URL), err)
	}
	cfg = withDefaults(cfg)
	opts.DialTimeout = cfg.Timeout
	opts.ReadTimeout = cfg.Timeout
	opts.WriteTimeout = cfg.Timeout
	opts.MaxRetries = 1
	b := &Bus{cfg: cfg, client: goredis.NewClient(opts)}
	ctx, cancel := context.WithTimeout(ctx, 2*cfg.Timeout)
	defer cancel()
	if err := b.client.Ping(ctx).Err(); err != nil {
		_ = b.client.Close()
		return nil, fmt.Errorf("redis: POSTS_REDIS_URL=%s: no answer to PING (is it Redis?): %w", redact(cfg.URL), err)
	}
	err = b.client.XGroupCreateMkStream(ctx, cfg.Stream, cfg.Group, "0").Err()
	if err != nil && !strings.Contains(err.Error(), "BUSYGROUP") {
		_ = b.client.Close()
		return nil, fmt.Errorf("redis: create group %s on %s: %w", cfg.Group, cfg.Stream, err)
	}
	return b, nil
}

func withDefaults(cfg Config) Config {
	if cfg.Stream == "" {
		cfg.Stream = "hexapost:changes"
	}
	if cfg.DeadLetterStream == "" {
		cfg.DeadLetterStream = cfg.Stream + ":dead"
	}
	if cfg.Group == "" {
		cfg.Group = "hexapost-query"
	}
	if cfg.Consumer == "" {
		host, _ := os.Hostname()
		cfg.Consumer = fmt.Sprintf("%s-%d-%d", host, os.Getpid(), time.Now().UnixNano()%100000)
	}
	if cfg.MaxLen <= 0 {
		cfg.MaxLen = 1_000_000
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 3 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return cfg
}

// redact hides the password of a redis:// URL.
func redact(raw string) string {
	at := strings.LastIndex(raw, "@")
	scheme := strings.Index(raw, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return raw
	}
	userinfo := raw[scheme+3 : at]
	if user, _, ok := strings.Cut(userinfo, ":"); ok {
		return raw[:scheme+3] + user + ":xxxxx" + raw[at:]
	}
	return raw
}

// Close closes the connections.
func (b *Bus) Close() error { return b.client.Close() }

// Ping proves Redis answers.
func (b *Bus) Ping(ctx context.Context) error {
	if err := b.client.Ping(ctx).Err(); err != nil {
		return wrap("ping", err)
	}
	return nil
}

// Publish XADDs the changes in one pipeline.
func (b *Bus) Publish(ctx context.Context, changes []ports.Change) error {
	payloads := make([][]byte, 0, len(changes))
	for _, c := range changes {
		p, err := wire.Encode(c)
		if err != nil {
			return err
		}
		payloads = append(payloads, p)
	}
	return b.add(ctx, payloads...)
}

// PublishRaw puts a payload on the stream as it is; tests use it to send poison messages.
func (b *Bus) PublishRaw(ctx context.Context, payload []byte) error {
	return b.add(ctx, payload)
}

func (b *Bus) add(ctx context.Context, payloads ...[]byte) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	_, err := b.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for _, payload := range payloads {
			p.XAdd(ctx, &goredis.XAddArgs{
				Stream: b.cfg.Stream, MaxLen: b.cfg.MaxLen, Approx: true,
				Values: map[string]any{"payload": payload},
			})
		}
		return nil
	})
	if err != nil {
		return wrap("publish", err)
	}
	return nil
}

// delivery is one message in hand with its attempt number.
type delivery struct {
	msg     goredis.XMessage
	attempt int
}

// Subscribe reads the group until ctx ends; see the package comment for the retry rules.
func (b *Bus) Subscribe(ctx context.Context, h ports.Handler) error {
	block := min(max(b.cfg.Backoff/2, 10*time.Millisecond), time.Second)
	failures := 0
	for ctx.Err() == nil {
		d, err := b.next(ctx, block)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			failures++
			wait := min(b.cfg.Backoff<<min(failures, 6), b.cfg.MaxBackoff)
			b.cfg.Log.Warn("redis: reading the stream failed; retrying", "error", err, "retry_in", wait)
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
			continue
		}
		failures = 0
		if d != nil {
			b.handle(ctx, h, *d)
		}
	}
	return nil
}

// next returns a change that is due for a retry, else a new one, else nil after block.
func (b *Bus) next(ctx context.Context, block time.Duration) (*delivery, error) {
	if d, err := b.claimDue(ctx); d != nil || err != nil {
		return d, err
	}
	rctx, cancel := context.WithTimeout(ctx, block+b.cfg.Timeout)
	defer cancel()
	streams, err := b.client.XReadGroup(rctx, &goredis.XReadGroupArgs{
		Group: b.cfg.Group, Consumer: b.cfg.Consumer, Streams: []string{b.cfg.Stream, ">"},
		Count: 1, Block: block,
	}).Result()
	switch {
	case errors.Is(err, goredis.Nil):
		return nil, nil
	case err != nil:
		return nil, wrap("read group", err)
	}
	for _, s := range streams {
		for _, m := range s.Messages {
			return &delivery{msg: m, attempt: 1}, nil
		}
	}
	return nil, nil
}

// claimDue claims the oldest pending change whose idle time has passed the backoff of its
// delivery count.
func (b *Bus) claimDue(ctx context.Context) (*delivery, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	pending, err := b.client.XPendingExt(ctx, &goredis.XPendingExtArgs{
		Stream: b.cfg.Stream, Group: b.cfg.Group, Start: "-", End: "+", Count: 50,
	}).Result()
	if err != nil {
		return nil, wrap("pending", err)
	}
	for _, p := range pending {
		if p.Idle < b.backoff(int(p.RetryCount)) {
			continue
		}
		msgs, err := b.client.XClaim(ctx, &goredis.XClaimArgs{
			Stream: b.cfg.Stream, Group: b.cfg.Group, Consumer: b.cfg.Consumer,
			MinIdle: b.backoff(int(p.RetryCount)), Messages: []string{p.ID},
		}).Result()
		if err != nil {
			return nil, wrap("claim", err)
		}
		if len(msgs) == 1 {
			return &delivery{msg: msgs[0], attempt: int(p.RetryCount) + 1}, nil
		}
		if len(msgs) == 0 {
			// Trimmed from the stream, or taken by another consumer meanwhile; in the first
			// case it can never be delivered, so it leaves the pending list.
			_ = b.client.XAck(ctx, b.cfg.Stream, b.cfg.Group, p.ID).Err()
		}
	}
	return nil, nil
}

// backoff is how long a change delivered n times waits before its next delivery.
func (b *Bus) backoff(n int) time.Duration {
	return min(b.cfg.Backoff<<min(max(n-1, 0), 20), b.cfg.MaxBackoff)
}

func (b *Bus) handle(ctx context.Context, h ports.Handler, d delivery) {
	payload := []byte(fmt.Sprint(d.msg.Values["payload"]))
	c, err := wire.Decode(payload)
	if err != nil {
		b.deadLetter(ctx, d, payload, nil, err)
		return
	}
	log := b.cfg.Log.With("post_id", c.Event.PostID, "version", c.Event.Version, "event_id", c.Event.ID,
		"attempt", d.attempt)
	if err := h(ctx, c); err != nil {
		if ctx.Err() != nil {
			return // shutting down: leave it pending for another consumer
		}
		if d.attempt >= b.cfg.MaxAttempts {
			b.deadLetter(ctx, d, payload, &c, err)
			return
		}
		log.Warn("projection failed; will retry", "error", err.Error(), "retry_in", b.backoff(d.attempt))
		return
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.cfg.Timeout)
	defer cancel()
	if err := b.client.XAck(actx, b.cfg.Stream, b.cfg.Group, d.msg.ID).Err(); err != nil {
		log.Warn("redis: ack failed; the change will be delivered again", "error", err)
	}
}

// deadLetter copies the message to the dead-letter stream, then acknowledges it: a crash in
// between gives a duplicate dead letter, never a lost one.
func (b *Bus) deadLetter(ctx context.Context, d delivery, payload []byte, c *ports.Change, cause error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.cfg.Timeout)
	defer cancel()
	log := b.cfg.Log.With("message_id", d.msg.ID, "attempt", d.attempt, "reason", cause.Error())
	if c != nil {
		log = log.With("post_id", c.Event.PostID, "version", c.Event.Version, "event_id", c.Event.ID)
	}
	err := b.client.XAdd(ctx, &goredis.XAddArgs{Stream: b.cfg.DeadLetterStream, Values: map[string]any{
		"payload": payload, "reason": cause.Error(), "attempts": d.attempt,
		"failed_at": time.Now().UTC().Format(time.RFC3339Nano), "message_id": d.msg.ID,
	}}).Err()
	if err != nil {
		log.Error("redis: dead-lettering failed; the change stays pending", "error", err)
		return
	}
	if err := b.client.XAck(ctx, b.cfg.Stream, b.cfg.Group, d.msg.ID).Err(); err != nil {
		log.Warn("redis: ack of a dead letter failed", "error", err)
	}
	log.Error("message dead-lettered")
}

// List returns the dead letters, oldest first.
func (b *Bus) List(ctx context.Context) ([]ports.DeadLetter, error) {
	msgs, err := b.client.XRange(ctx, b.cfg.DeadLetterStream, "-", "+").Result()
	if err != nil {
		return nil, wrap("list dead letters", err)
	}
	out := make([]ports.DeadLetter, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, fromDeadMessage(m))
	}
	return out, nil
}

func fromDeadMessage(m goredis.XMessage) ports.DeadLetter {
	payload := []byte(fmt.Sprint(m.Values["payload"]))
	d := ports.DeadLetter{ID: m.ID, Payload: payload, Reason: fmt.Sprint(m.Values["reason"])}
	d.Attempts, _ = strconv.Atoi(fmt.Sprint(m.Values["attempts"]))
	d.FailedAt, _ = time.Parse(time.RFC3339Nano, fmt.Sprint(m.Values["failed_at"]))
	if c, err := wire.Decode(payload); err == nil {
		d.Change = &c
	}
	return d
}

func (b *Bus) deadMessage(ctx context.Context, id string) (goredis.XMessage, error) {
	if !validID(id) {
		return goredis.XMessage{}, fmt.Errorf("dead letter %q: %w", id, ports.ErrNotFound)
	}
	msgs, err := b.client.XRangeN(ctx, b.cfg.DeadLetterStream, id, id, 1).Result()
	if err != nil {
		return goredis.XMessage{}, wrap("dead letter "+id, err)
	}
	if len(msgs) == 0 {
		return goredis.XMessage{}, fmt.Errorf("dead letter %q: %w", id, ports.ErrNotFound)
	}
	return msgs[0], nil
}

// Redrive puts a dead letter back on the stream with a fresh delivery count.
func (b *Bus) Redrive(ctx context.Context, id string) error {
	m, err := b.deadMessage(ctx, id)
	if err != nil {
		return err
	}
	if err := b.add(ctx, []byte(fmt.Sprint(m.Values["payload"]))); err != nil {
		return err
	}
	if err := b.client.XDel(ctx, b.cfg.DeadLetterStream, id).Err(); err != nil {
		return wrap("redrive "+id, err)
	}
	return nil
}

// Discard removes a dead letter for good.
func (b *Bus) Discard(ctx context.Context, id string) error {
	if !validID(id) {
		return fmt.Errorf("dead letter %q: %w", id, ports.ErrNotFound)
	}
	n, err := b.client.XDel(ctx, b.cfg.DeadLetterStream, id).Result()
	if err != nil {
		return wrap("discard "+id, err)
	}
	if n == 0 {
		return fmt.Errorf("dead letter %q: %w", id, ports.ErrNotFound)
	}
	return nil
}

// validID reports whether id has the form of a stream entry id, ms-seq.
func validID(id string) bool {
	ms, seq, ok := strings.Cut(id, "-")
	if !ok {
		return false
	}
	_, err1 := strconv.ParseUint(ms, 10, 64)
	_, err2 := strconv.ParseUint(seq, 10, 64)
	return err1 == nil && err2 == nil && id != "0-0"
}

// wrap marks connection failures as ports.ErrUnavailable.
func wrap(op string, err error) error {
	var netErr net.Error
	if errors.As(err, &netErr) || errors.Is(err, context.DeadlineExceeded) ||
		strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "closed") ||
		strings.Contains(err.Error(), "LOADING") {
		return fmt.Errorf("redis: %s: %w: %w", op, ports.ErrUnavailable, err)
	}
	return fmt.Errorf("redis: %s: %w", op, err)
}

// Purge deletes the stream and its dead letters, group included; tests use it to clean up.
func (b *Bus) Purge(ctx context.Context) error {
	if err := b.client.Del(ctx, b.cfg.Stream, b.cfg.DeadLetterStream).Err(); err != nil {
		return wrap("purge", err)
	}
	return nil
}
