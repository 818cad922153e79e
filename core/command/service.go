package command

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"time"

	"hexapost/core/post"
	"hexapost/ports"
)

// ErrKeyReused is returned when an Idempotency-Key comes back with another request.
var ErrKeyReused = errors.New("idempotency key was used for a different request")

// ConflictError says that a conditional command expected another version than the current one.
type ConflictError struct {
	Expected int64
	// Current is the version found, or -1 when a concurrent writer got in between and the post
	// could not be read again.
	Current int64
}

func (e *ConflictError) Error() string {
	if e.Current < 0 {
		return fmt.Sprintf("version mismatch: expected %d, but the post changed concurrently", e.Expected)
	}
	return fmt.Sprintf("version mismatch: expected %d, current is %d", e.Expected, e.Current)
}

// Unwrap makes a ConflictError match ports.ErrConflict.
func (e *ConflictError) Unwrap() error { return ports.ErrConflict }

// Options are the request-level conditions of a command.
type Options struct {
	// IfMatch, when not nil, makes the command conditional on this current version. Version 0
	// is no existing post's: a condition that nothing may match.
	IfMatch *int64
	// IdempotencyKey, when not empty, makes a repeat of the same request return the first result.
	IdempotencyKey string
	// RequestID, when not empty, names the request in the command's log lines and travels with
	// its changes (ports.Metadata), so that their projection names it too.
	RequestID string
	// Actor, when not empty, names the operator's credential that asked for the command; it
	// travels with its changes (ports.Metadata) into the store, as their audit record.
	Actor string
}

// Result is the outcome of a command.
type Result struct {
	State post.State
	// Created is true when the command created the post.
	Created bool
	// Replayed is true when the result was remembered from an earlier request with the same key.
	Replayed bool
}

// Config tunes the service; zero values take the defaults.
type Config struct {
	// MaxAttempts bounds the optimistic loop of unconditional commands (default 20).
	MaxAttempts int
}

// Service runs commands: it loads the post, lets the aggregate decide, and appends the outcome
// at the version it decided on, retrying an unconditional command when another writer got in
// between.
type Service struct {
	posts ports.PostStore
	keys  ports.IdempotencyStore
	newID func() string
	now   func() time.Time
	log   *slog.Logger
	max   int
}

// NewService returns a Service. newID must return a fresh unique id (UUIDv7) on every call and
// now the current time.
func NewService(posts ports.PostStore, keys ports.IdempotencyStore, newID func() string,
	now func() time.Time, log *slog.Logger, cfg Config) *Service {
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 20
	}
	return &Service{posts: posts, keys: keys, newID: newID, now: now, log: log, max: cfg.MaxAttempts}
}

// Create creates a post with a new id.
func (s *Service) Create(ctx context.Context, c post.Create, o Options) (Result, error) {
	fp := o.fingerprint("create", "", &c.Title, &c.Content, &c.AuthorName)
	return s.run(ctx, opCreate, s.newID(), fp, o, func(p *post.Post, st post.Stamp) ([]post.Event, error) {
		e, err := p.Create(c, st)
		if err != nil {
			return nil, err
		}
		return []post.Event{e}, nil
	})
}

// Update changes fields of a post. Without IfMatch a concurrent change is retried on the new
// state; with it, any other current version is a ConflictError.
func (s *Service) Update(ctx context.Context, id string, c post.Update, o Options) (Result, error) {
	fp := o.fingerprint("update", id, c.Title, c.Content, c.AuthorName)
	return s.run(ctx, opUpdate, id, fp, o, func(p *post.Post, st post.Stamp) ([]post.Event, error) {
		return p.Update(c, st)
	})
}

// Delete deletes a post.
func (s *Service) Delete(ctx context.Context, id string, o Options) (Result, error) {
	fp := o.fingerprint("delete", id)
	return s.run(ctx, opDelete, id, fp, o, func(p *post.Post, st post.Stamp) ([]post.Event, error) {
		e, err := p.Delete(post.Delete{}, st)
		if err != nil {
			return nil, err
		}
		return []post.Event{e}, nil
	})
}

type decision func(*post.Post, post.Stamp) ([]post.Event, error)

const (
	opCreate = "create"
	opUpdate = "update"
	opDelete = "delete"
	opErase  = "erase"
)

// run answers a repeated idempotency key from its record, and otherwise attempts the command
// until it is decided, retrying an unconditional one after a version conflict.
func (s *Service) run(ctx context.Context, op, id, fp string, o Options, decide decision) (Result, error) {
	log := commandLog{log: s.log, op: op, id: id, key: o.IdempotencyKey, request: o.RequestID}
	if o.IdempotencyKey != "" {
		if r, err := s.replay(ctx, o.IdempotencyKey, fp); !errors.Is(err, ports.ErrNotFound) {
			if err == nil {
				log.id = r.State.ID // a repeated create named a new id; the answer is the first one's post
				log.info(ctx, "command replayed", slog.Int64("version", r.State.Version))
			}
			return r, err
		}
	}
	// Debug: the command's outcome is logged (event appended, changed nothing, replayed) or
	// returned as an error; at info this line would double the command server's logging.
	log.at(ctx, slog.LevelDebug, "command accepted")
	// The first attempt may decide on a post the store kept, which its append confirms. An
	// answer that depends on the post's version without appending (nothing to change, an
	// If-Match that does not hold) is given from the current post only, so that attempt is made
	// again on it; an unconditional conflict is retried on it. A create's post is new.
	current := op == opCreate
	for attempt := 1; ; attempt++ {
		r, appended, err := s.attempt(ctx, op, id, fp, o, decide, log, current)
		if !current && !appended && (err == nil || o.IfMatch != nil && errors.Is(err, ports.ErrConflict)) {
			r, _, err = s.attempt(ctx, op, id, fp, o, decide, log, true)
		}
		// A conditional command that lost at the append knows only that the version moved on;
		// one more look finds the version that won, which the client needs to try again. It
		// cannot append: versions only grow past the one the command expected.
		var lost *ConflictError
		if errors.As(err, &lost) && lost.Current < 0 {
			r, _, err = s.attempt(ctx, op, id, fp, o, decide, log, true)
		}
		current = true
		switch {
		case errors.Is(err, ports.ErrDuplicate) && o.IdempotencyKey != "":
			// A concurrent request with the same key won; answer as it did.
			return s.replay(ctx, o.IdempotencyKey, fp)
		case errors.Is(err, ports.ErrConflict) && o.IfMatch == nil && attempt < s.max:
			log.info(ctx, "command retried after version conflict", slog.Int("attempt", attempt))
			if err := sleep(ctx, backoff(attempt)); err != nil {
				return Result{}, err
			}
			continue
		}
		return r, err
	}
}

// attempt loads the post, decides on it and appends the outcome at the version it decided on;
// appended says whether it did.
func (s *Service) attempt(ctx context.Context, op, id, fp string, o Options, decide decision,
	log commandLog, current bool) (r Result, appended bool, err error) {
	p, release, err := s.load(ctx, op, id, current)
	if err != nil {
		return Result{}, false, err
	}
	defer release()
	// The existence rules come before the version check: a deleted post is 410 whatever
	// version the client had in mind.
	if o.IfMatch != nil && p.Exists() && !p.State().Deleted && *o.IfMatch != p.Version() {
		return Result{}, false, &ConflictError{Expected: *o.IfMatch, Current: p.Version()}
	}
	expected := p.Version()
	events, err := decide(p, post.Stamp{EventID: s.newID(), At: s.now().UTC().Truncate(time.Microsecond)})
	if err != nil {
		return Result{}, false, err
	}
	changes := make([]ports.Change, 0, len(events))
	for _, e := range events {
		if err := p.Apply(e); err != nil {
			return Result{}, false, err
		}
		changes = append(changes, ports.Change{Event: e, State: p.State(), Metadata: ports.Metadata{RequestID: o.RequestID, Actor: o.Actor}})
	}
	res := Result{State: p.State(), Created: expected == 0}
	a := ports.Append{PostID: id, ExpectedVersion: expected, Changes: changes}
	if o.IdempotencyKey != "" {
		a.Idempotency = &ports.IdempotencyRecord{
			Key: o.IdempotencyKey, Fingerprint: fp, Created: res.Created, State: res.State,
			CreatedAt: s.now().UTC(),
		}
	}
	if len(changes) == 0 && a.Idempotency == nil {
		if current {
			log.info(ctx, "command changed nothing", slog.Int64("version", expected))
		}
		return res, false, nil
	}
	if err := s.posts.Append(ctx, a); err != nil {
		if errors.Is(err, ports.ErrConflict) && o.IfMatch != nil {
			return Result{}, false, &ConflictError{Expected: *o.IfMatch, Current: -1}
		}
		return Result{}, false, fmt.Errorf("append %s: %w", id, err)
	}
	for _, c := range changes {
		log.info(ctx, "event appended", slog.Int64("version", c.Event.Version), slog.String("event_id", c.Event.ID),
			slog.String("event_type", string(c.Event.Type)))
	}
	return res, true, nil
}

// load returns the post to decide on. A create's id is new, made for it: it has no stream to
// load, nor anyone to take turns with.
func (s *Service) load(ctx context.Context, op, id string, current bool) (*post.Post, func(), error) {
	if op == opCreate {
		p, err := post.FromHistory(id, nil)
		return p, func() {}, err
	}
	p, release, err := s.posts.Load(ctx, id, current)
	if err != nil {
		return nil, nil, fmt.Errorf("load %s: %w", id, err)
	}
	return p, release, nil
}

func (s *Service) replay(ctx context.Context, key, fp string) (Result, error) {
	rec, err := s.keys.Lookup(ctx, key)
	if err != nil {
		if errors.Is(err, ports.ErrNotFound) {
			return Result{}, err
		}
		return Result{}, fmt.Errorf("idempotency lookup: %w", err)
	}
	if rec.State.Erased {
		// The record's fingerprint went with the post's data; whatever the request, the post it
		// answers with is erased.
		return Result{}, fmt.Errorf("%s: %w", rec.State.ID, post.ErrErased)
	}
	if rec.Fingerprint != fp {
		return Result{}, ErrKeyReused
	}
	return Result{State: rec.State, Created: rec.Created, Replayed: true}, nil
}

// commandLog writes a command's log lines, each beginning with the command, its post, its
// idempotency key and its request id, as a logger made With them would; it formats them only
// for the lines that are written, where With would format them for every command.
type commandLog struct {
	log                  *slog.Logger
	op, id, key, request string
}

func (l commandLog) info(ctx context.Context, msg string, attrs ...slog.Attr) {
	l.at(ctx, slog.LevelInfo, msg, attrs...)
}

func (l commandLog) at(ctx context.Context, level slog.Level, msg string, attrs ...slog.Attr) {
	if !l.log.Enabled(ctx, level) {
		return
	}
	var buf [8]slog.Attr // on the stack: a line has at most 7 attributes
	all := append(buf[:0], slog.String("op", l.op), slog.String("post_id", l.id))
	if l.key != "" {
		all = append(all, slog.String("idempotency_key", l.key))
	}
	if l.request != "" {
		all = append(all, slog.String("request_id", l.request))
	}
	// To the handler, not through Logger.LogAttrs: the lines carry no source, so they need not
	// pay for the stack trace Logger takes for one.
	r := slog.NewRecord(time.Now(), level, msg, 0)
	r.AddAttrs(append(all, attrs...)...)
	_ = l.log.Handler().Handle(ctx, r) // as Logger does: a line that cannot be written is dropped
}

// fingerprint identifies a request for idempotency: the operation, its target and its fields.
// Lengths are written before values so that no two different requests share an encoding. Only
// a request with a key needs one; without a key it is empty.
func (o Options) fingerprint(op, id string, fields ...*string) string {
	if o.IdempotencyKey == "" {
		return ""
	}
	h := sha256.New()
	for _, v := range append([]*string{&op, &id}, fields...) {
		if v == nil {
			h.Write([]byte("-1:"))
			continue
		}
		h.Write([]byte(strconv.Itoa(len(*v)) + ":" + *v))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// backoff returns a delay drawn at random up to a bound that doubles with the attempt, from
// 2ms to 128ms: spread over the whole range, writers that collided on a post rarely meet again.
func backoff(attempt int) time.Duration {
	d := 2 * time.Millisecond << min(attempt-1, 6)
	return rand.N(d + 1) //nolint:gosec // jitter needs no cryptographic randomness
}

// sleep waits for d and returns nil, or ctx.Err() once ctx has ended, also when both happened
// by the time it looks: a select between two ready channels picks either.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	return ctx.Err()
}
