package mysql

import "sync"

// seenMax is how many streams one generation of seenVersions holds: two generations are kept,
// so the store remembers between seenMax and 2·seenMax streams, about 100 bytes each.
const seenMax = 1 << 16

// seenVersions remembers, per stream, the highest version this store has seen it at: read
// from the server or committed by its own appends. Events are never deleted, so a stream is
// at least at the version seen, whatever other processes appended since. That lower bound
// spares a batch the read of its streams' versions when it tells enough:
//   - seen at the append's expected version: the insert of the next one either succeeds or,
//     when another process got there first, fails on the unique key, which sends the batch one
//     append at a time, where each reads its stream's version;
//   - seen above it: the append conflicts, whatever happened since;
//   - never seen, and the append creates the stream: the insert of version 1 fails on the
//     unique key if the stream exists.
//
// Only a stream seen below the expected version, or never seen by an append that expects it
// to exist, is read: appending there without reading could leave a gap.
type seenVersions struct {
	mu        sync.Mutex
	cur, prev map[string]int64
}

// get returns the version stream was seen at, and whether it was.
func (s *seenVersions) get(stream string) (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.cur[stream]; ok {
		return v, true
	}
	v, ok := s.prev[stream]
	return v, ok
}

// put records that stream was seen at version; a lower version than one seen already is
// ignored.
func (s *seenVersions) put(stream string, version int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.cur[stream]; ok && v >= version {
		return
	}
	if v, ok := s.prev[stream]; ok && v > version {
		version = v
	}
	if len(s.cur) >= seenMax || s.cur == nil {
		s.prev, s.cur = s.cur, make(map[string]int64, min(len(s.cur), seenMax))
	}
	s.cur[stream] = version
}
