// Package nats is the event bus on NATS JetStream: changes are published to a file-backed
// stream, bounded at Config.MaxMsgs, with the event id as Nats-Msg-Id, so the broker drops a
// relay's duplicate within its duplicate window, and read through one durable pull consumer
// that all query servers share.
//
// Retries: a change whose handler failed is negatively acknowledged with the backoff of its
// delivery count (Backoff·2^(n-1), capped at MaxBackoff); the delivery count from the message
// metadata is the attempt number. After MaxAttempts deliveries the change is published to the
// dead-letter stream with its reason, then acknowledged. A change held by a query server that
// died is redelivered after AckWait. The consumer itself allows unlimited deliveries: the broker
// never drops a change on its own; only this code moves one to the dead letters, with a record.
package nats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	gonats "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hexapost/adapters/wire"
	"hexapost/ports"
)

// Config configures a Bus. Only URL is required.
type Config struct {
	// URL is POSTS_NATS_URL, e.g. nats://127.0.0.1:4222.
	URL string
	// Stream and Subject carry the changes (defaults HEXAPOST_CHANGES, hexapost.changes);
	// DeadStream and DeadSubject the dead letters (defaults Stream+"_DEAD", Subject+".dead").
	Stream, Subject         string
	DeadStream, DeadSubject string
	// Durable is the consumer the query servers share (POSTS_CONSUMER_GROUP, default
	// hexapost-query).
	Durable string
	// MaxMsgs bounds the changes stream (POSTS_NATS_MAX_MSGS, default DefaultMaxMsgs): once it
	// holds more, JetStream drops the oldest. A dropped change is gone whether or not it was
	// acknowledged, so MaxMsgs must exceed the number of changes published during the longest
	// query-side outage to be survived. The dead-letter stream is never trimmed.
	MaxMsgs int64
	// MaxAttempts is how many deliveries a change gets before it is dead-lettered (default 3).
	MaxAttempts int
	// Backoff is the delay before the first redelivery, doubling (default 100ms), capped at
	// MaxBackoff (default 5s).
	Backoff, MaxBackoff time.Duration
	// AckWait is how long a delivered change may go unacknowledged before it is delivered to
	// another query server (default 30s).
	AckWait time.Duration
	// Timeout bounds each call to the server (default 3s).
	Timeout time.Duration
	// Log receives one line per retry and per dead letter (default: discarded).
	Log *slog.Logger
	// Observer hears every retry and dead letter of this process's subscriptions (default:
	// nobody).
	Observer ports.DeliveryObserver
}

// Bus is a Publisher, Subscriber and DeadLetters on JetStream.
type Bus struct {
	cfg  Config
	nc   *gonats.Conn
	js   jetstream.JetStream
	cons jetstream.Consumer
	dead jetstream.Stream
}

var (
	_ ports.Publisher   = (*Bus)(nil)
	_ ports.Subscriber  = (*Bus)(nil)
	_ ports.DeadLetters = (*Bus)(nil)
	_ ports.Pinger      = (*Bus)(nil)
)

// DefaultMaxMsgs is the bound of the changes stream when Config.MaxMsgs is zero: without one,
// a stream under Limits retention keeps every change ever published, and the broker's disk
// fills.
const DefaultMaxMsgs = 1_000_000

// Open connects, proves JetStream answers and creates or updates the streams and the consumer.
func Open(ctx context.Context, cfg Config) (*Bus, error) {
	if cfg.URL == "" {
		return nil, errors.New("nats: POSTS_NATS_URL is empty")
	}
	if cfg.MaxMsgs < 0 {
		return nil, fmt.Errorf("nats: MaxMsgs %d is negative", cfg.MaxMsgs)
	}
	cfg = withDefaults(cfg)
	nc, err := gonats.Connect(cfg.URL, gonats.Timeout(cfg.Timeout), gonats.MaxReconnects(-1),
		gonats.ReconnectWait(250*time.Millisecond), gonats.Name("hexapost"))
	if err != nil {
		return nil, fmt.Errorf("nats: POSTS_NATS_URL=%s: %w", cfg.URL, err)
	}
	b := &Bus{cfg: cfg, nc: nc}
	if err := b.setUp(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	return b, nil
}

func (b *Bus) setUp(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 3*b.cfg.Timeout)
	defer cancel()
	// The async publish timeout drops a publish whose acknowledgement never comes, so it does
	// not hold one of the client's pending slots for ever.
	js, err := jetstream.New(b.nc, jetstream.WithPublishAsyncTimeout(b.cfg.Timeout))
	if err != nil {
		return fmt.Errorf("nats: jetstream: %w", err)
	}
	b.js = js
	if _, err := js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("nats: POSTS_NATS_URL=%s: no JetStream answer (is it enabled?): %w", b.cfg.URL, err)
	}
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: b.cfg.Stream, Subjects: []string{b.cfg.Subject}, Storage: jetstream.FileStorage,
		Duplicates: 2 * time.Minute, MaxMsgs: b.cfg.MaxMsgs, Discard: jetstream.DiscardOld,
	}); err != nil {
		return fmt.Errorf("nats: stream %s: %w", b.cfg.Stream, err)
	}
	if b.dead, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: b.cfg.DeadStream, Subjects: []string{b.cfg.DeadSubject}, Storage: jetstream.FileStorage,
	}); err != nil {
		return fmt.Errorf("nats: stream %s: %w", b.cfg.DeadStream, err)
	}
	if b.cons, err = js.CreateOrUpdateConsumer(ctx, b.cfg.Stream, jetstream.ConsumerConfig{
		Durable: b.cfg.Durable, AckPolicy: jetstream.AckExplicitPolicy, AckWait: b.cfg.AckWait,
		MaxDeliver: -1, FilterSubject: b.cfg.Subject, MaxAckPending: 1000,
	}); err != nil {
		return fmt.Errorf("nats: consumer %s: %w", b.cfg.Durable, err)
	}
	return nil
}

func withDefaults(cfg Config) Config {
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	def(&cfg.Stream, "HEXAPOST_CHANGES")
	def(&cfg.Subject, "hexapost.changes")
	def(&cfg.DeadStream, cfg.Stream+"_DEAD")
	def(&cfg.DeadSubject, cfg.Subject+".dead")
	def(&cfg.Durable, "hexapost-query")
	if cfg.MaxMsgs == 0 {
		cfg.MaxMsgs = DefaultMaxMsgs
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
	if cfg.AckWait <= 0 {
		cfg.AckWait = 30 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 3 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Observer == nil {
		cfg.Observer = nobody{}
	}
	return cfg
}

// nobody is the DeliveryObserver of a bus configured without one.
type nobody struct{}

func (nobody) Retrying()                          {}
func (nobody) DeadLettered(ports.DeadLetterCause) {}

// Close drains nothing and closes the connection.
func (b *Bus) Close() error {
	b.nc.Close()
	return nil
}

// Ping makes a JetStream round trip.
func (b *Bus) Ping(ctx context.Context) error {
	if _, err := b.js.AccountInfo(ctx); err != nil {
		return wrap("ping", err)
	}
	return nil
}

// Trace-context headers of a change, named as in HTTP (W3C Trace Context). The payload carries
// the same context; the headers let tools that do not read the payload follow the trace.
const (
	hdrTraceParent = "traceparent"
	hdrTraceState  = "tracestate"
)

// Publish publishes the changes, with their trace context as headers, all at once, then waits
// for the stream to acknowledge every one: a batch costs one round trip, not one per change.
// The stream may store them out of order (the client resends after a broker restart); the
// read side applies changes in any order.
func (b *Bus) Publish(ctx context.Context, changes []ports.Change) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	acks := make([]jetstream.PubAckFuture, 0, len(changes))
	for _, c := range changes {
		payload, err := wire.Encode(c)
		if err != nil {
			return err
		}
		msg := gonats.NewMsg(b.cfg.Subject)
		msg.Data = payload
		if md := c.Metadata; md.TraceParent != "" {
			msg.Header.Set(hdrTraceParent, md.TraceParent)
			if md.TraceState != "" {
				msg.Header.Set(hdrTraceState, md.TraceState)
			}
		}
		ack, err := b.js.PublishMsgAsync(msg, jetstream.WithMsgID(c.Event.ID))
		if err != nil {
			return wrap("publish", err)
		}
		acks = append(acks, ack)
	}
	for _, ack := range acks {
		select {
		case <-ack.Ok():
		case err := <-ack.Err():
			return wrap("publish", err)
		case <-ctx.Done():
			return wrap("publish", ctx.Err())
		}
	}
	return nil
}

// PublishRaw publishes a payload as it is; tests use it to send poison messages.
func (b *Bus) PublishRaw(ctx context.Context, payload []byte) error {
	msg := gonats.NewMsg(b.cfg.Subject)
	msg.Data = payload
	return b.publish(ctx, msg, "")
}

func (b *Bus) publish(ctx context.Context, msg *gonats.Msg, msgID string) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	var opts []jetstream.PublishOpt
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	if _, err := b.js.PublishMsg(ctx, msg, opts...); err != nil {
		return wrap("publish", err)
	}
	return nil
}

// Subscribe pulls from the shared consumer until ctx ends; see the package comment. The changes
// pulled go to lanes that apply up to wire.PostsInParallel posts' changes at once, each post's in
// order, while the loop pulls on: a slow change holds up only the changes of its own post. At
// most fetchBatch changes are in hand at a time. Once ctx ends, the changes not begun are handed
// back and Subscribe returns when those begun are finished.
func (b *Bus) Subscribe(ctx context.Context, h ports.Handler) error {
	handed := func(d delivery) (string, bool) { return d.change.Event.PostID, d.undecodable == nil }
	lanes := wire.NewLanes(wire.PostsInParallel, handed, func(d delivery, later *delivery) {
		if ctx.Err() != nil {
			_ = d.msg.Nak() // not begun: another query server may take it now
			return
		}
		if later != nil {
			d.later = &later.change
		}
		b.handle(ctx, h, d)
	})
	defer lanes.Wait()
	idle := true
	for ctx.Err() == nil {
		lanes.WaitBelow(fetchBatch)
		// Idle, wait up to a second for the next message; busy, take at once what is there.
		var batch jetstream.MessageBatch
		var err error
		if idle {
			batch, err = b.cons.Fetch(1, jetstream.FetchMaxWait(time.Second))
		} else {
			batch, err = b.cons.FetchNoWait(fetchBatch - lanes.Held())
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			b.cfg.Log.Warn("nats: fetch failed; retrying", "error", err)
			select {
			case <-ctx.Done():
			case <-time.After(b.cfg.Backoff):
			}
			continue
		}
		var msgs []delivery
		for m := range batch.Messages() {
			c, err := wire.Decode(m.Data())
			msgs = append(msgs, delivery{msg: m, change: c, undecodable: err})
		}
		idle = len(msgs) == 0
		lanes.Add(msgs...)
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && ctx.Err() == nil {
			b.cfg.Log.Warn("nats: fetch failed; retrying", "error", err)
			select {
			case <-ctx.Done():
			case <-time.After(b.cfg.Backoff):
			}
		}
	}
	return nil
}

func (b *Bus) backoff(n int) time.Duration {
	return min(b.cfg.Backoff<<min(max(n-1, 0), 20), b.cfg.MaxBackoff)
}

// delivery is a fetched message with the change decoded from it, or why it could not be.
type delivery struct {
	msg         jetstream.Msg
	change      ports.Change
	undecodable error
	// later is the change of the same post handed to the handler after this one, if one is
	// waiting behind it (see ports.WithFollowing).
	later *ports.Change
}

// fetchBatch is how many messages a query server holds at most, and one pull takes of those
// waiting; a graceful stop hands back those not begun at once, a crash leaves them to AckWait.
const fetchBatch = 128

func (b *Bus) handle(ctx context.Context, h ports.Handler, d delivery) {
	m, c := d.msg, d.change
	attempt := 1
	if md, err := m.Metadata(); err == nil {
		attempt = int(md.NumDelivered)
	}
	if d.undecodable != nil {
		b.deadLetter(ctx, m, attempt, nil, ports.CauseUndecodable, d.undecodable)
		return
	}
	// Built only when needed: a logger With attributes formats them at once.
	log := func() *slog.Logger {
		return b.cfg.Log.With("post_id", c.Event.PostID, "version", c.Event.Version, "event_id", c.Event.ID,
			"attempt", attempt)
	}
	if err := h(wire.Followed(ctx, d.later), c); err != nil {
		if ctx.Err() != nil {
			_ = m.Nak() // shutting down: let another query server take it now
			return
		}
		if attempt >= b.cfg.MaxAttempts {
			b.deadLetter(ctx, m, attempt, &c, ports.CauseAttemptsExhausted, err)
			return
		}
		b.cfg.Observer.Retrying()
		log := log()
		log.Warn("projection failed; will retry", "error", err.Error(), "retry_in", b.backoff(attempt))
		if err := m.NakWithDelay(b.backoff(attempt)); err != nil {
			log.Warn("nats: nak failed; the change comes back after AckWait", "error", err)
		}
		return
	}
	if err := m.Ack(); err != nil {
		log().Warn("nats: ack failed; the change will be delivered again", "error", err)
	}
}

// copyTraceHeaders copies the trace-context headers, so they stay with a change that is
// dead-lettered and redriven.
func copyTraceHeaders(dst, src gonats.Header) {
	for _, k := range []string{hdrTraceParent, hdrTraceState} {
		if v := src.Get(k); v != "" {
			dst.Set(k, v)
		}
	}
}

// Headers of a dead letter.
const (
	hdrReason   = "Hexapost-Reason"
	hdrAttempts = "Hexapost-Attempts"
	hdrFailedAt = "Hexapost-Failed-At"
)

// deadLetter publishes the change to the dead-letter stream, then acknowledges it: a crash in
// between gives a duplicate dead letter, never a lost one.
func (b *Bus) deadLetter(ctx context.Context, m jetstream.Msg, attempt int, c *ports.Change,
	why ports.DeadLetterCause, cause error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.cfg.Timeout)
	defer cancel()
	log := b.cfg.Log.With("attempt", attempt, "reason", cause.Error())
	if c != nil {
		log = log.With("post_id", c.Event.PostID, "version", c.Event.Version, "event_id", c.Event.ID)
	}
	msg := gonats.NewMsg(b.cfg.DeadSubject)
	msg.Data = m.Data()
	copyTraceHeaders(msg.Header, m.Headers())
	msg.Header.Set(hdrReason, cause.Error())
	msg.Header.Set(hdrAttempts, strconv.Itoa(attempt))
	msg.Header.Set(hdrFailedAt, time.Now().UTC().Format(time.RFC3339Nano))
	if _, err := b.js.PublishMsg(ctx, msg); err != nil {
		log.Error("nats: dead-lettering failed; the change will be delivered again", "error", err)
		_ = m.NakWithDelay(b.cfg.MaxBackoff)
		return
	}
	b.cfg.Observer.DeadLettered(why)
	if err := m.Ack(); err != nil {
		log.Warn("nats: ack of a dead letter failed", "error", err)
	}
	log.Error("message dead-lettered")
}

// List returns the dead letters, oldest first.
func (b *Bus) List(ctx context.Context) ([]ports.DeadLetter, error) {
	info, err := b.dead.Info(ctx)
	if err != nil {
		return nil, wrap("list dead letters", err)
	}
	var out []ports.DeadLetter
	for seq := info.State.FirstSeq; seq > 0 && seq <= info.State.LastSeq; seq++ {
		raw, err := b.dead.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, wrap("list dead letters", err)
		}
		out = append(out, fromRaw(raw))
	}
	return out, nil
}

func fromRaw(raw *jetstream.RawStreamMsg) ports.DeadLetter {
	d := ports.DeadLetter{ID: strconv.FormatUint(raw.Sequence, 10), Payload: raw.Data,
		Reason: raw.Header.Get(hdrReason)}
	d.Attempts, _ = strconv.Atoi(raw.Header.Get(hdrAttempts))
	d.FailedAt, _ = time.Parse(time.RFC3339Nano, raw.Header.Get(hdrFailedAt))
	if c, err := wire.Decode(raw.Data); err == nil {
		d.Change = &c
	}
	return d
}

func (b *Bus) deadMsg(ctx context.Context, id string) (*jetstream.RawStreamMsg, error) {
	seq, err := strconv.ParseUint(id, 10, 64)
	if err != nil || seq == 0 {
		return nil, fmt.Errorf("dead letter %q: %w", id, ports.ErrNotFound)
	}
	raw, err := b.dead.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, fmt.Errorf("dead letter %q: %w", id, ports.ErrNotFound)
	}
	if err != nil {
		return nil, wrap("dead letter "+id, err)
	}
	return raw, nil
}

// Redrive publishes a dead letter to the stream again, as a new message with a fresh delivery
// count, and removes it from the dead letters.
func (b *Bus) Redrive(ctx context.Context, id string) error {
	raw, err := b.deadMsg(ctx, id)
	if err != nil {
		return err
	}
	msg := gonats.NewMsg(b.cfg.Subject)
	msg.Data = raw.Data
	copyTraceHeaders(msg.Header, raw.Header)
	// A new message id: the original one may still be in the duplicate window.
	if err := b.publish(ctx, msg, "redrive-"+id+"-"+strconv.FormatInt(time.Now().UnixNano(), 10)); err != nil {
		return err
	}
	if err := b.dead.DeleteMsg(ctx, raw.Sequence); err != nil {
		return wrap("redrive "+id, err)
	}
	return nil
}

// Discard removes a dead letter for good.
func (b *Bus) Discard(ctx context.Context, id string) error {
	raw, err := b.deadMsg(ctx, id)
	if err != nil {
		return err
	}
	if err := b.dead.DeleteMsg(ctx, raw.Sequence); err != nil {
		return wrap("discard "+id, err)
	}
	return nil
}

// Purge deletes the streams and the consumer; tests use it to clean up.
func (b *Bus) Purge(ctx context.Context) error {
	for _, s := range []string{b.cfg.Stream, b.cfg.DeadStream} {
		if err := b.js.DeleteStream(ctx, s); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return wrap("purge", err)
		}
	}
	return nil
}

func wrap(op string, err error) error {
	if errors.Is(err, gonats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, gonats.ErrConnectionClosed) || errors.Is(err, gonats.ErrNoResponders) ||
		errors.Is(err, gonats.ErrDisconnected) || strings.Contains(err.Error(), "connection") {
		return fmt.Errorf("nats: %s: %w: %w", op, ports.ErrUnavailable, err)
	}
	return fmt.Errorf("nats: %s: %w", op, err)
}
