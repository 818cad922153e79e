// Package projection holds the read side's use cases: apply a published change to the current
// views and the history, and answer reads that may wait for the projection to catch up.
//
// Applying is idempotent and order-insensitive: the current view keeps the highest version it
// has seen and history entries are keyed by (post id, version), so duplicates and reordering on
// the bus converge to the same read model with no distributed transaction.
package projection
