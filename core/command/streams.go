package command

import (
	"context"

	"hexapost/core/post"
	"hexapost/ports"
)

// Streams is the plain PostStore: it rebuilds a post from its whole stream on every Load and
// appends to the same event store. It holds nothing back, so its release does nothing.
type Streams struct {
	store ports.EventStore
}

var _ ports.PostStore = (*Streams)(nil)

// NewStreams returns a Streams over store.
func NewStreams(store ports.EventStore) *Streams { return &Streams{store: store} }

// Load returns the post folded from its stream, which is always current.
func (s *Streams) Load(ctx context.Context, id string, _ bool) (*post.Post, func(), error) {
	events, err := s.store.Load(ctx, id, 0)
	if err != nil {
		return nil, nil, err
	}
	p, err := post.FromHistory(id, events)
	if err != nil {
		return nil, nil, err
	}
	return p, func() {}, nil
}

// Append appends to the event store.
func (s *Streams) Append(ctx context.Context, a ports.Append) error { return s.store.Append(ctx, a) }
