package post

import (
	"errors"
	"fmt"
)

// Errors a decision can return. Callers compare with errors.Is.
var (
	// ErrNotFound: the command needs an existing post and the stream is empty.
	ErrNotFound = errors.New("post not found")
	// ErrExists: a create was decided for an id that already has events.
	ErrExists = errors.New("post already exists")
	// ErrDeleted: the post was deleted; it accepts no further change.
	ErrDeleted = errors.New("post is deleted")
	// ErrErased: the post's personal data was erased; it accepts no further change.
	ErrErased = errors.New("post is erased")
	// ErrCorruptHistory: the events given to FromHistory cannot belong to one post.
	ErrCorruptHistory = errors.New("corrupt post history")
)

// ValidationError says which field of a command broke which rule. Field uses the names clients
// see on the wire (title, content, author_name), so the message can be shown as it is.
type ValidationError struct {
	Field  string
	Reason string
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("%s: %s", e.Field, e.Reason)
}

// ValidationErrors collects every broken rule of one command, so a client learns all of them
// in one round trip instead of fixing them one at a time.
type ValidationErrors []*ValidationError

func (es ValidationErrors) Error() string {
	if len(es) == 1 {
		return es[0].Error()
	}
	msg := fmt.Sprintf("%d invalid fields: ", len(es))
	for i, e := range es {
		if i > 0 {
			msg += "; "
		}
		msg += e.Error()
	}
	return msg
}

// orNil returns nil for an empty list so that callers can return it as an error.
func (es ValidationErrors) orNil() error {
	if len(es) == 0 {
		return nil
	}
	return es
}
