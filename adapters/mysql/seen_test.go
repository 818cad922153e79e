package mysql

import (
	"strconv"
	"testing"
)

func TestSeenVersionsKeepTheHighestAndForgetOnlyOldGenerations(t *testing.T) {
	t.Parallel()
	var s seenVersions
	if _, ok := s.get("a"); ok {
		t.Fatal("an empty store saw a stream")
	}
	s.put("a", 3)
	s.put("a", 2) // an older read, answered after a newer commit
	if v, ok := s.get("a"); !ok || v != 3 {
		t.Errorf("get a = %d, %v; want 3, true", v, ok)
	}
	// Fill a generation: "a" moves to the previous one and is still known, and a lower
	// version put then does not hide it.
	for i := range seenMax {
		s.put(strconv.Itoa(i), 1)
	}
	s.put("a", 1)
	if v, ok := s.get("a"); !ok || v != 3 {
		t.Errorf("after a generation: get a = %d, %v; want 3, true", v, ok)
	}
	// Two more generations: streams not seen since are forgotten.
	for g := range 2 {
		for i := range seenMax {
			s.put("g"+strconv.Itoa(g)+"-"+strconv.Itoa(i), 1)
		}
	}
	if _, ok := s.get("0"); ok {
		t.Error("a stream not seen for two generations is still remembered")
	}
	if n := len(s.cur) + len(s.prev); n > 2*seenMax {
		t.Errorf("%d streams remembered, want at most %d", n, 2*seenMax)
	}
}
