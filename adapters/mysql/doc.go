// Package mysql keeps the event store, its transactional outbox and the idempotency records in
// one MySQL or MariaDB database, through uptrace/bun and go-sql-driver/mysql.
//
// Each Append is atomic: the events, one outbox row per event and the idempotency record are
// committed together or not at all. The unique key (stream_id, version) makes the database the
// judge of concurrent appends, so of N appenders racing at one expected version exactly one
// commits and the others get ports.ErrConflict.
//
// Concurrent appends share transactions (group commit, through package batch): appends that
// arrive while a transaction runs are committed together in the next one, so one commit, and
// one flush of the log, serves many. Each append in it is still decided on its own: a batch is
// written with one statement per table when every append in it holds, and otherwise again one
// append at a time, each behind a savepoint that a failed append rolls back to. An append is
// answered only after its transaction committed.
//
// A batch costs the server at most two round trips: a read of the versions of the streams the
// store cannot tell about from what it has seen (a lower bound of each stream's version: events
// are never deleted), then the transaction, START TRANSACTION to COMMIT, as one packet of
// statements — which is why the store turns the DSN's multiStatements on.
//
// The outbox holds only what is not published yet: the relay claims rows with
// SELECT … FOR UPDATE SKIP LOCKED, publishes them and deletes them in the same transaction. There
// is no "published up to position N" watermark, because an AUTO_INCREMENT position is taken
// at insert time but becomes visible at commit time: position 10 can appear after 11 was
// published, and a watermark would skip it for good. A row is gone only after its own publish
// succeeded, whatever the order in which positions commit.
//
// Several relays (in one process or many) share the outbox: SKIP LOCKED keeps them off each
// other's rows, and a relay that claimed a post's later change while an earlier change of the
// same post is held by another relay leaves it for a later round, so every post's changes are
// published in version order.
//
// The schema is created and upgraded by Open with bun's migrate package, under a MySQL named
// lock (GET_LOCK), so processes that start together migrate one after the other.
package mysql
