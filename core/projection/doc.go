// Package projection holds the read side's use case: apply a published change to the current
// views and the history, if it is newer than what they hold.
//
// Applying is idempotent and order-insensitive: the current view keeps the highest version it
// has seen and history entries are keyed by (post id, version), so duplicates and reordering on
// the bus converge to the same read model with no distributed transaction.
package projection
