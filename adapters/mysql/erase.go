package mysql

import (
	"context"
	"fmt"

	"hexapost/ports"
)

// redactState is the SQL expression of a state document without its personal data, marked
// deleted and erased (post.State.Redacted). JSON_EXTRACT gives a JSON true, where a plain TRUE
// would be stored as the number 1.
const redactState = `JSON_SET(state, '$.title', '', '$.content', '', '$.author_name', '', ` +
	`'$.deleted', JSON_EXTRACT('true', '$'), '$.erased', JSON_EXTRACT('true', '$'))`

// appendErasure is Append for an append that erases its post: in a transaction of its own, not
// a shared batch, it writes the append as write does and redacts the post's earlier events,
// its outbox rows and the idempotency records that answer with its state. The unique key
// (stream_id, version) decides between it and a concurrent append, as for any append; nothing
// can follow it, since the aggregate refuses every change of an erased post. A relay publishing
// one of the post's outbox rows holds that row, and the redaction waits until it is published
// and gone.
func (s *EventStore) appendErasure(ctx context.Context, p *pending) error {
	a := p.a
	op := "erase " + a.PostID
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return wrap(op, err)
	}
	defer func() { _ = tx.Rollback() }() // a no-op once committed
	if err := s.write(ctx, tx, p); err != nil {
		return erasureError(op, err)
	}
	erasedAt := a.ExpectedVersion + 1
	redactions := []statement{
		{"UPDATE events SET data = '{}' WHERE stream_id = ? AND version < ?", []any{a.PostID, erasedAt}},
		{"UPDATE outbox SET state = " + redactState + " WHERE stream_id = ? AND version < ?", []any{a.PostID, erasedAt}},
		{"UPDATE idempotency_keys SET fingerprint = '', state = " + redactState + " WHERE post_id = ?", []any{a.PostID}},
	}
	for _, r := range redactions {
		if _, err := tx.ExecContext(ctx, r.query, r.args...); err != nil {
			return erasureError(op, err)
		}
	}
	if err := s.beforeCommit([]*pending{p}); err != nil {
		return fmt.Errorf("mysql: %s: %w", op, err)
	}
	if err := tx.Commit(); err != nil {
		return wrap(op, txDone(ctx, err))
	}
	s.seen.put(streamKey(a.PostID), a.ExpectedVersion+int64(len(a.Changes)))
	select {
	case s.appended <- struct{}{}:
	default: // a signal is pending already
	}
	return nil
}

// erasureError translates what write and the redactions return: a deadlock with a concurrent
// append lost the race, as a taken version does.
func erasureError(op string, err error) error {
	if serverError(err) == errLockDeadlock {
		return fmt.Errorf("mysql: %s: deadlock with a concurrent append: %w", op, ports.ErrConflict)
	}
	return wrap(op, err)
}

// PostsOf returns the ids of the posts whose events name authorName, through the index on the
// author name the events' documents hold.
func (s *EventStore) PostsOf(ctx context.Context, authorName, after string, limit int) ([]string, error) {
	if limit <= 0 {
		return nil, nil
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var ids []string
	err := s.db.NewSelect().Model((*eventRow)(nil)).ColumnExpr("DISTINCT stream_id").
		Where("author_name = ? AND stream_id > ?", authorName, after).
		OrderExpr("stream_id").Limit(int64(limit)).Scan(ctx, &ids)
	if err != nil {
		return nil, wrap("posts of an author", err)
	}
	return ids, nil
}
