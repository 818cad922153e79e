package mysql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"hexapost/ports"
)

// deadlockRetries bounds how often a batch that InnoDB rolled back as a deadlock victim is run
// again. A retry reads the versions anew, so an append that lost a race now sees the winner and
// gets ErrConflict, while the appends that only shared its transaction go through.
const deadlockRetries = 3

// errOneByOne tells that the statements written for a whole batch at once failed for one of
// its appends: the batch is rolled back and run again one append at a time, to give each append
// its own answer.
var errOneByOne = errors.New("an append of the batch failed: run it one append at a time")

// pending is an append waiting for, or running in, a batch.
type pending struct {
	// ctx is the caller's context. The batch's transaction runs on a context of its own; this
	// one only goes to Config.BeforeCommit.
	ctx  context.Context
	a    ports.Append
	rows appendRows
	now  time.Time
}

// appendBatch commits a batch of appends in one transaction and returns the answer of each:
// nil for an append that committed, its error for one that stored nothing. It answers only
// after the commit returned.
//
// The batch is first written with a few statements for all its appends, sent to the server
// together (see commitTogether): one insert of all the events, one of all the outbox rows.
// When one of those fails for some append (a version taken by a concurrent transaction meanwhile,
// a taken idempotency key), the transaction is rolled back and the batch written again one
// append at a time, each behind a savepoint it rolls back to when the append fails, so the
// others still commit. A batch rolled back as a deadlock victim runs again, up to
// deadlockRetries times. When the transaction fails otherwise every append gets the error.
func (s *EventStore) appendBatch(batch []*pending) []error {
	// The batch serves many callers, so it is bounded by the store's timeout rather than by
	// any caller's context, retries included.
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
	defer cancel()
	oneByOne := false
	for deadlocks := 0; ; {
		answers, err := s.commitBatch(ctx, batch, oneByOne)
		switch {
		case err == nil:
			return answers
		case errors.Is(err, errOneByOne) && !oneByOne:
			oneByOne = true
			continue
		case serverError(err) == errLockDeadlock && deadlocks < deadlockRetries && ctx.Err() == nil:
			deadlocks++
			s.cfg.Log.Debug("append batch was a deadlock victim; running it again",
				"appends", len(batch), "retry", deadlocks)
			continue
		}
		return failAll(ctx, batch, err)
	}
}

// failAll gives every append of a batch whose transaction failed the error, as the append
// would have got it alone.
func failAll(ctx context.Context, batch []*pending, err error) []error {
	answers := make([]error, len(batch))
	for i, p := range batch {
		op := "append " + p.a.PostID
		if serverError(err) == errLockDeadlock {
			answers[i] = fmt.Errorf("mysql: %s: deadlock with a concurrent append: %w", op, ports.ErrConflict)
		} else {
			answers[i] = wrap(op, txDone(ctx, err))
		}
	}
	return answers
}

// commitBatch runs one transaction for the batch. It returns each append's answer when the
// transaction committed, or the error that ended it. The versions the committed appends reached
// are recorded in s.seen.
func (s *EventStore) commitBatch(ctx context.Context, batch []*pending, oneByOne bool) ([]error, error) {
	var (
		answers []error
		written []*pending
		err     error
	)
	if oneByOne {
		answers, written, err = s.commitEach(ctx, batch)
	} else {
		answers, written, err = s.commitTogether(ctx, batch)
	}
	if err != nil {
		return nil, err
	}
	signalled := false
	for _, p := range written {
		if len(p.a.Changes) == 0 {
			continue
		}
		s.seen.put(streamKey(p.a.PostID), p.a.ExpectedVersion+int64(len(p.a.Changes)))
		if !signalled {
			select {
			case s.appended <- struct{}{}:
			default: // a signal is pending already; the relay will see this batch too
			}
			signalled = true
		}
	}
	return answers, nil
}

// commitEach commits the batch in a transaction that writes its appends one after the other
// (see writeEach). It returns each append's answer and the appends committed.
func (s *EventStore) commitEach(ctx context.Context, batch []*pending) ([]error, []*pending, error) {
	// READ COMMITTED, the level of every connection of the store (see readCommitted).
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, nil, err
	}
	defer func() { _ = tx.Rollback() }() // a no-op once committed
	answers := make([]error, len(batch))
	written, err := s.writeEach(ctx, tx, batch, answers)
	if err != nil {
		return nil, nil, err
	}
	if err := s.beforeCommit(written); err != nil {
		return nil, nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, nil, txDone(ctx, err)
	}
	return answers, written, nil
}

// beforeCommit calls Config.BeforeCommit, when set, for every append about to be committed.
func (s *EventStore) beforeCommit(written []*pending) error {
	if hook := s.cfg.BeforeCommit; hook != nil {
		for _, p := range written {
			if err := hook(p.ctx, p.a.PostID); err != nil {
				return fmt.Errorf("before commit of %s: %w", p.a.PostID, err)
			}
		}
	}
	return nil
}

// commitTogether commits the batch in at most two round trips: a read of the versions of the
// streams s.seen does not tell enough about (none, once the store has seen them), then the
// whole transaction — START TRANSACTION, the batch's statements (see together), COMMIT — sent
// as one packet. The server runs the statements in order and stops at
// the first that fails, leaving the transaction open; it is then rolled back, and the error
// returned. It returns each append's answer and the appends committed.
//
// Written statement by statement, the same transaction took five round trips, each a wait for
// the server and a wake-up of both sides; on a loaded machine those waits, more than the work,
// bounded how many appends a second one process could commit.
func (s *EventStore) commitTogether(ctx context.Context, batch []*pending) ([]error, []*pending, error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer func() { _ = conn.Close() }() // back to the pool
	versions, err := s.versionsOf(ctx, conn, batch)
	if err != nil {
		return nil, nil, err
	}
	answers := make([]error, len(batch))
	tx, written, err := together(batch, versions, answers)
	if err != nil {
		return nil, nil, err
	}
	if tx.empty() { // every append conflicted or changes nothing: there is nothing to send
		return answers, written, nil
	}
	hooked := s.cfg.BeforeCommit != nil
	if !hooked {
		tx.add("COMMIT")
	}
	if _, err := conn.ExecContext(ctx, tx.q.String(), tx.args...); err != nil {
		s.rollback(conn)
		return nil, nil, oneByOneOr(err)
	}
	if hooked {
		if err := s.beforeCommit(written); err != nil {
			s.rollback(conn)
			return nil, nil, err
		}
		if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
			s.rollback(conn)
			return nil, nil, err
		}
	}
	return answers, written, nil
}

// rollback ends the transaction a failed packet left open on conn. A connection it cannot
// roll back is closed rather than given back to the pool, which ends the transaction too.
func (s *EventStore) rollback(conn bun.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
	defer cancel()
	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	}
}

// statements is a transaction written as one string of statements separated by semicolons,
// with their parameters, which bun formats into it.
type statements struct {
	q    strings.Builder
	args []any
	n    int
}

// add appends a statement and its parameters.
func (t *statements) add(stmt string, args ...any) {
	if t.n > 0 {
		t.q.WriteString("; ")
	}
	t.q.WriteString(stmt)
	t.args = append(t.args, args...)
	t.n++
}

// empty reports whether nothing but START TRANSACTION was added.
func (t *statements) empty() bool { return t.n <= 1 }

// writeEach writes the appends one after the other, each behind a savepoint: an append that
// fails is rolled back alone and gets its error in answers. It returns the appends written, or
// the error that ends the transaction.
func (s *EventStore) writeEach(ctx context.Context, tx bun.Tx, batch []*pending, answers []error) ([]*pending, error) {
	var written []*pending
	for i, p := range batch {
		if _, err := tx.ExecContext(ctx, "SAVEPOINT one_append"); err != nil {
			return nil, err
		}
		err := s.write(ctx, tx, p)
		if err == nil {
			written = append(written, p)
			continue
		}
		if !appendOnly(err) {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT one_append"); err != nil {
			return nil, err
		}
		answers[i] = err
	}
	return written, nil
}

// appendOnly reports whether err, returned by write, concerns its append alone, the statement
// that failed being undone and the transaction still usable; otherwise the whole transaction
// failed.
func appendOnly(err error) bool {
	if errors.Is(err, ports.ErrConflict) || errors.Is(err, ports.ErrDuplicate) {
		return true
	}
	n := serverError(err)
	return n != 0 && n != errLockDeadlock && !unavailable(err)
}

// together writes the statements of the whole batch: those of the idempotency records, then
// one insert of all the events and one of all their outbox rows. It checks each append's
// expected version against versions (see versionsOf), in batch order, so an append sees the
// appends before it in the batch. An append whose stream is at another version gets
// ErrConflict in answers; an append that would need to be told apart from the
// others returns errOneByOne. It returns the transaction, without its COMMIT, and the appends
// it writes.
func together(batch []*pending, versions map[string]int64, answers []error) (*statements, []*pending, error) {
	tx := &statements{}
	tx.add("START TRANSACTION")
	var (
		written []*pending
		events  []eventRow
		states  []string
	)
	for i, p := range batch {
		a := p.a
		stream := streamKey(a.PostID)
		if len(a.Changes) > 0 && versions[stream] != a.ExpectedVersion {
			if p.rows.key != nil {
				// Alone, this append would report a taken key before the conflict: let the
				// one-by-one path find out which.
				return nil, nil, errOneByOne
			}
			answers[i] = conflict(a, versions[stream])
			continue
		}
		if k := p.rows.key; k != nil {
			// A key taken by another append fails the insert: the one-by-one path then
			// finds out which append it was.
			forget, insert := keyStatements(k, p.now)
			tx.add(forget.query, forget.args...)
			tx.add(insert.query, insert.args...)
		}
		versions[stream] += int64(len(a.Changes))
		written = append(written, p)
		events = append(events, p.rows.events...)
		states = append(states, p.rows.states...)
	}
	if len(events) > 0 {
		insertEvents(tx, events)
		insertOutbox(tx, events, states)
	}
	return tx, written, nil
}

// insertEvents adds the insert of the events, in one statement. Their positions are not read
// back: insertOutbox finds them by event id.
func insertEvents(tx *statements, events []eventRow) {
	var q strings.Builder
	args := make([]any, 0, 7*len(events))
	q.WriteString("INSERT INTO events (event_id, stream_id, version, type, data, metadata, occurred_at) VALUES ")
	for i, e := range events {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(?, ?, ?, ?, ?, ?, ?)")
		args = append(args, e.EventID, e.StreamID, e.Version, e.Type, e.Data, e.Metadata, e.OccurredAt)
	}
	tx.add(q.String(), args...)
}

// insertOutbox adds the insert of the outbox rows of the events insertEvents inserts, with
// their states, in one statement that takes their positions from the events table: an insert
// returns only the first position it took, and the others need not be consecutive under every
// innodb_autoinc_lock_mode. The events are found by their unique event ids, rows the same
// transaction has just written, so the read waits for nobody and finds every one of them.
func insertOutbox(tx *statements, events []eventRow, states []string) {
	var q strings.Builder
	args := make([]any, 0, 3*len(events))
	q.WriteString("INSERT INTO outbox (position, stream_id, version, state) " +
		"SELECT e.position, e.stream_id, e.version, CASE e.event_id")
	for i, e := range events {
		q.WriteString(" WHEN ? THEN ?")
		args = append(args, e.EventID, states[i])
	}
	q.WriteString(" END FROM events AS e WHERE e.event_id IN (")
	for i, e := range events {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("?")
		args = append(args, e.EventID)
	}
	q.WriteString(")")
	tx.add(q.String(), args...)
}

// oneByOneOr returns errOneByOne when err concerns one append only, else err.
func oneByOneOr(err error) error {
	if appendOnly(err) {
		return fmt.Errorf("%w: %w", errOneByOne, err)
	}
	return err
}

// streamKey is the stream id as the stream_id column compares it: CHAR drops trailing spaces.
func streamKey(id string) string { return strings.TrimRight(id, " ") }

// versionsOf returns the version of every stream the batch appends events to, keyed by
// streamKey, as far as the batch needs to know it; a stream known to have no events is
// absent. What s.seen tells is taken from it (see seenVersions); the other streams are read,
// with a plain read outside any transaction: a version taken after it shows as a duplicate
// entry when the batch inserts it.
func (s *EventStore) versionsOf(ctx context.Context, conn bun.Conn, batch []*pending) (map[string]int64, error) {
	versions := make(map[string]int64, len(batch))
	var (
		q    strings.Builder
		args []any
	)
	decided := make(map[string]bool, len(batch))
	for _, p := range batch {
		k := streamKey(p.a.PostID)
		if len(p.a.Changes) == 0 || decided[k] {
			continue
		}
		// The stream's first append in the batch decides: the later ones follow it.
		decided[k] = true
		seen, ok := s.seen.get(k)
		switch {
		case ok && seen >= p.a.ExpectedVersion:
			versions[k] = seen
			continue
		case !ok && p.a.ExpectedVersion == 0:
			continue
		}
		if len(args) > 0 {
			q.WriteString(" UNION ALL ")
		}
		q.WriteString("SELECT ? AS stream_id, (SELECT MAX(version) FROM events WHERE stream_id = ?) AS version")
		args = append(args, p.a.PostID, p.a.PostID)
	}
	if len(args) == 0 {
		return versions, nil
	}
	rows, err := conn.QueryContext(ctx, q.String(), args...)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	for rows.Next() {
		var (
			stream  string
			version sql.NullInt64
		)
		if err := rows.Scan(&stream, &version); err != nil {
			return nil, err
		}
		if version.Valid {
			versions[streamKey(stream)] = version.Int64
			s.seen.put(streamKey(stream), version.Int64)
		}
	}
	return versions, rows.Err()
}
