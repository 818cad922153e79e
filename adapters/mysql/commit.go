package mysql

import (
	"context"
	"database/sql"
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
// The batch is first written with a few statements for all its appends: one read of the
// current versions of its streams, one insert of all the events, one of all the outbox rows.
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
// transaction committed, or the error that ended it.
func (s *EventStore) commitBatch(ctx context.Context, batch []*pending, oneByOne bool) ([]error, error) {
	// READ COMMITTED, the level of every connection of the store (see readCommitted).
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }() // a no-op once committed
	answers := make([]error, len(batch))
	var written []*pending
	if oneByOne {
		written, err = s.writeEach(ctx, tx, batch, answers)
	} else {
		written, err = s.writeTogether(ctx, tx, batch, answers)
	}
	if err != nil {
		return nil, err
	}
	if hook := s.cfg.BeforeCommit; hook != nil {
		for _, p := range written {
			if err := hook(p.ctx, p.a.PostID); err != nil {
				return nil, fmt.Errorf("before commit of %s: %w", p.a.PostID, err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, txDone(ctx, err)
	}
	for _, p := range written {
		if len(p.a.Changes) > 0 {
			select {
			case s.appended <- struct{}{}:
			default: // a signal is pending already; the relay will see this batch too
			}
			break
		}
	}
	return answers, nil
}

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

// writeTogether writes the whole batch with one statement per table. It decides each append's
// expected version from one read of the batch's streams, in batch order, so an append sees the
// appends before it in the batch. An append whose stream is at another version gets
// ErrConflict in answers; anything else that fails for one append returns errOneByOne.
func (s *EventStore) writeTogether(ctx context.Context, tx bun.Tx, batch []*pending, answers []error) ([]*pending, error) {
	versions, err := versionsOf(ctx, tx, batch)
	if err != nil {
		return nil, err
	}
	var (
		written []*pending
		events  []eventRow
	)
	for i, p := range batch {
		a := p.a
		stream := streamKey(a.PostID)
		if len(a.Changes) > 0 && versions[stream] != a.ExpectedVersion {
			if p.rows.key != nil {
				// Alone, this append would report a taken key before the conflict: let the
				// one-by-one path find out which.
				return nil, errOneByOne
			}
			answers[i] = conflict(a, versions[stream])
			continue
		}
		if k := p.rows.key; k != nil {
			if err := storeKey(ctx, tx, "append "+a.PostID, k, p.now); err != nil {
				return nil, oneByOneOr(err)
			}
		}
		versions[stream] += int64(len(a.Changes))
		written = append(written, p)
		events = append(events, p.rows.events...)
	}
	if len(events) == 0 {
		return written, nil
	}
	if err := insertEvents(ctx, tx, events); err != nil {
		return nil, oneByOneOr(err)
	}
	var states []string
	for _, p := range written {
		states = append(states, p.rows.states...)
	}
	if err := insertOutbox(ctx, tx, events, states); err != nil {
		return nil, oneByOneOr(err)
	}
	return written, nil
}

// insertEvents inserts the events in one statement. Their positions are not read back:
// insertOutbox finds them by event id.
func insertEvents(ctx context.Context, tx bun.Tx, events []eventRow) error {
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
	_, err := tx.ExecContext(ctx, q.String(), args...)
	return err
}

// insertOutbox inserts the outbox rows of events just inserted in tx, with their states, in one
// statement that takes their positions from the events table: an insert returns only the first
// position it took, and the others need not be consecutive under every innodb_autoinc_lock_mode.
// The events are found by their unique event ids; rows this transaction wrote, so the read
// waits for nobody.
func insertOutbox(ctx context.Context, tx bun.Tx, events []eventRow, states []string) error {
	var q strings.Builder
	args := make([]any, 0, 3*len(events))
	q.WriteString("INSERT INTO outbox (position, stream_id, version, state) " +
		"SELECT e.position, e.stream_id, e.version, CASE e.event_id")
	for i, e := range events {
		q.WriteString(" WHEN ? THEN ?")
		args = append(args, e.EventID, states[i])
	}
	q.WriteString(" END FROM events AS e WHERE e.event_id IN (?)")
	ids := make([]string, len(events))
	for i, e := range events {
		ids[i] = e.EventID
	}
	args = append(args, bun.List(ids))
	res, err := tx.NewRaw(q.String(), args...).Exec(ctx)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err == nil && n != int64(len(events)) {
		return fmt.Errorf("%d outbox rows inserted for %d events", n, len(events))
	}
	return nil
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

// versionsOf reads the current version of every stream the batch appends events to (a plain,
// non-locking read, as write does), keyed by streamKey; a stream with no events is absent.
// Each stream has its own MAX subquery, which the (stream_id, version) key answers from its
// last entry: a GROUP BY over an IN list of one stream is run as a scan of the whole stream.
func versionsOf(ctx context.Context, tx bun.Tx, batch []*pending) (map[string]int64, error) {
	versions := make(map[string]int64, len(batch))
	var (
		q    strings.Builder
		args []any
	)
	seen := make(map[string]bool, len(batch))
	for _, p := range batch {
		k := streamKey(p.a.PostID)
		if len(p.a.Changes) == 0 || seen[k] {
			continue
		}
		seen[k] = true
		if len(args) > 0 {
			q.WriteString(" UNION ALL ")
		}
		q.WriteString("SELECT ? AS stream_id, (SELECT MAX(version) FROM events WHERE stream_id = ?) AS version")
		args = append(args, p.a.PostID, p.a.PostID)
	}
	if len(args) == 0 {
		return versions, nil
	}
	rows, err := tx.QueryContext(ctx, q.String(), args...)
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
		}
	}
	return versions, rows.Err()
}
