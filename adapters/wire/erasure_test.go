package wire_test

import (
	"testing"
	"time"

	"hexapost/adapters/wire"
	"hexapost/core/post"
	"hexapost/ports"
)

func TestErasable(t *testing.T) {
	t.Parallel()
	encode := func(id string, typ post.EventType) []byte {
		title := "secret"
		b, err := wire.Encode(ports.Change{
			Event: post.Event{ID: "e", PostID: id, Version: 1, Type: typ, OccurredAt: time.Now(), Title: &title},
			State: post.State{ID: id, Version: 1, Title: title},
		})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	erased := map[string]bool{"p1": true}
	tests := []struct {
		name    string
		give    []byte
		wantHit bool
	}{
		{"a change of an erased post", encode("p1", post.EventUpdated), true},
		{"the erasure itself", encode("p1", post.EventErased), false},
		{"a change of another post", encode("p2", post.EventUpdated), false},
		{"an undecodable message naming an erased post", []byte(`{"schema":9,"event":{"post_id":"p1"}}`), true},
		{"an undecodable message naming none", []byte(`not json`), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := wire.Erasable(tt.give, erased); got != tt.wantHit {
				t.Errorf("Erasable = %v, want %v", got, tt.wantHit)
			}
		})
	}
}
