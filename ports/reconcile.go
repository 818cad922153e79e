package ports

import (
	"context"
	"iter"
)

// StreamHead is where one post's stream in the event store ends.
type StreamHead struct {
	PostID string
	// Version is the version of the post's last event.
	Version int64
}

// StreamHeads lists the store's posts with the version each has reached, so that a read model
// can be compared with the store a page at a time.
type StreamHeads interface {
	// Heads returns up to limit posts whose id comes after the id after (byte order; "" is
	// before every id), in id order, each with the version of its last event.
	Heads(ctx context.Context, after string, limit int) ([]StreamHead, error)
}

// ViewVersion is what the read model holds of one post.
type ViewVersion struct {
	PostID string
	// Current is the version of the post's current view; 0 when there is none.
	Current int64
	// History is how many versions of the post its history holds. The history of a post at
	// version N is complete when it holds N.
	History int64
}

// ViewVersions tells what the read model holds, for comparing it with the event store.
type ViewVersions interface {
	// Versions yields what the read model holds of each post it holds a view or a history
	// entry of, in id order (byte order, as StreamHeads), reading the read model through once
	// rather than a round of queries per page: a pass over the whole read model then costs
	// time in proportion to its size on every server. It stops at the first error.
	Versions(ctx context.Context) iter.Seq2[ViewVersion, error]
}

// Lock is a named lock held by this process.
type Lock interface {
	// Held reports, with a round trip to the backend, whether the lock is still held. A lock
	// whose connection was lost is not.
	Held(ctx context.Context) bool
	// Release lets go of the lock; it may be called more than once.
	Release()
}

// Locker hands out named locks shared by every process of a deployment, so that a job that
// one process is enough for runs in one process only. A lock is freed when its process ends.
type Locker interface {
	// TryLock takes the lock called name if no process holds it; ok is false when one does.
	TryLock(ctx context.Context, name string) (lock Lock, ok bool, err error)
}
