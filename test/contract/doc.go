// Package contract holds one test suite per port, written once and run against every adapter,
// so that "passes the contract" means the same for memory, MySQL, Redis, NATS and MongoDB.
//
// Each suite is an importable function taking *testing.T and a factory that returns a fresh,
// isolated instance (a new database, stream or subject, cleaned up with t.Cleanup). The files
// are not _test files so that the adapters' own test packages can call them. Differences
// between implementations are declared in a Features struct passed by the caller, never found
// out by type-asserting the implementation.
//
// The suites never sleep to wait for something: they wait on channels or poll a condition
// until a bounded deadline, so they are as fast as the implementation allows and fail with a
// message instead of hanging.
package contract
