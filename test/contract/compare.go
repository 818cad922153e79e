package contract

import (
	"hexapost/core/post"
	"hexapost/ports"
)

// The utc functions put every time in UTC and drop monotonic clock readings, so that values
// read back from a backend compare with reflect.DeepEqual to what was written whenever they
// denote the same instants. A backend may return times in another location; it must not
// return other instants.

func utcEvent(e post.Event) post.Event {
	e.OccurredAt = e.OccurredAt.UTC()
	return e
}

func utcState(s post.State) post.State {
	s.CreatedAt, s.UpdatedAt = s.CreatedAt.UTC(), s.UpdatedAt.UTC()
	return s
}

func utcChange(c ports.Change) ports.Change {
	return ports.Change{Event: utcEvent(c.Event), State: utcState(c.State)}
}

func utcHistory(h ports.HistoryEntry) ports.HistoryEntry {
	h.OccurredAt, h.State = h.OccurredAt.UTC(), utcState(h.State)
	return h
}

func utcRecord(r ports.IdempotencyRecord) ports.IdempotencyRecord {
	r.CreatedAt, r.State = r.CreatedAt.UTC(), utcState(r.State)
	return r
}

func utcAll[T any](xs []T, f func(T) T) []T {
	out := make([]T, len(xs))
	for i, x := range xs {
		out[i] = f(x)
	}
	return out
}
