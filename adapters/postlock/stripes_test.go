package postlock

import (
	"context"
	"fmt"
	"testing"
	"time"

	"hexapost/core/post"
	"hexapost/ports"
)

type plain struct{}

func (plain) Load(_ context.Context, id string, _ bool) (*post.Post, func(), error) {
	p, err := post.FromHistory(id, nil)
	return p, func() {}, err
}

func (plain) Append(context.Context, ports.Append) error { return nil }

// TestOtherPostsAreNotHeldBack: while one post is held, a post of another stripe loads.
func TestOtherPostsAreNotHeldBack(t *testing.T) {
	t.Parallel()
	s := New(plain{})
	_, release, err := s.Load(t.Context(), "held", true)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	other := ""
	for i := 0; other == ""; i++ {
		if id := fmt.Sprint("other-", i); s.stripe(id) != s.stripe("held") {
			other = id
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	_, releaseOther, err := s.Load(ctx, other, true)

	if err != nil {
		t.Fatalf("load of %s while another post is held: %v", other, err)
	}
	releaseOther()
}
