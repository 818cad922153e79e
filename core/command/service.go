package command

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"hexapost/core/post"
	"hexapost/ports"
)

// ErrKeyReused is returned when an Idempotency-Key comes back with another request.
var ErrKeyReused = errors.New("idempotency key was used for a different request")

// ConflictError says that a conditional command expected another version than the current one.
type ConflictError struct {
	Expected int64
	// Current is the version found, or -1 when a concurrent writer got in between.
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
	// IfMatch, when not nil, makes the command conditional on this current version.
	IfMatch *int64
	// IdempotencyKey, when not empty, makes a repeat of the same request return the first result.
	IdempotencyKey string
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
	// MaxAttempts bounds the optimistic loop of unconditional commands (default 10).
	MaxAttempts int
}

// Service runs commands against the event store.
type Service struct {
	store ports.EventStore
	keys  ports.IdempotencyStore
	newID func() string
	now   func() time.Time
	log   *slog.Logger
	max   int
	// stripes serialise commands on one post within this process, so they queue instead of
	// colliding, and keep the state each post had after its last command here; the
	// expected-version check still guards against other processes.
	stripes [256]stripe
}

// stripe is the lock of the posts whose id hashes to it and the last state this process saw of
// each, so that a command on a long stream loads only what other processes appended since —
// usually nothing — instead of the whole stream. A state that another process has overtaken
// costs an append conflict, or a short load when the decision needs the current state.
//
// The states are kept in two generations of at most statesPerStripe/2 posts each: a state is
// put in recent, and when recent is full, older is dropped and recent becomes older. So the
// posts commanded least recently go first, and the two maps are reused, never grown: evicting
// one post at a time from a full map left it tombstones to rehash, a new table every so often
// on a busy server.
type stripe struct {
	mu            sync.Mutex
	recent, older map[string]post.State // guarded by mu
}

// statesPerStripe bounds the cache: 256 stripes hold at most 65 536 posts' states.
const statesPerStripe = 256

// get returns the cached state of the post as a Post, or nil. The caller holds st.mu.
func (st *stripe) get(id string) *post.Post {
	if s, ok := st.recent[id]; ok {
		return post.FromState(s)
	}
	if s, ok := st.older[id]; ok {
		return post.FromState(s)
	}
	return nil
}

// put remembers s as the post's latest state, dropping the older generation when the recent
// one is full. The caller holds st.mu.
func (st *stripe) put(s post.State) {
	if st.recent == nil {
		st.recent = make(map[string]post.State, statesPerStripe/2)
		st.older = make(map[string]post.State, statesPerStripe/2)
	}
	if _, ok := st.recent[s.ID]; !ok && len(st.recent) >= statesPerStripe/2 {
		st.recent, st.older = st.older, st.recent
		clear(st.recent)
	}
	delete(st.older, s.ID)
	st.recent[s.ID] = s
}

// forget drops the post's state. The caller holds st.mu.
func (st *stripe) forget(id string) {
	delete(st.recent, id)
	delete(st.older, id)
}

// errStale reports a decision that was made on a cached state and did not end in an append
// (an error, a conflict, or nothing to change): it must be made again on the current state
// before it is answered.
var errStale = errors.New("decided on a cached state")

// NewService returns a Service. newID must return a fresh unique id (UUIDv7) on every call and
// now the current time.
func NewService(store ports.EventStore, keys ports.IdempotencyStore, newID func() string,
	now func() time.Time, log *slog.Logger, cfg Config) *Service {
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 10
	}
	return &Service{store: store, keys: keys, newID: newID, now: now, log: log, max: cfg.MaxAttempts}
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
)

func (s *Service) run(ctx context.Context, op, id, fp string, o Options, decide decision) (Result, error) {
	log := commandLog{log: s.log, op: op, id: id, key: o.IdempotencyKey}
	if o.IdempotencyKey != "" {
		if r, err := s.replay(ctx, o.IdempotencyKey, fp); !errors.Is(err, ports.ErrNotFound) {
			if err == nil {
				log.info(ctx, "command replayed", slog.Int64("version", r.State.Version))
			}
			return r, err
		}
	}
	// Debug: the command's outcome is logged (event appended, changed nothing, replayed) or
	// returned as an error; at info this line would double the command server's logging.
	log.at(ctx, slog.LevelDebug, "command accepted")

	st := &s.stripes[stripeIndex(id)]
	st.mu.Lock()
	defer st.mu.Unlock()

	// p is the state to decide on; current tells whether it is known to be the stored one. A
	// new id (a create's, made here) has no stream to load, nor a cached state to look for; a
	// post not in the cache is loaded whole.
	var p *post.Post
	if op != opCreate {
		p = st.get(id)
	}
	current := false
	if p == nil {
		p, _ = post.FromHistory(id, nil)
		current = op == opCreate
	}
	mustLoad := p.Version() == 0 && !current
	for attempt := 1; ; {
		if mustLoad {
			events, err := s.store.Load(ctx, id, p.Version())
			if err != nil {
				return Result{}, fmt.Errorf("load %s: %w", id, err)
			}
			if err := p.Apply(events...); err != nil {
				st.forget(id)
				return Result{}, err
			}
			current = true
		}
		r, err := s.attempt(ctx, id, fp, o, decide, log, p, current)
		switch {
		case err == nil:
			st.put(r.State)
			return r, nil
		case errors.Is(err, errStale):
			mustLoad = true
			continue
		case errors.Is(err, ports.ErrDuplicate) && o.IdempotencyKey != "":
			// A concurrent request with the same key won; answer as it did.
			return s.replay(ctx, o.IdempotencyKey, fp)
		case errors.Is(err, ports.ErrConflict) && o.IfMatch == nil && attempt < s.max:
			log.info(ctx, "command retried after version conflict", slog.Int("attempt", attempt))
			if err := sleep(ctx, backoff(attempt)); err != nil {
				return Result{}, err
			}
			attempt++
			current, mustLoad = false, true
			continue
		}
		// The append's outcome may be unknown (a timeout after the commit): forget the state.
		st.forget(id)
		return r, err
	}
}

// attempt decides on p and appends the outcome. When p is not known to be current, any answer
// other than a successful append is errStale, for the caller to decide again on the current
// state. p is not changed.
func (s *Service) attempt(ctx context.Context, id, fp string, o Options, decide decision,
	log commandLog, p *post.Post, current bool) (Result, error) {
	final := func(err error) (Result, error) {
		if !current {
			return Result{}, errStale
		}
		return Result{}, err
	}
	// The existence rules come before the version check: a deleted post is 410 whatever
	// version the client had in mind.
	if o.IfMatch != nil && p.Exists() && !p.State().Deleted && *o.IfMatch != p.Version() {
		return final(&ConflictError{Expected: *o.IfMatch, Current: p.Version()})
	}
	expected := p.Version()
	newEvents, err := decide(p, post.Stamp{EventID: s.newID(), At: s.now().UTC().Truncate(time.Microsecond)})
	if err != nil {
		return final(err)
	}
	if len(newEvents) == 0 && !current {
		return final(nil)
	}
	next := post.FromState(p.State())
	changes := make([]ports.Change, 0, len(newEvents))
	for _, e := range newEvents {
		if err := next.Apply(e); err != nil {
			return Result{}, err
		}
		changes = append(changes, ports.Change{Event: e, State: next.State()})
	}
	res := Result{State: next.State(), Created: expected == 0}
	a := ports.Append{PostID: id, ExpectedVersion: expected, Changes: changes}
	if o.IdempotencyKey != "" {
		a.Idempotency = &ports.IdempotencyRecord{
			Key: o.IdempotencyKey, Fingerprint: fp, Created: res.Created, State: res.State,
			CreatedAt: s.now().UTC(),
		}
	}
	if len(changes) == 0 && a.Idempotency == nil {
		log.info(ctx, "command changed nothing", slog.Int64("version", expected))
		return res, nil
	}
	if err := s.store.Append(ctx, a); err != nil {
		switch {
		case errors.Is(err, ports.ErrConflict) && !current:
			return Result{}, errStale // the cached state was overtaken: no race to back off from
		case errors.Is(err, ports.ErrConflict) && o.IfMatch != nil:
			return Result{}, &ConflictError{Expected: *o.IfMatch, Current: -1}
		}
		return Result{}, fmt.Errorf("append %s: %w", id, err)
	}
	for _, c := range changes {
		log.info(ctx, "event appended", slog.Int64("version", c.Event.Version), slog.String("event_id", c.Event.ID),
			slog.String("event_type", string(c.Event.Type)))
	}
	return res, nil
}

func (s *Service) replay(ctx context.Context, key, fp string) (Result, error) {
	rec, err := s.keys.Lookup(ctx, key)
	if err != nil {
		if errors.Is(err, ports.ErrNotFound) {
			return Result{}, err
		}
		return Result{}, fmt.Errorf("idempotency lookup: %w", err)
	}
	if rec.Fingerprint != fp {
		return Result{}, ErrKeyReused
	}
	return Result{State: rec.State, Created: rec.Created, Replayed: true}, nil
}

// commandLog writes a command's log lines, each beginning with the command, its post and its
// idempotency key, as a logger made With them would; it formats them only for the lines that
// are written, where With would format them for every command.
type commandLog struct {
	log         *slog.Logger
	op, id, key string
}

func (l commandLog) info(ctx context.Context, msg string, attrs ...slog.Attr) {
	l.at(ctx, slog.LevelInfo, msg, attrs...)
}

func (l commandLog) at(ctx context.Context, level slog.Level, msg string, attrs ...slog.Attr) {
	if !l.log.Enabled(ctx, level) {
		return
	}
	var buf [8]slog.Attr // on the stack: a line has at most 6 attributes
	all := append(buf[:0], slog.String("op", l.op), slog.String("post_id", l.id))
	if l.key != "" {
		all = append(all, slog.String("idempotency_key", l.key))
	}
	// To the handler, not through Logger.LogAttrs: the lines carry no source, so they need not
	// pay for the stack trace Logger takes for one (runtime.Callers, about 2 % of the CPU of a
	// server taking creates in memory mode).
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

func stripeIndex(id string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(id))
	return h.Sum32() % 256
}

// backoff returns a jittered delay that grows with the attempt: about 1, 2, 4 … ms, at most 50.
func backoff(attempt int) time.Duration {
	d := time.Millisecond << min(attempt-1, 6)
	d = min(d, 50*time.Millisecond)
	return d/2 + rand.N(d/2+1) //nolint:gosec // jitter needs no cryptographic randomness
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
