package ports

import (
	"context"

	"hexapost/core/post"
)

// PostStore is the write side's access to its aggregate: it loads a post's current state and
// appends what a command decided on it. The plain implementation folds the post's stream;
// decorators in front of it may keep states, or make the commands on one post take turns.
type PostStore interface {
	// Load returns the post as a Post the caller owns: at version 0 when the post has no
	// events, which is not an error. With current, it is the post as it was stored at one
	// moment during the call. Without, a decorator may answer from a state it kept, which
	// another process may have overtaken: an Append at its version confirms it, or is a
	// conflict, so a caller answers a refusal only from a current post. The caller
	// calls release once, when it has appended or given up; until then a decorator may hold
	// back the other Loads of the same post in this process, so that commands on one post
	// queue instead of colliding. A stream that does not fold is an error wrapping
	// post.ErrCorruptHistory; a waiting Load returns ctx's error when ctx ends. It is safe for
	// concurrent use.
	Load(ctx context.Context, id string, current bool) (p *post.Post, release func(), err error)
	// Append is EventAppender's, with its guarantees and errors. Each change carries the state
	// after it, from which an implementation that keeps states learns the post's new state.
	EventAppender
}
