// Package postlock makes the commands on one post in this process take turns: a Load of a
// post waits until the command that loaded it before has released it. Concurrent commands on
// one post then queue instead of colliding at the append, where all but one would be retried
// and, under enough of them, run out of attempts. The version check of the append still
// guards against other processes.
package postlock

import (
	"context"
	"hash/maphash"
	"sync"

	"hexapost/core/post"
	"hexapost/ports"
)

// stripes is how many locks the posts share: two posts whose ids hash alike take turns too,
// which is rare, and bounds the memory whatever the number of posts.
const stripes = 256

// Store is a ports.PostStore that holds each Load back until the post's previous loader in
// this process released it.
type Store struct {
	next  ports.PostStore
	seed  maphash.Seed
	turns [stripes]chan struct{} // a token in the channel is a post's turn taken
}

var _ ports.PostStore = (*Store)(nil)

// New returns a Store in front of next.
func New(next ports.PostStore) *Store {
	s := &Store{next: next, seed: maphash.MakeSeed()}
	for i := range s.turns {
		s.turns[i] = make(chan struct{}, 1)
	}
	return s
}

// Load waits for the post's turn, or for ctx to end, then loads it through next. The post's
// turn ends when the returned release is called.
func (s *Store) Load(ctx context.Context, id string, current bool) (*post.Post, func(), error) {
	turn := s.turns[s.stripe(id)]
	select {
	case turn <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	p, release, err := s.next.Load(ctx, id, current)
	if err != nil {
		<-turn
		return nil, nil, err
	}
	var once sync.Once
	return p, func() {
		once.Do(func() {
			release()
			<-turn
		})
	}, nil
}

func (s *Store) stripe(id string) uint64 { return maphash.String(s.seed, id) % stripes }

// Append appends through next.
func (s *Store) Append(ctx context.Context, a ports.Append) error { return s.next.Append(ctx, a) }
