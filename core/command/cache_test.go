package command_test

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"

	"hexapost/core/command"
	"hexapost/core/post"
	"hexapost/ports"
)

// loadCounter is a store that counts what the service loads.
type loadCounter struct {
	*store
	mu     sync.Mutex
	calls  int
	events int
}

func (c *loadCounter) Load(ctx context.Context, postID string, after int64) ([]post.Event, error) {
	events, err := c.store.Load(ctx, postID, after)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	c.events += len(events)
	return events, err
}

func (c *loadCounter) loaded() (calls, events int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls, c.events
}

// TestCommandsOnAKnownPostLoadNothing: the service keeps each post's state after its commands,
// so the cost of a command does not grow with the post's history; after another process
// appended, it loads only the events it has not seen.
func TestCommandsOnAKnownPostLoadNothing(t *testing.T) {
	t.Parallel()
	st := newStore()
	counted := &loadCounter{store: st}
	svc := newService(counted, st, command.Config{})
	id := mustCreate(t, svc)
	for i := range 5 {
		if _, err := svc.Update(t.Context(), id, post.Update{Content: ptr(string(rune('a' + i)))}, command.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	if calls, events := counted.loaded(); calls != 0 || events != 0 {
		t.Fatalf("a create and 5 updates loaded %d times (%d events), want nothing", calls, events)
	}

	other := newService(st, st, command.Config{})
	for _, title := range []string{"elsewhere 1", "elsewhere 2"} {
		if _, err := other.Update(t.Context(), id, post.Update{Title: ptr(title)}, command.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := svc.Update(t.Context(), id, post.Update{Content: ptr("mine")}, command.Options{})

	if err != nil {
		t.Fatal(err)
	}
	if got.State.Version != 9 || got.State.Title != "elsewhere 2" || got.State.Content != "mine" {
		t.Errorf("state = %+v, want version 9 with the other process's title and our content", got.State)
	}
	if _, events := counted.loaded(); events != 2 {
		t.Errorf("after another process appended 2 events, %d events were loaded, want 2", events)
	}
}

// TestDecisionsOnAnOvertakenState: another process changed the post since this process last
// saw it. Every answer must be the one the stored state gives, never the cached one's.
func TestDecisionsOnAnOvertakenState(t *testing.T) {
	t.Parallel()
	elsewhere := func(t *testing.T, other *command.Service, id string) {
		t.Helper()
		if _, err := other.Update(t.Context(), id, post.Update{Title: ptr("Renamed")}, command.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name         string
		giveOther    func(t *testing.T, other *command.Service, id string)
		giveUpdate   post.Update
		giveIfMatch  *int64
		wantErr      error
		wantConflict *command.ConflictError
		wantState    func(s post.State) bool
		wantStored   []int64
	}{
		{
			name:       "setting back what the cache still shows is a change",
			giveOther:  elsewhere,
			giveUpdate: post.Update{Title: ptr("Hello")},
			wantState:  func(s post.State) bool { return s.Version == 3 && s.Title == "Hello" },
			wantStored: []int64{1, 2, 3},
		},
		{
			name:        "If-Match with the stored version succeeds",
			giveOther:   elsewhere,
			giveUpdate:  post.Update{Content: ptr("new")},
			giveIfMatch: ptr(int64(2)),
			wantState:   func(s post.State) bool { return s.Version == 3 && s.Title == "Renamed" && s.Content == "new" },
			wantStored:  []int64{1, 2, 3},
		},
		{
			name:         "If-Match with the cached version is a conflict naming the stored one",
			giveOther:    elsewhere,
			giveUpdate:   post.Update{Content: ptr("new")},
			giveIfMatch:  ptr(int64(1)),
			wantErr:      ports.ErrConflict,
			wantConflict: &command.ConflictError{Expected: 1, Current: 2},
			wantStored:   []int64{1, 2},
		},
		{
			name: "a post deleted elsewhere is gone",
			giveOther: func(t *testing.T, other *command.Service, id string) {
				t.Helper()
				if _, err := other.Delete(t.Context(), id, command.Options{}); err != nil {
					t.Fatal(err)
				}
			},
			giveUpdate: post.Update{Content: ptr("new")},
			wantErr:    post.ErrDeleted,
			wantStored: []int64{1, 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := newStore()
			svc := newService(st, st, command.Config{})
			id := mustCreate(t, svc) // svc now knows the post at version 1
			tt.giveOther(t, newService(st, st, command.Config{}), id)

			got, err := svc.Update(t.Context(), id, tt.giveUpdate, command.Options{IfMatch: tt.giveIfMatch})

			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			var conflict *command.ConflictError
			errors.As(err, &conflict)
			if !reflect.DeepEqual(conflict, tt.wantConflict) {
				t.Errorf("conflict = %+v, want %+v", conflict, tt.wantConflict)
			}
			if tt.wantState != nil && !tt.wantState(got.State) {
				t.Errorf("state = %+v", got.State)
			}
			if v := versions(st, id); !reflect.DeepEqual(v, tt.wantStored) {
				t.Errorf("stored versions = %v, want %v", v, tt.wantStored)
			}
		})
	}
}

var _ ports.EventStore = (*loadCounter)(nil)
