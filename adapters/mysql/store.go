package mysql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/mysqldialect"

	"hexapost/core/post"
	"hexapost/ports"
	"hexapost/ports/batch"
)

// purgeEvery is how often, at most, an append also deletes expired idempotency records.
const purgeEvery = time.Minute

// purgeBatch caps the records one purge deletes, so that it never holds locks for long.
const purgeBatch = 1000

// EventStore is the event store, its outbox and the idempotency records in one MySQL or
// MariaDB database. It is safe for concurrent use, also by several processes sharing the
// database.
type EventStore struct {
	db       *bun.DB
	cfg      Config
	appended chan struct{}
	// appends gathers concurrent appends into shared transactions.
	appends *batch.Group[*pending, error]
	// seen spares batches the read of versions they can tell from it.
	seen seenVersions
	// lastPurge is when (Unix nanoseconds) expired idempotency records were last deleted.
	lastPurge atomic.Int64
	// database is the name of the database, which the names of the store's locks include.
	database string

	locksMu sync.Mutex
	// locks are the named locks held, each on a connection of its own; Close lets them go.
	locks map[*serverLock]struct{}
}

var (
	_ ports.EventStore       = (*EventStore)(nil)
	_ ports.StreamReader     = (*EventStore)(nil)
	_ ports.Outbox           = (*EventStore)(nil)
	_ ports.OutboxStats      = (*EventStore)(nil)
	_ ports.IdempotencyStore = (*EventStore)(nil)
	_ ports.Pinger           = (*EventStore)(nil)
	_ ports.StreamHeads      = (*EventStore)(nil)
	_ ports.Locker           = (*EventStore)(nil)
	_ ports.AuthorPosts      = (*EventStore)(nil)
)

// Open connects to the database named by cfg.DSN, checks that it answers and brings its schema
// up to date (with cfg.ReadOnly: checks that it is). Every error shows the DSN with its password
// redacted; an unreachable or overloaded server gives an error that wraps ports.ErrUnavailable.
func Open(ctx context.Context, cfg Config) (*EventStore, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	dc, err := driverConfig(cfg)
	if err != nil {
		return nil, err
	}
	connector, err := gomysql.NewConnector(dc)
	if err != nil {
		return nil, dsnError(cfg.DSN, err)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()

	sqldb := sql.OpenDB(readCommitted{connector})
	sqldb.SetMaxOpenConns(cfg.MaxOpenConns)
	sqldb.SetMaxIdleConns(cfg.MaxIdleConns)
	sqldb.SetConnMaxLifetime(cfg.ConnMaxLifetime)
	sqldb.SetConnMaxIdleTime(cfg.ConnMaxIdleTime)
	pingCtx, cancelPing := context.WithTimeout(ctx, dc.Timeout+cfg.Timeout)
	defer cancelPing()
	if err := sqldb.PingContext(pingCtx); err != nil {
		_ = sqldb.Close()
		return nil, startError(cfg.DSN, "connect", err)
	}
	if cfg.ReadOnly {
		err = checkSchema(ctx, sqldb)
	} else {
		err = migrateSchema(ctx, dc, cfg.StartTimeout)
	}
	if err != nil {
		_ = sqldb.Close()
		return nil, startError(cfg.DSN, "schema", err)
	}
	s := &EventStore{
		db:       bun.NewDB(sqldb, mysqldialect.New(mysqldialect.WithTimeLocation("UTC"))),
		cfg:      cfg,
		appended: make(chan struct{}, 1),
		database: dc.DBName,
		locks:    map[*serverLock]struct{}{},
	}
	s.appends = batch.New(cfg.AppendBatch, cfg.AppendSlots, s.appendBatch)
	return s, nil
}

// readCommitted opens connections whose transactions run at READ COMMITTED, the level every
// transaction of the store needs: its plain reads see what others committed since the
// transaction began, and its locking reads take no gap locks. Set once per connection, it
// spares every transaction the round trip of a SET TRANSACTION before it begins.
type readCommitted struct{ driver.Connector }

// Connect opens a connection and sets its session's isolation level.
func (c readCommitted) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	exec, ok := conn.(driver.ExecerContext)
	if !ok {
		_ = conn.Close()
		return nil, fmt.Errorf("mysql: the driver's connection %T cannot execute statements", conn)
	}
	if _, err := exec.ExecContext(ctx, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED", nil); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return conn, nil
}

// startError is an error of Open: one line showing the DSN, with the password redacted.
func startError(dsn, step string, err error) error {
	if unavailable(err) {
		return fmt.Errorf("mysql: DSN %s: %s: %w: %w", redact(dsn), step, ports.ErrUnavailable, err)
	}
	return fmt.Errorf("mysql: DSN %s: %s: %w", redact(dsn), step, err)
}

// Close lets go of the locks held and closes the connections. Calls made after it fail.
func (s *EventStore) Close() error {
	s.locksMu.Lock()
	held := slices.Collect(maps.Keys(s.locks))
	s.locksMu.Unlock()
	for _, l := range held {
		l.Release()
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("mysql: close: %w", err)
	}
	return nil
}

// bound returns ctx limited to the store's per-call timeout.
func (s *EventStore) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.Timeout)
}

// Ping asks the server for a round trip.
func (s *EventStore) Ping(ctx context.Context) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if err := s.db.PingContext(ctx); err != nil {
		return wrap("ping", err)
	}
	return nil
}

// Load returns the post's events above version after, in version order; none for an unknown
// post. The (stream_id, version) key serves it as one range read.
func (s *EventStore) Load(ctx context.Context, postID string, after int64) ([]post.Event, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var rows []eventRow
	if err := s.db.NewSelect().Model(&rows).Where("stream_id = ? AND version > ?", postID, after).
		Order("version").Scan(ctx); err != nil {
		return nil, wrap("load "+postID, err)
	}
	events, err := fromEventRows(rows)
	if err != nil {
		return nil, fmt.Errorf("mysql: load %s: %w", postID, err)
	}
	return events, nil
}

// fromEventRows decodes the rows of a read, in their order.
func fromEventRows(rows []eventRow) ([]post.Event, error) {
	events := make([]post.Event, len(rows))
	for i, r := range rows {
		e, err := fromEventRow(r)
		if err != nil {
			return nil, err
		}
		events[i] = e
	}
	return events, nil
}

// ReadAll returns up to limit events with a position greater than after, in position order.
// It sees committed events only: an append still in flight may commit later with a lower
// position than the last one returned.
func (s *EventStore) ReadAll(ctx context.Context, after int64, limit int) ([]ports.Recorded, error) {
	if limit <= 0 {
		return nil, nil
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var rows []eventRow
	err := s.db.NewSelect().Model(&rows).Where("position > ?", after).Order("position").Limit(int64(limit)).Scan(ctx)
	if err != nil {
		return nil, wrap(fmt.Sprintf("read all after %d", after), err)
	}
	out := make([]ports.Recorded, len(rows))
	for i, r := range rows {
		e, err := fromEventRow(r)
		if err != nil {
			return nil, fmt.Errorf("mysql: read all after %d: %w", after, err)
		}
		out[i] = ports.Recorded{Position: r.Position, Event: e}
	}
	return out, nil
}

// ReadStreams returns up to limit events after the position after in stream order, as one
// range read of the (stream_id, version) key. It sees committed events only.
func (s *EventStore) ReadStreams(ctx context.Context, after ports.StreamPosition, limit int) ([]post.Event, error) {
	if limit <= 0 {
		return nil, nil
	}
	op := fmt.Sprintf("read streams after %s v%d", after.PostID, after.Version)
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var rows []eventRow
	err := s.db.NewSelect().Model(&rows).
		Where("stream_id > ? OR (stream_id = ? AND version > ?)", after.PostID, after.PostID, after.Version).
		Order("stream_id", "version").Limit(int64(limit)).Scan(ctx)
	if err != nil {
		return nil, wrap(op, err)
	}
	events, err := fromEventRows(rows)
	if err != nil {
		return nil, fmt.Errorf("mysql: %s: %w", op, err)
	}
	return events, nil
}

// Lookup returns the record of key, or ports.ErrNotFound if there is none or it expired.
func (s *EventStore) Lookup(ctx context.Context, key string) (ports.IdempotencyRecord, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	op := fmt.Sprintf("idempotency key %q", key)
	var row keyRow
	err := s.db.NewSelect().Model(&row).
		Where("idempotency_key = ?", key).
		Where("expires_at > ?", dbTime(s.cfg.Now())).
		Scan(ctx)
	// The column compares with PAD SPACE, so "k" finds "k "; only the very key counts.
	if errors.Is(err, sql.ErrNoRows) || (err == nil && row.Key != key) {
		return ports.IdempotencyRecord{}, fmt.Errorf("mysql: %s: %w", op, ports.ErrNotFound)
	}
	if err != nil {
		return ports.IdempotencyRecord{}, wrap(op, err)
	}
	rec, err := fromKeyRow(row)
	if err != nil {
		return ports.IdempotencyRecord{}, fmt.Errorf("mysql: %s: %w", op, err)
	}
	return rec, nil
}

// Append stores the events, one outbox row per change and the idempotency record in one
// transaction, which it shares with concurrent appends (see AppendBatch): each append in it is
// checked on its own and either written whole or not at all, and Append returns only after the
// transaction committed. The unique key (stream_id, version) decides between concurrent appends
// at one expected version: the first insert wins and the others fail with a duplicate entry, or
// — when InnoDB resolves their lock waits as a deadlock and the retries run out — with a
// deadlock; both mean ErrConflict. An append whose ctx ends while it waits for a transaction is
// withdrawn; once its transaction began, Append waits for the outcome.
func (s *EventStore) Append(ctx context.Context, a ports.Append) error {
	op := "append " + a.PostID
	if s.cfg.ReadOnly {
		return fmt.Errorf("mysql: %s: %w", op, errReadOnlyStore)
	}
	if err := a.Check(); err != nil {
		return fmt.Errorf("mysql: %s: %w", op, err)
	}
	now := s.cfg.Now()
	rows, err := s.rowsOf(a, now)
	if err != nil {
		return fmt.Errorf("mysql: %s: %w", op, err)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if a.Erases() {
		return s.appendErasure(ctx, &pending{ctx: ctx, a: a, rows: rows, now: now})
	}
	answer, err := s.appends.Do(ctx, &pending{ctx: ctx, a: a, rows: rows, now: now})
	if err != nil {
		return wrap(op, err)
	}
	if answer != nil {
		return answer
	}
	if a.Idempotency != nil {
		s.purgeSometimes(ctx, now)
	}
	return nil
}

// appendRows are the rows of one append, encoded before its transaction begins: its events,
// the states of their outbox rows, and its idempotency record.
type appendRows struct {
	events []eventRow
	states []string
	key    *keyRow
}

func (s *EventStore) rowsOf(a ports.Append, now time.Time) (appendRows, error) {
	var rows appendRows
	idemKey := ""
	if a.Idempotency != nil {
		idemKey = a.Idempotency.Key
		k, err := toKeyRow(*a.Idempotency, now)
		if err != nil {
			return rows, err
		}
		rows.key = &k
	}
	for _, c := range a.Changes {
		r, err := toEventRow(c.Event, c.Metadata, idemKey)
		if err != nil {
			return rows, err
		}
		state, err := encodeState(c.State)
		if err != nil {
			return rows, err
		}
		rows.events = append(rows.events, r)
		rows.states = append(rows.states, state)
	}
	return rows, nil
}

// outboxOf returns the outbox rows of inserted events, which have their positions, with the
// states encoded for them.
func outboxOf(events []eventRow, states []string) []outboxRow {
	out := make([]outboxRow, len(events))
	for i, r := range events {
		out[i] = outboxRow{Position: r.Position, StreamID: r.StreamID, Version: r.Version, State: states[i]}
	}
	return out
}

// storeKey stores an append's idempotency record, or returns ErrDuplicate if its key is taken.
func storeKey(ctx context.Context, tx bun.Tx, op string, k *keyRow, now time.Time) error {
	forget, insert := keyStatements(k, now)
	if _, err := tx.ExecContext(ctx, forget.query, forget.args...); err != nil {
		return keep(op, err)
	}
	if _, err := tx.ExecContext(ctx, insert.query, insert.args...); err != nil {
		if serverError(err) == errDupEntry {
			return fmt.Errorf("mysql: %s: idempotency key %q: %w", op, k.Key, ports.ErrDuplicate)
		}
		return keep(op, err)
	}
	return nil
}

// statement is an SQL statement and its parameters.
type statement struct {
	query string
	args  []any
}

// keyStatements are the statements that store an idempotency record: forget an expired record
// of the same key, as Lookup already does, then insert the record, which fails on the primary
// key when the key is taken.
func keyStatements(k *keyRow, now time.Time) (forget, insert statement) {
	return statement{"DELETE FROM idempotency_keys WHERE idempotency_key = ? AND expires_at <= ?",
			[]any{k.Key, dbTime(now)}},
		statement{"INSERT INTO idempotency_keys (idempotency_key, fingerprint, created, state, created_at, expires_at) " +
			"VALUES (?, ?, ?, ?, ?, ?)", []any{k.Key, k.Fingerprint, k.Created, k.State, k.CreatedAt, k.ExpiresAt}}
}

// write runs the statements of one append in tx, one after the other, as the only append of a
// transaction would. Errors a caller can act on are translated to port errors; a deadlock is
// returned as it came, for the batch to retry.
func (s *EventStore) write(ctx context.Context, tx bun.Tx, p *pending) error {
	a, rows := p.a, p.rows
	op := "append " + a.PostID
	if k := rows.key; k != nil {
		if err := storeKey(ctx, tx, op, k, p.now); err != nil {
			return err
		}
	}
	if len(a.Changes) == 0 {
		return nil
	}
	// A plain (non-locking) read: it takes no gap locks. If another append commits this
	// version meanwhile, the insert below hits the unique key instead. Rows written earlier
	// in this transaction, by an append of the same batch, are seen.
	var current int64
	err := tx.NewSelect().Model((*eventRow)(nil)).ColumnExpr("COALESCE(MAX(version), 0)").
		Where("stream_id = ?", a.PostID).Scan(ctx, &current)
	if err != nil {
		return keep(op, err)
	}
	if current != a.ExpectedVersion {
		return conflict(a, current)
	}
	// A copy: the positions of one attempt must not leak into the next.
	events := slices.Clone(rows.events)
	for i := range events {
		r := &events[i]
		if _, err := tx.NewInsert().Model(r).Exec(ctx); err != nil {
			if serverError(err) == errDupEntry && strings.Contains(err.Error(), "events_stream_version") {
				return fmt.Errorf("mysql: %s: version %d is taken: %w", op, r.Version, ports.ErrConflict)
			}
			return keep(op, err)
		}
		if r.Position == 0 {
			return fmt.Errorf("mysql: %s: the server returned no position for version %d", op, r.Version)
		}
	}
	outbox := outboxOf(events, rows.states)
	if _, err := tx.NewInsert().Model(&outbox).Exec(ctx); err != nil {
		return keep(op, err)
	}
	return nil
}

// conflict is the answer to an append whose stream is at current, or later, instead of its
// expected version. The version a batch decides on is a lower bound when it comes from what
// the store has seen (see seenVersions), and a read one may be overtaken before the commit, so
// the message claims no more than that.
func conflict(a ports.Append, current int64) error {
	return fmt.Errorf("mysql: append %s: expected version %d, stream is at %d or later: %w",
		a.PostID, a.ExpectedVersion, current, ports.ErrConflict)
}

// keep is wrap, except that a deadlock is returned as it came, for Append to translate.
func keep(op string, err error) error {
	if serverError(err) == errLockDeadlock {
		return err
	}
	return wrap(op, err)
}

// purgeSometimes deletes expired idempotency records when no append of this process did for
// purgeEvery. Expired records are invisible already; this only keeps the table small.
func (s *EventStore) purgeSometimes(ctx context.Context, now time.Time) {
	last := s.lastPurge.Load()
	if now.UnixNano()-last < int64(purgeEvery) || !s.lastPurge.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	if _, err := s.purgeExpired(context.WithoutCancel(ctx)); err != nil {
		s.cfg.Log.Warn("deleting expired idempotency records failed; trying again later", "error", err)
	}
}

// purgeExpired deletes up to 1000 expired idempotency records, oldest first, and returns how
// many it deleted. Appends call it now and then.
func (s *EventStore) purgeExpired(ctx context.Context) (int64, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	res, err := s.db.NewDelete().Model((*keyRow)(nil)).
		Where("expires_at <= ?", dbTime(s.cfg.Now())).OrderExpr("expires_at").Limit(purgeBatch).Exec(ctx)
	if err != nil {
		return 0, wrap("purge expired idempotency keys", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, wrap("purge expired idempotency keys", err)
	}
	return n, nil
}
