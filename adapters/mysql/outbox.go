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

	// The primary key is walked in order, so only the rows returned are locked; a plan that
	// sorts would lock every row it read.
	var claimed []outboxRow
	err = tx.NewSelect().Model(&claimed).ForceIndex("PRIMARY").Order("position").Limit(int64(maxChanges)).
		For("UPDATE SKIP LOCKED").Scan(ctx)
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
	changes, err := changesOf(ctx, tx, kept)
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

// markPublished deletes the outbox rows in one statement that touches only them. A plain
// DELETE … WHERE position IN (…) may be run as a table scan (the optimizer picks one when it
// believes the list covers most of a small table, and ignores index hints on DELETE), and a
// scanning DELETE waits for every row it reads, including the rows other relays hold: two
// relays deleting their batches then deadlock. Here the positions are a derived table joined
// first (STRAIGHT_JOIN fixes the order) to the primary key, so each row is reached by an
// equality lookup and only rows whose locks this transaction holds are touched.
func markPublished(ctx context.Context, tx bun.Tx, rows []outboxRow) error {
	var q strings.Builder
	q.WriteString("DELETE o FROM (SELECT ? AS position")
	args := make([]any, len(rows))
	for i, r := range rows {
		if i > 0 {
			q.WriteString(" UNION ALL SELECT ?")
		}
		args[i] = r.Position
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
func inPostOrder(ctx context.Context, tx bun.Tx, claimed []outboxRow) ([]outboxRow, error) {
	streams := make([]string, 0, len(claimed))
	mine := make(map[int64]bool, len(claimed))
	seen := map[string]bool{}
	for _, r := range claimed {
		mine[r.Position] = true
		if !seen[r.StreamID] {
			seen[r.StreamID] = true
			streams = append(streams, r.StreamID)
		}
	}
	var pending []outboxRow
	err := tx.NewSelect().Model(&pending).Column("position", "stream_id").
		Where("stream_id IN (?)", bun.List(streams)).
		Where("position <= ?", claimed[len(claimed)-1].Position).
		Order("position").Scan(ctx)
	if err != nil {
		return nil, err
	}
	ok := make(map[int64]bool, len(claimed))
	blocked := map[string]bool{} // posts with an earlier row held by another relay
	for _, r := range pending {
		switch {
		case blocked[r.StreamID]:
		case mine[r.Position]:
			ok[r.Position] = true
		default:
			blocked[r.StreamID] = true
		}
	}
	kept := claimed[:0:0]
	for _, r := range claimed {
		if ok[r.Position] {
			kept = append(kept, r)
		}
	}
	return kept, nil
}

// changesOf rebuilds the changes of outbox rows from their events (with their metadata) and
// stored states.
func changesOf(ctx context.Context, tx bun.Tx, rows []outboxRow) ([]ports.Change, error) {
	var events []eventRow
	err := tx.NewSelect().Model(&events).Where("position IN (?)", bun.List(positionsOf(rows))).
		Order("position").Scan(ctx)
	if err != nil {
		return nil, wrap("relay: read events", err)
	}
	if len(events) != len(rows) {
		return nil, fmt.Errorf("mysql: relay: %d outbox rows but %d events", len(rows), len(events))
	}
	changes := make([]ports.Change, len(rows))
	for i, r := range rows {
		if events[i].Position != r.Position {
			return nil, fmt.Errorf("mysql: relay: no event at position %d", r.Position)
		}
		e, err := fromEventRow(events[i])
		if err != nil {
			return nil, fmt.Errorf("mysql: relay: %w", err)
		}
		md, err := metadataOf(events[i])
		if err != nil {
			return nil, fmt.Errorf("mysql: relay: %w", err)
		}
		st, err := decodeState(r.State)
		if err != nil {
			return nil, fmt.Errorf("mysql: relay: position %d: %w", r.Position, err)
		}
		changes[i] = ports.Change{Event: e, State: st, Metadata: md}
	}
	return changes, nil
}

func positionsOf(rows []outboxRow) []int64 {
	out := make([]int64, len(rows))
	for i, r := range rows {
		out[i] = r.Position
	}
	return out
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
