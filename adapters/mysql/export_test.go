package mysql

import "context"

// PurgeExpired lets the black-box tests delete expired idempotency records at once instead of
// waiting for an append to do it.
func (s *EventStore) PurgeExpired(ctx context.Context) (int64, error) { return s.purgeExpired(ctx) }
