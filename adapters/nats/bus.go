// Package nats is the event bus on NATS JetStream: changes are published to a file-backed
// stream, bounded at Config.MaxMsgs, with the event id as Nats-Msg-Id, so the broker drops a
// relay's duplicate within its duplicate window, and read through one durable pull consumer
// that all query servers share.
//
// The delivery.Policy of the bus settles each delivery; the delivery count from the message
// metadata is the attempt number. A retry is a negative acknowledgement with the policy's
// delay; a dead letter is published to the dead-letter stream with its reason, then the change
// is acknowledged. A change held by a query server that died is redelivered after AckWait. The
// consumer itself allows unlimited deliveries: the broker never drops a change on its own; only
// the policy moves one to the dead letters, with a record.
//
// A change is lost to the bus when MaxMsgs removes it before the consumer was given it, and
// when the stream or the consumer is deleted. A subscriber compares the consumer's last
// delivered sequence with the stream's first when it starts and every LossCheck, finds a
// deleted (or recreated) consumer by its creation time, creates what is missing again and
// tells of each incident once, through the delivery.Policy. Publish creates a deleted stream
// again. The event store still has the changes.
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
	"hexapost/ports/delivery"
)

// Config configures a Bus. Only URL is required.
type Config struct {
	// URL is the server's, e.g. nats://127.0.0.1:4222.
	URL string
	// Stream and Subject carry the changes (defaults HEXAPOST_CHANGES, hexapost.changes);
	// DeadStream and DeadSubject the dead letters (defaults Stream+"_DEAD", Subject+".dead").
	Stream, Subject         string
	DeadStream, DeadSubject string
	// Durable is the consumer the query servers share (default hexapost-query).
	Durable string
	// MaxMsgs bounds the changes stream (default DefaultMaxMsgs): once it holds more, JetStream
	// drops the oldest. A dropped change is gone whether or not it was acknowledged, so MaxMsgs
	// must exceed the number of changes published during the longest query-side outage to be
	// survived. The dead-letter stream is never trimmed.
	MaxMsgs int64
	// MaxAttempts, Backoff and MaxBackoff set the delivery.Policy of the bus.
	MaxAttempts         int
	Backoff, MaxBackoff time.Duration
	// LossCheck is how often a subscriber asks the server whether changes the consumer was
	// never given are gone (default delivery.DefaultLossCheck); it also asks when it starts.
	LossCheck time.Duration
	// AckWait is how long a delivered change may go unacknowledged before it is delivered to
	// another query server (default 30s).
	AckWait time.Duration
	// Timeout bounds each call to the server (default 3s).
	Timeout time.Duration
	// Log receives one line per retry, per dead letter, per failed fetch and per loss of
	// changes, and Open's warning about a backlog close to MaxMsgs (default slog.Default()).
	Log *slog.Logger
	// Observer hears every retry, dead letter and loss of this process's subscriptions (default:
	// nobody).
	Observer ports.DeliveryObserver
}

// Bus is a Publisher, Subscriber and DeadLetters on JetStream.
type Bus struct {
	cfg    Config
	policy delivery.Policy
	nc     *gonats.Conn
	js     jetstream.JetStream
	cons   jetstream.Consumer
	dead   jetstream.Stream
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
// It warns when the consumer's backlog is close to MaxMsgs.
func Open(ctx context.Context, cfg Config) (*Bus, error) {
	if cfg.URL == "" {
		return nil, errors.New("nats: URL is empty")
	}
	if cfg.MaxMsgs < 0 {
		return nil, fmt.Errorf("nats: MaxMsgs %d is negative", cfg.MaxMsgs)
	}
	cfg = withDefaults(cfg)
	nc, err := gonats.Connect(cfg.URL, gonats.Timeout(cfg.Timeout), gonats.MaxReconnects(-1),
		gonats.ReconnectWait(250*time.Millisecond), gonats.Name("hexapost"))
	if err != nil {
		return nil, fmt.Errorf("nats: %s: %w", cfg.URL, err)
	}
	p := delivery.Policy{MaxAttempts: cfg.MaxAttempts, Backoff: cfg.Backoff, MaxBackoff: cfg.MaxBackoff,
		Log: cfg.Log, Observer: cfg.Observer, LossCheck: cfg.LossCheck}
	b := &Bus{cfg: cfg, policy: p.WithDefaults(), nc: nc}
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
		return fmt.Errorf("nats: %s: no JetStream answer (is it enabled?): %w", b.cfg.URL, err)
	}
	if b.dead, b.cons, err = b.ensure(ctx); err != nil {
		return err
	}
	b.warnIfFragile(ctx)
	return nil
}

// ensure creates or updates the streams and the consumer. The handles it returns go by name,
// so those Open keeps go on working when the streams and the consumer are created again.
func (b *Bus) ensure(ctx context.Context) (dead jetstream.Stream, cons jetstream.Consumer, err error) {
	if err := b.ensureStream(ctx); err != nil {
		return nil, nil, err
	}
	if dead, err = b.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: b.cfg.DeadStream, Subjects: []string{b.cfg.DeadSubject}, Storage: jetstream.FileStorage,
	}); err != nil {
		return nil, nil, fmt.Errorf("nats: stream %s: %w", b.cfg.DeadStream, err)
	}
	if cons, err = b.js.CreateOrUpdateConsumer(ctx, b.cfg.Stream, jetstream.ConsumerConfig{
		Durable: b.cfg.Durable, AckPolicy: jetstream.AckExplicitPolicy, AckWait: b.cfg.AckWait,
		MaxDeliver: -1, FilterSubject: b.cfg.Subject, MaxAckPending: 1000,
	}); err != nil {
		return nil, nil, fmt.Errorf("nats: consumer %s: %w", b.cfg.Durable, err)
	}
	return dead, cons, nil
}

// ensureStream creates or updates the changes stream.
func (b *Bus) ensureStream(ctx context.Context) error {
	if _, err := b.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: b.cfg.Stream, Subjects: []string{b.cfg.Subject}, Storage: jetstream.FileStorage,
		Duplicates: 2 * time.Minute, MaxMsgs: b.cfg.MaxMsgs, Discard: jetstream.DiscardOld,
	}); err != nil {
		return fmt.Errorf("nats: stream %s: %w", b.cfg.Stream, err)
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
	if cfg.AckWait <= 0 {
		cfg.AckWait = 30 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 3 * time.Second
	}
	return cfg
}

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
// read side applies changes in any order. When no stream takes them, because the stream was
// deleted, it creates the stream again and publishes them once more.
func (b *Bus) Publish(ctx context.Context, changes []ports.Change) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	err := b.publishAll(ctx, changes)
	if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, gonats.ErrNoResponders) {
		if err = b.ensureStream(ctx); err == nil {
			err = b.publishAll(ctx, changes)
		}
	}
	return err
}

func (b *Bus) publishAll(ctx context.Context, changes []ports.Change) error {
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
// pulled go to the lanes of the bus's delivery.Policy while the loop pulls on. At most
// fetchBatch changes are in hand at a time. Once ctx ends, the changes not begun are handed
// back and Subscribe returns when those begun are finished. It checks for lost changes before
// the first fetch, every LossCheck and after a failed fetch.
func (b *Bus) Subscribe(ctx context.Context, h ports.Handler) error {
	lanes := b.policy.Lanes(ctx, h)
	defer lanes.Wait()
	idle := true
	var w lossWatch
	for ctx.Err() == nil {
		lanes.WaitBelow(fetchBatch)
		if err := b.checkLoss(ctx, &w); err != nil {
			b.pause(ctx, "nats: checking for lost changes failed; retrying", err)
			continue
		}
		// Idle, wait for the next message up to a second, and not past the next check; busy,
		// take at once what is there.
		var batch jetstream.MessageBatch
		var err error
		if idle {
			wait := min(time.Second, max(time.Until(w.checked.Add(b.policy.LossCheck)), 10*time.Millisecond))
			batch, err = b.cons.Fetch(1, jetstream.FetchMaxWait(wait))
		} else {
			batch, err = b.cons.FetchNoWait(fetchBatch - lanes.Held())
		}
		if err == nil {
			var ds []delivery.Delivery
			for m := range batch.Messages() {
				ds = append(ds, b.decode(m))
			}
			idle = len(ds) == 0
			lanes.Add(ds...)
			if err = batch.Error(); errors.Is(err, jetstream.ErrNoMessages) {
				err = nil
			}
		}
		if err != nil {
			w.checked = time.Time{} // a deleted consumer fails the fetch: look at once
			b.pause(ctx, "nats: fetch failed; retrying", err)
		}
	}
	return nil
}

// pause logs what failed, unless ctx ended, and waits Backoff or until ctx ends.
func (b *Bus) pause(ctx context.Context, msg string, err error) {
	if ctx.Err() != nil {
		return
	}
	b.policy.Log.Warn(msg, "error", err)
	t := time.NewTimer(b.policy.Backoff)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// fetchBatch is how many messages a query server holds at most, and one pull takes of those
// waiting; a graceful stop hands back those not begun at once, a crash leaves them to AckWait.
const fetchBatch = 128

// decode reads a fetched message; its delivery count is the attempt number.
func (b *Bus) decode(m jetstream.Msg) delivery.Delivery {
	d := delivery.Delivery{Msg: message{b, m}, Payload: m.Data(), Attempt: 1}
	d.Change, d.Undecodable = wire.Decode(m.Data())
	if md, err := m.Metadata(); err == nil {
		d.Attempt = int(md.NumDelivered)
	}
	return d
}

// message settles a fetched message with JetStream.
type message struct {
	b *Bus
	m jetstream.Msg
}

var _ delivery.Message = message{}

// Ack acknowledges the message; should that fail, it comes back after AckWait.
func (m message) Ack(context.Context) (time.Duration, error) { return m.b.cfg.AckWait, m.m.Ack() }

// Retry acknowledges the message negatively, to come back after wait.
func (m message) Retry(_ context.Context, wait time.Duration) (time.Duration, error) {
	return m.b.cfg.AckWait, m.m.NakWithDelay(wait)
}

// Release acknowledges the message negatively, so that another query server may take it now.
func (m message) Release(context.Context) { _ = m.m.Nak() }

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

// DeadLetter publishes the message to the dead-letter stream, then acknowledges it: a crash in
// between gives a duplicate dead letter, never a lost one.
func (m message) DeadLetter(ctx context.Context, d *ports.DeadLetter) (time.Duration, error) {
	b := m.b
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	msg := gonats.NewMsg(b.cfg.DeadSubject)
	msg.Data = m.m.Data()
	copyTraceHeaders(msg.Header, m.m.Headers())
	msg.Header.Set(hdrReason, d.Reason)
	msg.Header.Set(hdrAttempts, strconv.Itoa(d.Attempts))
	msg.Header.Set(hdrFailedAt, d.FailedAt.UTC().Format(time.RFC3339Nano))
	ack, err := b.js.PublishMsg(ctx, msg)
	if err != nil {
		return b.policy.MaxBackoff, errors.Join(err, m.m.NakWithDelay(b.policy.MaxBackoff))
	}
	d.ID = strconv.FormatUint(ack.Sequence, 10)
	if err := m.m.Ack(); err != nil {
		b.policy.Log.Warn("nats: ack of a dead letter failed", "dead_letter_id", d.ID, "error", err)
	}
	return 0, nil
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
