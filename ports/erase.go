package ports

import (
	"context"

	"hexapost/core/post"
)

// AuthorPosts finds the posts that carry an author's name, for erasing them all.
type AuthorPosts interface {
	// PostsOf returns up to limit ids of posts, in id order after the id after ("" is before
	// every id), whose events name authorName as their author in any version: the posts an
	// erasure of the author must reach. An erased post's events name no author, so it is not
	// returned again.
	PostsOf(ctx context.Context, authorName string, after string, limit int) ([]string, error)
}

// BusEraser removes the copies of erased posts that a bus keeps.
type BusEraser interface {
	// EraseFromBus removes from the bus every message of the posts that still carries personal
	// data — every change of theirs that is not their erasure — from its streams and from its
	// dead letters, and returns how many messages it removed. A message being delivered at the
	// moment may still reach the handler once. Calling it again is harmless. It is safe for
	// concurrent use.
	EraseFromBus(ctx context.Context, postIDs []string) (int, error)
}

// Erases reports whether the append records its post's erasure, which the store carries out
// in the same atomic write (EventAppender).
func (a Append) Erases() bool {
	for _, c := range a.Changes {
		if c.Event.Type == post.EventErased {
			return true
		}
	}
	return false
}
