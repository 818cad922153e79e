// Package memory implements every port in process memory. It is the default configuration, so
// the service runs on a bare machine, and it carries the fast unit and contract tests.
//
// The implementations keep the same promises as the real backends (atomic appends checked
// against the expected version, an outbox relayed once, at-least-once delivery with retries and
// dead letters, a version-guarded read model) and are safe for concurrent use. They hold nothing
// across restarts: a process that stops loses its events, messages and views.
package memory
