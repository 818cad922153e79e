package mysql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"sync"

	"hexapost/ports"
)

// Heads returns up to limit posts whose id comes after the id after, in id order, each with the
// version of its last event. The (stream_id, version) key serves it without a sort: the server
// reads the last entry of each stream_id from the key, in key order, and stops at limit.
func (s *EventStore) Heads(ctx context.Context, after string, limit int) ([]ports.StreamHead, error) {
	if limit <= 0 {
		return nil, nil
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var heads []struct {
		StreamID string `bun:"stream_id"`
		Version  int64  `bun:"version"`
	}
	err := s.db.NewRaw("SELECT stream_id, MAX(version) AS version FROM events WHERE stream_id > ? "+
		"GROUP BY stream_id ORDER BY stream_id LIMIT ?", after, limit).Scan(ctx, &heads)
	if err != nil {
		return nil, wrap(fmt.Sprintf("heads after %q", after), err)
	}
	out := make([]ports.StreamHead, len(heads))
	for i, h := range heads {
		out[i] = ports.StreamHead{PostID: h.StreamID, Version: h.Version}
	}
	return out, nil
}

// TryLock takes the named lock with GET_LOCK on a connection of its own, kept out of the pool
// until Release: the server frees the lock when that connection ends, however its process ends.
// Lock names are server-wide, so the lock is named after the database too, and deployments on
// other databases of the server do not share it. A lock held by this process on another
// connection is taken as well: TryLock fails then.
func (s *EventStore) TryLock(ctx context.Context, name string) (ports.Lock, bool, error) {
	op := "lock " + name
	ctx, cancel := s.bound(ctx)
	defer cancel()
	conn, err := s.db.DB.Conn(ctx)
	if err != nil {
		return nil, false, wrap(op, err)
	}
	l := &serverLock{s: s, conn: conn, name: serverLockName("hexapost_lock:", s.database+":"+name)}
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, 0)", l.name).Scan(&got); err != nil {
		l.discard()
		return nil, false, wrap(op, err)
	}
	if !got.Valid {
		l.discard()
		return nil, false, fmt.Errorf("mysql: %s: GET_LOCK returned NULL", op)
	}
	if got.Int64 != 1 {
		_ = conn.Close() // it holds no lock: back to the pool
		return nil, false, nil
	}
	s.locksMu.Lock()
	s.locks[l] = struct{}{}
	s.locksMu.Unlock()
	return l, true, nil
}

// serverLock is a named lock held by the session of conn.
type serverLock struct {
	s    *EventStore
	conn *sql.Conn
	name string // on the server
	once sync.Once
}

// Held asks the server whether the lock's session still holds it. Any error means it does not
// know, and so false: the caller is not to act as the holder on a lock it may have lost.
func (l *serverLock) Held(ctx context.Context) bool {
	ctx, cancel := l.s.bound(ctx)
	defer cancel()
	var held sql.NullBool
	err := l.conn.QueryRowContext(ctx, "SELECT IS_USED_LOCK(?) = CONNECTION_ID()", l.name).Scan(&held)
	return err == nil && held.Valid && held.Bool
}

// Release lets go of the lock and closes its connection.
func (l *serverLock) Release() {
	l.once.Do(func() {
		l.s.locksMu.Lock()
		delete(l.s.locks, l)
		l.s.locksMu.Unlock()
		// Released at once for the next taker; closing the connection would free it too, a
		// little later.
		ctx, cancel := l.s.bound(context.Background())
		defer cancel()
		_, _ = l.conn.ExecContext(ctx, "DO RELEASE_LOCK(?)", l.name)
		l.discard()
	})
}

// discard closes the lock's connection instead of returning it to the pool, where it would
// serve other calls while it may still hold the lock.
func (l *serverLock) discard() {
	_ = l.conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = l.conn.Close()
}
