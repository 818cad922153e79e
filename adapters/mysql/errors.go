package mysql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	gomysql "github.com/go-sql-driver/mysql"

	"hexapost/ports"
)

// Server error numbers the store translates.
const (
	errDupEntry         = 1062 // ER_DUP_ENTRY: a unique key is taken
	errNoSuchTable      = 1146 // ER_NO_SUCH_TABLE
	errLockWaitTimeout  = 1205 // ER_LOCK_WAIT_TIMEOUT
	errLockDeadlock     = 1213 // ER_LOCK_DEADLOCK: the transaction was rolled back
	errConCount         = 1040 // ER_CON_COUNT_ERROR: too many connections
	errServerShutdown   = 1053 // ER_SERVER_SHUTDOWN
	errAbortingConn     = 1152 // ER_ABORTING_CONNECTION
	errReadOnly         = 1290 // ER_OPTION_PREVENTS_STATEMENT, e.g. a --read-only replica
	errQueryInterrupted = 1317 // ER_QUERY_INTERRUPTED
	errConnKilled       = 1927 // MariaDB ER_CONNECTION_KILLED
	errClientTimeout    = 4031 // MySQL 8 ER_CLIENT_INTERACTION_TIMEOUT
)

// errReadOnlyStore is the answer to a write on a store opened with Config.ReadOnly.
var errReadOnlyStore = errors.New("the store is open read-only")

// serverError returns the server's error number, or 0 when err does not come from the server.
func serverError(err error) uint16 {
	var me *gomysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

// unavailable reports whether err means that the server is down, unreachable, overloaded or
// too slow, rather than that the request was wrong: a later retry may succeed.
func unavailable(err error) bool {
	switch serverError(err) {
	case errLockWaitTimeout, errConCount, errServerShutdown, errAbortingConn, errReadOnly,
		errQueryInterrupted, errConnKilled, errClientTimeout:
		return true
	}
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, gomysql.ErrInvalidConn) ||
		errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) ||
		errors.As(err, &ne)
}

// txDone explains sql.ErrTxDone: database/sql rolls a transaction back when its context
// ends, and then reports only that the transaction is over.
func txDone(ctx context.Context, err error) error {
	if errors.Is(err, sql.ErrTxDone) && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// wrap adds what the store was doing to a driver error, and ports.ErrUnavailable when the
// server could not serve it, so that the caller can answer 503 and retry later.
func wrap(op string, err error) error {
	if unavailable(err) {
		return fmt.Errorf("mysql: %s: %w: %w", op, ports.ErrUnavailable, err)
	}
	return fmt.Errorf("mysql: %s: %w", op, err)
}
