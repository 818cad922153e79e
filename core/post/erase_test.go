package post_test

import (
	"errors"
	"reflect"
	"testing"

	"hexapost/core/post"
)

func erased(version int64) post.Event {
	return post.Event{ID: "e-erased", PostID: postID, Version: version, Type: post.EventErased, OccurredAt: t3}
}

func erase() command {
	return func(p *post.Post) ([]post.Event, error) {
		e, err := p.Erase(post.Erase{}, stamp)
		if err != nil {
			return nil, err
		}
		return []post.Event{e}, nil
	}
}

func TestErasure(t *testing.T) {
	t.Parallel()
	wantErased := func(version int64) []post.Event {
		return []post.Event{{ID: stamp.EventID, PostID: postID, Version: version, Type: post.EventErased, OccurredAt: stamp.At}}
	}
	tests := []struct {
		name        string
		giveHistory []post.Event
		when        command
		wantEvents  []post.Event
		wantErr     error
	}{
		{"a live post is erased", live, erase(), wantErased(2), nil},
		{"a deleted post is erased", tombstoned, erase(), wantErased(3), nil},
		{"an unknown post cannot be erased", nil, erase(), nil, post.ErrNotFound},
		{"an erased post is not erased twice", []post.Event{created(), erased(2)}, erase(), nil, post.ErrErased},
		{"an erased post refuses an update", []post.Event{created(), erased(2)},
			update(post.Update{Title: ptr("Back")}), nil, post.ErrErased},
		{"an erased post refuses a delete", []post.Event{created(), erased(2)}, remove(), nil, post.ErrErased},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tt.when(given(t, tt.giveHistory))
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.wantEvents) {
				t.Errorf("events = %+v, want %+v", got, tt.wantEvents)
			}
		})
	}
}

func TestErasedStateKeepsVersionsAndTimesOnly(t *testing.T) {
	t.Parallel()
	// The redacted history folds as the stores keep it: the fields of every earlier event gone.
	history := []post.Event{created().Redacted(), updated(2, t2, ptr("New"), nil, nil).Redacted(), erased(3)}
	got := given(t, history).State()
	want := post.State{ID: postID, Version: 3, CreatedAt: t1, UpdatedAt: t3, Deleted: true, Erased: true}
	if got != want {
		t.Errorf("state = %+v, want %+v", got, want)
	}
	// Folding the unredacted history gives the same state: the erasure drops every field.
	full := given(t, []post.Event{created(), updated(2, t2, ptr("New"), nil, nil), erased(3)}).State()
	if full != want {
		t.Errorf("state of the unredacted history = %+v, want %+v", full, want)
	}
	if _, err := post.FromHistory(postID, append(history, deleted(4, t4))); !errors.Is(err, post.ErrCorruptHistory) {
		t.Errorf("an event after the erasure: error = %v, want ErrCorruptHistory", err)
	}
}

func TestRedactedStateIsMarkedErased(t *testing.T) {
	t.Parallel()
	s := given(t, live).State()
	got := s.Redacted()
	want := post.State{ID: postID, Version: 1, CreatedAt: t1, UpdatedAt: t1, Deleted: true, Erased: true}
	if got != want {
		t.Errorf("Redacted() = %+v, want %+v", got, want)
	}
}
