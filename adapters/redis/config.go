package redis

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"hexapost/ports"
	"hexapost/ports/delivery"
)

// Config configures a Bus. Only URL is required; every zero field takes its default, and a
// negative one is an error naming the field.
type Config struct {
	// URL is the server's: redis://[user:password@]host:port/db (rediss:// for TLS).
	URL string
	// Stream holds the changes (default "hexapost:changes").
	Stream string
	// DeadLetterStream holds the dead letters (default Stream + ":dead"). It is never trimmed:
	// a dead letter leaves it only by an operator's redrive or discard.
	DeadLetterStream string
	// Group is the consumer group the query servers share (default "hexapost-query"). It is
	// created, reading from the start of the stream, when missing.
	Group string
	// Consumer names this process in the group (default host-pid-random). Two live processes
	// must not share a name; a restarted process gets a new one by default, and what its
	// predecessor left pending is claimed after VisibilityTimeout.
	Consumer string
	// MaxLen bounds the stream with approximate trimming (XADD MAXLEN ~, default 1 000 000):
	// Redis drops the oldest entries, in whole internal nodes, once the stream is longer. A
	// trimmed entry is gone for every group, delivered or not, so MaxLen must exceed the
	// number of changes published during the longest query-side outage to be survived.
	MaxLen int64
	// MaxAttempts, Backoff and MaxBackoff set the delivery.Policy of the bus.
	MaxAttempts         int
	Backoff, MaxBackoff time.Duration
	// VisibilityTimeout is how long a change may stay unacknowledged with the consumer that
	// took it before another consumer claims it (default 30s): the time a crashed query server
	// holds its changes. It must exceed the slowest handler, or a change still being applied is
	// applied a second time elsewhere (which the projector tolerates, but wastes work).
	VisibilityTimeout time.Duration
	// LossCheck is how often a subscriber asks Redis whether the stream lost changes the group
	// was never given (default delivery.DefaultLossCheck); it also asks when it starts.
	LossCheck time.Duration
	// Batch is how many changes a consumer holds at most, taken but not finished (default 128).
	// A consumer that dies holds that many until VisibilityTimeout.
	Batch int
	// Log receives one line per retry, per dead letter, per failed read and per loss of changes,
	// and Open's warnings about a fragile bus (default slog.Default()).
	Log *slog.Logger
	// Observer hears every retry, dead letter and loss of this process's subscriptions (default:
	// nobody).
	Observer ports.DeliveryObserver
}

// Defaults of Config.
const (
	DefaultStream            = "hexapost:changes"
	DefaultGroup             = "hexapost-query"
	DefaultMaxLen            = 1_000_000
	DefaultVisibilityTimeout = 30 * time.Second
	DefaultBatch             = 128
)

// retryConsumer is the consumer of the group that holds the changes waiting for a retry; no
// process reads as it. Its name cannot be a default consumer name, and Open refuses it.
const retryConsumer = "~awaiting-retry"

// withDefaults validates cfg, fills in its zero fields and returns the bus's delivery policy.
func (cfg Config) withDefaults() (Config, delivery.Policy, error) {
	p := delivery.Policy{MaxAttempts: cfg.MaxAttempts, Backoff: cfg.Backoff, MaxBackoff: cfg.MaxBackoff,
		Abandon: true, Log: cfg.Log, Observer: cfg.Observer, LossCheck: cfg.LossCheck}.WithDefaults()
	if cfg.URL == "" {
		return cfg, p, errors.New("redis: URL is empty; want redis://host:port/db")
	}
	negative := []struct {
		name string
		bad  bool
	}{
		{"MaxLen", cfg.MaxLen < 0},
		{"MaxAttempts", cfg.MaxAttempts < 0},
		{"Backoff", cfg.Backoff < 0},
		{"MaxBackoff", cfg.MaxBackoff < 0},
		{"VisibilityTimeout", cfg.VisibilityTimeout < 0},
		{"Batch", cfg.Batch < 0},
		{"LossCheck", cfg.LossCheck < 0},
	}
	for _, n := range negative {
		if n.bad {
			return cfg, p, fmt.Errorf("redis: config: %s is negative; want a positive value, or 0 for the default", n.name)
		}
	}
	if cfg.Stream == "" {
		cfg.Stream = DefaultStream
	}
	if cfg.DeadLetterStream == "" {
		cfg.DeadLetterStream = cfg.Stream + ":dead"
	}
	if cfg.Group == "" {
		cfg.Group = DefaultGroup
	}
	if cfg.Consumer == "" {
		cfg.Consumer = defaultConsumer()
	}
	if cfg.MaxLen == 0 {
		cfg.MaxLen = DefaultMaxLen
	}
	if cfg.VisibilityTimeout == 0 {
		cfg.VisibilityTimeout = DefaultVisibilityTimeout
	}
	if cfg.Batch == 0 {
		cfg.Batch = DefaultBatch
	}
	switch {
	case p.Backoff > p.MaxBackoff:
		return cfg, p, fmt.Errorf("redis: config: Backoff %s exceeds MaxBackoff %s", p.Backoff, p.MaxBackoff)
	case cfg.Stream == cfg.DeadLetterStream:
		return cfg, p, fmt.Errorf("redis: config: Stream and DeadLetterStream are both %q", cfg.Stream)
	case cfg.Consumer == retryConsumer:
		return cfg, p, fmt.Errorf("redis: config: consumer name %q is reserved for changes awaiting a retry", cfg.Consumer)
	}
	return cfg, p, nil
}

// defaultConsumer returns host-pid-random: unique per process, and readable in XINFO CONSUMERS.
func defaultConsumer() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
}

// redact returns the URL with its password, if any, replaced, so that errors and logs can
// name the URL.
func redact(raw string) string {
	scheme := strings.Index(raw, "://")
	at := strings.LastIndex(raw, "@")
	if scheme < 0 || at < scheme {
		return raw
	}
	userinfo := raw[scheme+3 : at]
	user, _, hasPassword := strings.Cut(userinfo, ":")
	if !hasPassword {
		if userinfo == "" {
			return raw
		}
		// redis://secret@host: a lone userinfo may well be a password.
		return raw[:scheme+3] + "xxxxx" + raw[at:]
	}
	return raw[:scheme+3] + user + ":xxxxx" + raw[at:]
}
