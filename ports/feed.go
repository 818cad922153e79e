package ports

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Position is the place of a change on the bus: the bus's own id of the entry that carries it
// (a Redis Streams entry id, a JetStream sequence, a counter in memory). The positions of one
// bus only grow, so they order its changes. The zero Position lies before the first change.
type Position struct {
	// Major and Minor are the id's two numbers: a Redis entry id is Major-Minor; a bus that
	// numbers its entries with one counter leaves Minor at 0.
	Major, Minor uint64
}

// String is the position as a client sees it: "Major", or "Major-Minor" when Minor is set.
func (p Position) String() string {
	if p.Minor == 0 {
		return strconv.FormatUint(p.Major, 10)
	}
	return strconv.FormatUint(p.Major, 10) + "-" + strconv.FormatUint(p.Minor, 10)
}

// ParsePosition reads what String writes (and "Major-0").
func ParsePosition(s string) (Position, error) {
	major, minor, hasMinor := strings.Cut(s, "-")
	var p Position
	var err error
	if p.Major, err = strconv.ParseUint(major, 10, 64); err != nil {
		return Position{}, fmt.Errorf("position %q: want N or N-M with whole numbers", s)
	}
	if hasMinor {
		if p.Minor, err = strconv.ParseUint(minor, 10, 64); err != nil {
			return Position{}, fmt.Errorf("position %q: want N or N-M with whole numbers", s)
		}
	}
	return p, nil
}

// Compare returns -1, 0 or +1 as p is before, at or after q.
func (p Position) Compare(q Position) int {
	if c := cmp.Compare(p.Major, q.Major); c != 0 {
		return c
	}
	return cmp.Compare(p.Minor, q.Minor)
}

// IsZero reports whether p lies before the first change.
func (p Position) IsZero() bool { return p == Position{} }

// FeedEntry is a change at its position on the bus.
type FeedEntry struct {
	Position Position
	Change   Change
}

// ErrPositionGone says that the bus no longer holds every change after the position asked for (its
// bound removed some, or the stream was deleted and made again), so a reader cannot go on from
// there without a gap.
var ErrPositionGone = errors.New("position no longer retained by the bus")

// ChangeFeed reads the bus as a fan-out: every reader sees every change, whatever consumer
// group shares the work of projecting them, and nothing is acknowledged.
type ChangeFeed interface {
	// Head returns the position of the last change on the bus now; zero when there is none.
	Head(ctx context.Context) (Position, error)
	// Tail calls fn with the changes after `after`, in the order of the bus, a batch at a time,
	// waiting for new ones, until ctx ends (it returns nil) or fn fails (it returns fn's
	// error). It returns an error wrapping ErrPositionGone as soon as it finds that a change
	// after `after` is gone from the bus, or that `after` lies beyond the bus's last change;
	// it never skips over a gap. A message that cannot be decoded is left out. Other errors
	// (the bus is down) end it too; the caller may call Tail again from the last position it
	// was given.
	Tail(ctx context.Context, after Position, fn func([]FeedEntry) error) error
}
