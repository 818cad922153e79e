// Package ports declares what the core needs from infrastructure, as small interfaces with the
// guarantees every implementation must keep and the errors it returns. Adapters implement them;
// the contract suites in test/contract hold every implementation to the same promises.
//
// The package imports only core/post and the standard library.
package ports

import "errors"

// Contract errors. Adapters translate their drivers' errors into these (and wrap the rest), so
// that the core and the HTTP layer never see a driver type.
var (
	// ErrConflict: the write expected a version that is no longer current.
	ErrConflict = errors.New("version conflict")
	// ErrNotFound: the thing asked for does not exist.
	ErrNotFound = errors.New("not found")
	// ErrDuplicate: a unique key (an idempotency key) is taken already.
	ErrDuplicate = errors.New("duplicate key")
	// ErrUnavailable: the backend did not answer in time or is down; the caller may retry later.
	ErrUnavailable = errors.New("backend unavailable")
)
