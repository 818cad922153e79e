package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/uptrace/bun"

	"hexapost/ports"
)

// Relay hands up to maxChanges unpublished changes to publish, in position order, and deletes
// their outbox rows in the same transaction when publish returns nil.
//
// The rows are claimed with SELECT … FOR UPDATE SKIP LOCKED, so concurrent relays (in this
// process or others) never get the same row while it is in flight, and do not wait for each
// other. SKIP LOCKED alone could hand a relay a post's version 2 while another relay is still
// publishing its version 1, so a claimed row is kept only if every earlier unpublished row of
// its post is kept too; the others stay in the outbox for a later round. When publish fails,
// the transaction rolls back and every claimed row is handed out again later.
//
// Nothing is skipped when positions commit out of order: there is no watermark, a row is
// claimable from the moment its append commits until its own publish succeeded.
func (s *EventStore) Relay(ctx context.Context, maxChanges int,
	publish func(context.Context, []ports.Change) error) (int, error) {
	if s.cfg.ReadOnly {
		return 0, fmt.Errorf("mysql: relay: %w", errReadOnlyStore)
	}
	if maxChanges <= 0 {
		return 0, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RelayTimeout)
	defer cancel()
	// READ COMMITTED, the level of every connection of the store (see readCommitted): the
	// locking read takes no gap locks, so appends are never held up by a relay, and the order
	// check below sees what other relays have committed since.
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, wrap("relay", err)
	}
	defer func() { _ = tx.Rollback() }() // a no-op once committed; also runs if publish panics

	claimed, err := claim(ctx, tx, maxChanges)
	if err != nil {
		return 0, wrap("relay: claim", err)
	}
	if len(claimed) == 0 {
		return 0, nil
	}
	kept, err := inPostOrder(ctx, tx, claimed)
	if err != nil {
		return 0, wrap("relay: check order", err)
	}
	if len(kept) < len(claimed) {
		s.cfg.Log.Debug("outbox rows left for a later round: an earlier change of their post is in flight",
			"claimed", len(claimed), "kept", len(kept))
	}
	if len(kept) == 0 {
		return 0, nil
	}
	changes, err := changesOf(kept)
	if err != nil {
		return 0, err
	}
	if err := publish(ctx, changes); err != nil {
		return 0, fmt.Errorf("mysql: relay %d changes: %w", len(changes), err)
	}
	if err := markPublished(ctx, tx, kept); err != nil {
		return 0, wrap(fmt.Sprintf("relay: mark %d changes published", len(kept)), err)
	}
	if err := tx.Commit(); err != nil {
		// They were published; they will be published again (a duplicate, never a loss).
		return 0, wrap(fmt.Sprintf("relay: mark %d changes published", len(kept)), txDone(ctx, err))
	}
	return len(kept), nil
}

// claimedRow is an outbox row a relay holds, with the event at its position.
type claimedRow struct {
	event eventRow
	state string // JSON: stateDoc
}

// claimQuery claims the first unlocked outbox rows and reads their events in the same
// statement. The outbox's primary key is walked in order and each event is reached by an
// equality lookup on the events' own, so only the rows returned are locked. Both index hints are
// needed: on small tables the optimizer would otherwise scan both and join them through a
// buffer, then sort, locking every row it read (and the sort would give up the walk in order
// that SKIP LOCKED relies on). The events' rows are locked too, which holds up nothing but an
// erasure, the only update of events, which then waits for the relay to publish them: reads of
// them do not lock, and an insert that collides with one of their keys fails without waiting
// (its unique check locks the secondary index entry, not the row).
const claimQuery = "SELECT o.position, o.state, e.event_id, e.stream_id, e.version, e.type, e.data, " +
	"e.metadata, e.occurred_at FROM outbox AS o FORCE INDEX (PRIMARY) " +
	"STRAIGHT_JOIN events AS e FORCE INDEX (PRIMARY) ON e.position = o.position " +
	"ORDER BY o.position LIMIT ? FOR UPDATE SKIP LOCKED"

// claim locks up to maxChanges unpublished rows in position order, skipping those that other
// transactions hold, and returns them with their events.
func claim(ctx context.Context, tx bun.Tx, maxChanges int) ([]claimedRow, error) {
	rows, err := tx.QueryContext(ctx, claimQuery, maxChanges)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	var out []claimedRow
	for rows.Next() {
		var c claimedRow
		e := &c.event
		if err := rows.Scan(&e.Position, &c.state, &e.EventID, &e.StreamID, &e.Version, &e.Type, &e.Data,
			&e.Metadata, &e.OccurredAt); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// markPublished deletes the outbox rows in one statement that touches only them. A plain
// DELETE … WHERE position IN (…) may be run as a table scan (the optimizer picks one when it
// believes the list covers most of a small table, and ignores index hints on DELETE), and a
// scanning DELETE waits for every row it reads, including the rows other relays hold: two
// relays deleting their batches then deadlock. Here the positions are a derived table joined
// first (STRAIGHT_JOIN fixes the order) to the primary key, so each row is reached by an
// equality lookup and only rows whose locks this transaction holds are touched.
func markPublished(ctx context.Context, tx bun.Tx, rows []claimedRow) error {
	var q strings.Builder
	q.WriteString("DELETE o FROM (SELECT ? AS position")
	args := make([]any, len(rows))
	for i, r := range rows {
		if i > 0 {
			q.WriteString(" UNION ALL SELECT ?")
		}
		args[i] = r.event.Position
	}
	q.WriteString(") AS published STRAIGHT_JOIN outbox AS o ON o.position = published.position")
	res, err := tx.NewRaw(q.String(), args...).Exec(ctx)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err == nil && n != int64(len(rows)) {
		return fmt.Errorf("deleted %d outbox rows of %d claimed", n, len(rows))
	}
	return nil
}

// inPostOrder returns the claimed rows (in position order) that may be published now: those
// whose every earlier unpublished row of the same post was claimed by this transaction too.
// The rows of other relays are seen with a plain read, which does not wait for their locks.
func inPostOrder(ctx context.Context, tx bun.Tx, claimed []claimedRow) ([]claimedRow, error) {
	streams := make([]string, 0, len(claimed))
	mine := make(map[int64]bool, len(claimed))
	seen := map[string]bool{}
	for _, c := range claimed {
		mine[c.event.Position] = true
		if !seen[c.event.StreamID] {
			seen[c.event.StreamID] = true
			streams = append(streams, c.event.StreamID)
		}
	}
	rows, err := tx.QueryContext(ctx, "SELECT position, stream_id FROM outbox WHERE stream_id IN (?) "+
		"AND position <= ? ORDER BY position", bun.List(streams), claimed[len(claimed)-1].event.Position)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	ok := make(map[int64]bool, len(claimed))
	blocked := map[string]bool{} // posts with an earlier row held by another relay
	for rows.Next() {
		var (
			position int64
			stream   string
		)
		if err := rows.Scan(&position, &stream); err != nil {
			return nil, err
		}
		switch {
		case blocked[stream]:
		case mine[position]:
			ok[position] = true
		default:
			blocked[stream] = true
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	kept := claimed[:0:0]
	for _, c := range claimed {
		if ok[c.event.Position] {
			kept = append(kept, c)
		}
	}
	return kept, nil
}

// changesOf rebuilds the changes of claimed rows from their events (with their metadata) and
// stored states.
func changesOf(claimed []claimedRow) ([]ports.Change, error) {
	changes := make([]ports.Change, len(claimed))
	for i, c := range claimed {
		e, err := fromEventRow(c.event)
		if err != nil {
			return nil, fmt.Errorf("mysql: relay: %w", err)
		}
		md, err := metadataOf(c.event)
		if err != nil {
			return nil, fmt.Errorf("mysql: relay: %w", err)
		}
		st, err := decodeState(c.state)
		if err != nil {
			return nil, fmt.Errorf("mysql: relay: position %d: %w", c.event.Position, err)
		}
		changes[i] = ports.Change{Event: e, State: st, Metadata: md}
	}
	return changes, nil
}

// Backlog counts the outbox rows and reads the occurred_at of the first in position order. Both
// come from one plain (non-locking) read, so rows that relays hold are counted and nothing
// waits for them; the head is found through the primary key and the event's own.
func (s *EventStore) Backlog(ctx context.Context) (ports.Backlog, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var (
		count  int
		oldest sql.NullTime
	)
	err := s.db.QueryRowContext(ctx, `SELECT
		(SELECT COUNT(*) FROM outbox),
		(SELECT e.occurred_at FROM events e WHERE e.position = (SELECT MIN(position) FROM outbox))`).
		Scan(&count, &oldest)
	if err != nil {
		return ports.Backlog{}, wrap("outbox backlog", err)
	}
	b := ports.Backlog{Count: count}
	if oldest.Valid && count > 0 {
		b.Oldest = oldest.Time.UTC()
	}
	return b, nil
}

// Appended is signalled after every append of this process that added outbox rows commits.
// The channel holds one signal: appends made before the relay takes it are coalesced into it.
// Appends of other processes are not signalled; the relay's poll finds them.
func (s *EventStore) Appended() <-chan struct{} { return s.appended }
