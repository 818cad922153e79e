package command_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"

	"hexapost/core/command"
	"hexapost/core/post"
	"hexapost/ports"
)

var hello = post.Create{Title: "  Hello  ", Content: "Body", AuthorName: "Ann"}

// mustCreate creates the hello post and returns its id.
func mustCreate(t *testing.T, svc *command.Service) string {
	t.Helper()
	r, err := svc.Create(t.Context(), hello, command.Options{})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	return r.State.ID
}

// versions returns the versions of the events of one post in the store, in order.
func versions(st *store, id string) []int64 {
	var out []int64
	for _, c := range st.changes() {
		if c.Event.PostID == id {
			out = append(out, c.Event.Version)
		}
	}
	return out
}

func TestCreateRecordsVersionOne(t *testing.T) {
	t.Parallel()
	st := newStore()
	svc := newService(st, st, command.Config{})

	got, err := svc.Create(t.Context(), hello, command.Options{})

	if err != nil {
		t.Fatal(err)
	}
	want := command.Result{
		State: post.State{
			ID: "id-0001", Version: 1, Title: "Hello", Content: "Body", AuthorName: "Ann",
			CreatedAt: stored, UpdatedAt: stored,
		},
		Created: true,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("result = %+v, want %+v", got, want)
	}
	changes := st.changes()
	if len(changes) != 1 {
		t.Fatalf("store holds %d changes, want 1", len(changes))
	}
	wantEvent := post.Event{
		ID: "id-0002", PostID: "id-0001", Version: 1, Type: post.EventCreated, OccurredAt: stored,
		Title: ptr("Hello"), Content: ptr("Body"), AuthorName: ptr("Ann"),
	}
	if !reflect.DeepEqual(changes[0], ports.Change{Event: wantEvent, State: want.State}) {
		t.Errorf("stored change = %+v, want event %+v with the result's state", changes[0], wantEvent)
	}
}

func TestCommands(t *testing.T) {
	t.Parallel()

	// A step runs one command on the post created before it (id is its id).
	type step func(ctx context.Context, svc *command.Service, id string) (command.Result, error)
	updateTitle := func(title string) step {
		return func(ctx context.Context, svc *command.Service, id string) (command.Result, error) {
			return svc.Update(ctx, id, post.Update{Title: &title}, command.Options{})
		}
	}
	del := func(ctx context.Context, svc *command.Service, id string) (command.Result, error) {
		return svc.Delete(ctx, id, command.Options{})
	}
	onUnknown := func(s step) step {
		return func(ctx context.Context, svc *command.Service, _ string) (command.Result, error) {
			return s(ctx, svc, "no-such-post")
		}
	}

	tests := []struct {
		name         string
		giveBefore   []step
		when         step
		wantVersion  int64
		wantErr      error
		wantVersions []int64 // of the post's events in the store afterwards
	}{
		{
			name:         "update records version 2",
			when:         updateTitle("New"),
			wantVersion:  2,
			wantVersions: []int64{1, 2},
		},
		{
			name:         "update of a later version",
			giveBefore:   []step{updateTitle("A"), updateTitle("B")},
			when:         updateTitle("C"),
			wantVersion:  4,
			wantVersions: []int64{1, 2, 3, 4},
		},
		{
			name:         "update that changes nothing keeps the version and records no event",
			when:         updateTitle("Hello"),
			wantVersion:  1,
			wantVersions: []int64{1},
		},
		{
			name:         "delete records a new version",
			when:         del,
			wantVersion:  2,
			wantVersions: []int64{1, 2},
		},
		{
			name:         "update of an unknown post",
			when:         onUnknown(updateTitle("New")),
			wantErr:      post.ErrNotFound,
			wantVersions: []int64{1},
		},
		{
			name:         "delete of an unknown post",
			when:         onUnknown(del),
			wantErr:      post.ErrNotFound,
			wantVersions: []int64{1},
		},
		{
			name:         "update of a deleted post",
			giveBefore:   []step{del},
			when:         updateTitle("New"),
			wantErr:      post.ErrDeleted,
			wantVersions: []int64{1, 2},
		},
		{
			name:         "delete of a deleted post",
			giveBefore:   []step{del},
			when:         del,
			wantErr:      post.ErrDeleted,
			wantVersions: []int64{1, 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			st := newStore()
			svc := newService(st, st, command.Config{})
			id := mustCreate(t, svc)
			for _, s := range tt.giveBefore {
				if _, err := s(ctx, svc, id); err != nil {
					t.Fatalf("given: %v", err)
				}
			}

			got, err := tt.when(ctx, svc, id)

			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if got.State.Version != tt.wantVersion || got.Created || got.Replayed {
				t.Errorf("result = %+v, want version %d, not created, not replayed", got, tt.wantVersion)
			}
			if v := versions(st, id); !reflect.DeepEqual(v, tt.wantVersions) {
				t.Errorf("stored versions = %v, want %v", v, tt.wantVersions)
			}
		})
	}
}

func TestInvalidCommandsRecordNothing(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		when func(ctx context.Context, svc *command.Service, id string) error
	}{
		{
			name: "create with an empty title",
			when: func(ctx context.Context, svc *command.Service, _ string) error {
				_, err := svc.Create(ctx, post.Create{Title: "", Content: "Body", AuthorName: "Ann"}, command.Options{})
				return err
			},
		},
		{
			name: "update without fields",
			when: func(ctx context.Context, svc *command.Service, id string) error {
				_, err := svc.Update(ctx, id, post.Update{}, command.Options{IdempotencyKey: "k"})
				return err
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := newStore()
			svc := newService(st, st, command.Config{})
			id := mustCreate(t, svc)

			err := tt.when(t.Context(), svc, id)

			var verrs post.ValidationErrors
			if !errors.As(err, &verrs) {
				t.Fatalf("error = %v, want post.ValidationErrors", err)
			}
			if n := len(st.changes()); n != 1 {
				t.Errorf("store holds %d changes, want only the creation", n)
			}
			if _, err := st.Lookup(t.Context(), "k"); !errors.Is(err, ports.ErrNotFound) {
				t.Errorf("idempotency key recorded for a refused command: %v", err)
			}
		})
	}
}

func TestIfMatch(t *testing.T) {
	t.Parallel()

	update := func(ctx context.Context, svc *command.Service, id string, o command.Options) (command.Result, error) {
		return svc.Update(ctx, id, post.Update{Title: ptr("Changed")}, o)
	}
	del := func(ctx context.Context, svc *command.Service, id string, o command.Options) (command.Result, error) {
		return svc.Delete(ctx, id, o)
	}

	tests := []struct {
		name         string
		giveUpdates  int  // unconditional updates after the creation
		giveDeleted  bool // the post is deleted after them
		giveID       string
		giveIfMatch  int64
		when         func(context.Context, *command.Service, string, command.Options) (command.Result, error)
		wantVersion  int64
		wantErr      error
		wantConflict *command.ConflictError
		wantAppended int
	}{
		{
			name: "update at the current version", giveUpdates: 2, giveIfMatch: 3, when: update,
			wantVersion: 4, wantAppended: 1,
		},
		{
			name: "delete at the current version", giveUpdates: 0, giveIfMatch: 1, when: del,
			wantVersion: 2, wantAppended: 1,
		},
		{
			name: "update at an older version", giveUpdates: 2, giveIfMatch: 2, when: update,
			wantErr: ports.ErrConflict, wantConflict: &command.ConflictError{Expected: 2, Current: 3},
		},
		{
			name: "update at a future version", giveUpdates: 0, giveIfMatch: 7, when: update,
			wantErr: ports.ErrConflict, wantConflict: &command.ConflictError{Expected: 7, Current: 1},
		},
		{
			name: "delete at an older version", giveUpdates: 1, giveIfMatch: 1, when: del,
			wantErr: ports.ErrConflict, wantConflict: &command.ConflictError{Expected: 1, Current: 2},
		},
		{
			name: "version 0 matches no post that exists", giveUpdates: 1, giveIfMatch: 0, when: update,
			wantErr: ports.ErrConflict, wantConflict: &command.ConflictError{Expected: 0, Current: 2},
		},
		{
			name: "a deleted post is gone whatever the version asked (410 before 412)", giveUpdates: 1,
			giveDeleted: true, giveIfMatch: 1, when: update, wantErr: post.ErrDeleted,
		},
		{
			name: "a deleted post is gone for a delete too", giveDeleted: true, giveIfMatch: 1, when: del,
			wantErr: post.ErrDeleted,
		},
		{
			name:   "an unknown post is not found whatever the version asked (404 before 412)",
			giveID: "no-such-post", giveIfMatch: 1, when: update, wantErr: post.ErrNotFound,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			st := newStore()
			svc := newService(st, st, command.Config{})
			id := mustCreate(t, svc)
			for i := range tt.giveUpdates {
				if _, err := svc.Update(ctx, id, post.Update{Title: ptr(fmt.Sprint(i))}, command.Options{}); err != nil {
					t.Fatal(err)
				}
			}
			if tt.giveDeleted {
				if _, err := svc.Delete(ctx, id, command.Options{}); err != nil {
					t.Fatal(err)
				}
			}
			target := cmp.Or(tt.giveID, id)
			before := len(st.changes())

			got, err := tt.when(ctx, svc, target, command.Options{IfMatch: &tt.giveIfMatch})

			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			var conflict *command.ConflictError
			errors.As(err, &conflict)
			if !reflect.DeepEqual(conflict, tt.wantConflict) {
				t.Errorf("conflict = %+v, want %+v", conflict, tt.wantConflict)
			}
			if got.State.Version != tt.wantVersion {
				t.Errorf("version = %d, want %d", got.State.Version, tt.wantVersion)
			}
			if appended := len(st.changes()) - before; appended != tt.wantAppended {
				t.Errorf("appended %d changes, want %d", appended, tt.wantAppended)
			}
		})
	}
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()

	type call func(ctx context.Context, svc *command.Service, id, key string) (command.Result, error)
	createHello := func(ctx context.Context, svc *command.Service, _, key string) (command.Result, error) {
		return svc.Create(ctx, hello, command.Options{IdempotencyKey: key})
	}
	createOther := func(ctx context.Context, svc *command.Service, _, key string) (command.Result, error) {
		return svc.Create(ctx, post.Create{Title: "Other", Content: "Body", AuthorName: "Ann"},
			command.Options{IdempotencyKey: key})
	}
	updateTitle := func(title string) call {
		return func(ctx context.Context, svc *command.Service, id, key string) (command.Result, error) {
			return svc.Update(ctx, id, post.Update{Title: &title}, command.Options{IdempotencyKey: key})
		}
	}
	updateOtherPost := func(ctx context.Context, svc *command.Service, _, key string) (command.Result, error) {
		return svc.Update(ctx, "another-post", post.Update{Title: ptr("New")}, command.Options{IdempotencyKey: key})
	}
	del := func(ctx context.Context, svc *command.Service, id, key string) (command.Result, error) {
		return svc.Delete(ctx, id, command.Options{IdempotencyKey: key})
	}

	tests := []struct {
		name        string
		giveFirst   call
		giveBetween []call // run without the key between the two calls
		when        call
		wantSame    bool // the repeat answers with the first result, replayed
		wantErr     error
		wantChanges int // in the store at the end, the post's creation included
	}{
		{
			name:      "create repeated with the same body",
			giveFirst: createHello, when: createHello,
			wantSame: true, wantChanges: 2, // the creation of the post under test and this one
		},
		{
			name:      "create repeated with another body",
			giveFirst: createHello, when: createOther,
			wantErr: command.ErrKeyReused, wantChanges: 2,
		},
		{
			name:      "update repeated after another change answers as the first time",
			giveFirst: updateTitle("New"), giveBetween: []call{updateTitle("Newer")}, when: updateTitle("New"),
			wantSame: true, wantChanges: 3,
		},
		{
			name:      "update that changed nothing repeated",
			giveFirst: updateTitle("Hello"), when: updateTitle("Hello"),
			wantSame: true, wantChanges: 1,
		},
		{
			name:      "update repeated with another body",
			giveFirst: updateTitle("New"), when: updateTitle("Other"),
			wantErr: command.ErrKeyReused, wantChanges: 2,
		},
		{
			name:      "key of an update used for another post",
			giveFirst: updateTitle("New"), when: updateOtherPost,
			wantErr: command.ErrKeyReused, wantChanges: 2,
		},
		{
			name:      "key of an update used for a delete",
			giveFirst: updateTitle("New"), when: del,
			wantErr: command.ErrKeyReused, wantChanges: 2,
		},
		{
			name:      "delete repeated answers as the first time, not as deleted",
			giveFirst: del, when: del,
			wantSame: true, wantChanges: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			st := newStore()
			svc := newService(st, st, command.Config{})
			id := mustCreate(t, svc)
			first, err := tt.giveFirst(ctx, svc, id, "key-1")
			if err != nil {
				t.Fatalf("first: %v", err)
			}
			for _, between := range tt.giveBetween {
				if _, err := between(ctx, svc, id, ""); err != nil {
					t.Fatalf("between: %v", err)
				}
			}

			got, err := tt.when(ctx, svc, id, "key-1")

			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			first.Replayed = true
			if same := reflect.DeepEqual(got, first); same != tt.wantSame {
				t.Errorf("repeat = %+v, first = %+v; want the same: %t", got, first, tt.wantSame)
			}
			if n := len(st.changes()); n != tt.wantChanges {
				t.Errorf("store holds %d changes, want %d", n, tt.wantChanges)
			}
		})
	}
}

func TestConcurrentCreatesWithOneKeyCreateOnePost(t *testing.T) {
	t.Parallel()
	const n = 20
	st := newStore()
	svc := newService(st, st, command.Config{})

	results := make([]command.Result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			results[i], errs[i] = svc.Create(t.Context(), hello, command.Options{IdempotencyKey: "same-key"})
		})
	}
	wg.Wait()

	fresh := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("create %d: %v", i, errs[i])
		}
		if results[i].State != results[0].State || !results[i].Created {
			t.Errorf("create %d = %+v, want %+v, created", i, results[i], results[0])
		}
		if !results[i].Replayed {
			fresh++
		}
	}
	if fresh != 1 {
		t.Errorf("%d results not replayed, want exactly 1", fresh)
	}
	if changes := st.changes(); len(changes) != 1 || changes[0].State.ID != results[0].State.ID {
		t.Errorf("store holds %d changes, want 1 of post %s", len(changes), results[0].State.ID)
	}
}

// TestConcurrentUnconditionalUpdatesAllSucceed: updates racing on one post are each retried on
// the state the others left until they win. Of n racers, each loses at most n-1 times (every
// loss is another racer's win), so n attempts are enough for all.
func TestConcurrentUnconditionalUpdatesAllSucceed(t *testing.T) {
	t.Parallel()
	const n = 50
	st := newStore()
	svc := newService(st, st, command.Config{MaxAttempts: n})
	id := mustCreate(t, svc)

	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, errs[i] = svc.Update(t.Context(), id, post.Update{Title: ptr(fmt.Sprint("title ", i))}, command.Options{})
		})
	}
	wg.Wait()

	if err := errors.Join(errs...); err != nil {
		t.Fatalf("updates failed: %v", err)
	}
	v := versions(st, id)
	if len(v) != n+1 || v[len(v)-1] != n+1 {
		t.Errorf("stored versions = %v, want 1…%d", v, n+1)
	}
}

// TestConcurrentConditionalUpdatesHaveOneWinner: of conditional updates racing on one version,
// one wins; each loser is a conflict that names the version that won, also when it lost at the
// append.
func TestConcurrentConditionalUpdatesHaveOneWinner(t *testing.T) {
	t.Parallel()
	const n = 50
	st := newStore()
	svc := newService(st, st, command.Config{})
	id := mustCreate(t, svc)

	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, errs[i] = svc.Update(t.Context(), id, post.Update{Title: ptr(fmt.Sprint("title ", i))},
				command.Options{IfMatch: ptr(int64(1))})
		})
	}
	wg.Wait()

	won, conflicts := 0, 0
	for _, err := range errs {
		var conflict *command.ConflictError
		switch {
		case err == nil:
			won++
		case errors.As(err, &conflict) && conflict.Expected == 1 && conflict.Current == 2 &&
			errors.Is(err, ports.ErrConflict):
			conflicts++
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	if won != 1 || conflicts != n-1 {
		t.Errorf("%d won and %d conflicted, want 1 and %d", won, conflicts, n-1)
	}
	if v := versions(st, id); !reflect.DeepEqual(v, []int64{1, 2}) {
		t.Errorf("stored versions = %v, want [1 2]", v)
	}
}

func TestConflictWithAnotherProcess(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name         string
		giveRaces    int64 // appends of ours that another process beats
		giveIfMatch  *int64
		wantErr      error
		wantConflict *command.ConflictError
		wantVersion  int64
		wantVersions []int64
	}{
		{
			name:         "an unconditional update is retried on the new state until it wins",
			giveRaces:    3,
			wantVersion:  5,
			wantVersions: []int64{1, 2, 3, 4, 5},
		},
		{
			name:         "a conditional update that loses a race is a conflict naming the version that won",
			giveRaces:    1,
			giveIfMatch:  ptr(int64(1)),
			wantErr:      ports.ErrConflict,
			wantConflict: &command.ConflictError{Expected: 1, Current: 2},
			wantVersions: []int64{1, 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := newStore()
			id := mustCreate(t, newService(st, st, command.Config{}))
			svc := newService(&otherProcess{store: st, races: tt.giveRaces}, st, command.Config{})

			got, err := svc.Update(t.Context(), id, post.Update{Title: ptr("Mine")}, command.Options{IfMatch: tt.giveIfMatch})

			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			var conflict *command.ConflictError
			errors.As(err, &conflict)
			if !reflect.DeepEqual(conflict, tt.wantConflict) {
				t.Errorf("conflict = %+v, want %+v", conflict, tt.wantConflict)
			}
			if got.State.Version != tt.wantVersion {
				t.Errorf("version = %d, want %d", got.State.Version, tt.wantVersion)
			}
			if v := versions(st, id); !reflect.DeepEqual(v, tt.wantVersions) {
				t.Errorf("stored versions = %v, want %v", v, tt.wantVersions)
			}
		})
	}
}

// TestConflictNamesTheVersionThatWon: a conditional update that decided on a stale post, and
// then on the current one lost its append to another process, still names the version that won.
func TestConflictNamesTheVersionThatWon(t *testing.T) {
	t.Parallel()
	st := newStore()
	first := newService(st, st, command.Config{})
	id := mustCreate(t, first)
	if _, err := first.Update(t.Context(), id, post.Update{Title: ptr("Second")}, command.Options{}); err != nil {
		t.Fatal(err)
	}
	svc := newService(&staleOnce{otherProcess: &otherProcess{store: st, races: 1}}, st, command.Config{})

	_, err := svc.Update(t.Context(), id, post.Update{Title: ptr("Mine")}, command.Options{IfMatch: ptr(int64(2))})

	var conflict *command.ConflictError
	if !errors.As(err, &conflict) || *conflict != (command.ConflictError{Expected: 2, Current: 3}) {
		t.Errorf("error = %v, want a conflict expecting 2 at current 3", err)
	}
	if v := versions(st, id); !reflect.DeepEqual(v, []int64{1, 2, 3}) {
		t.Errorf("stored versions = %v, want [1 2 3]", v)
	}
}

func TestRetriedUpdateKeepsTheOtherProcessChanges(t *testing.T) {
	t.Parallel()
	st := newStore()
	id := mustCreate(t, newService(st, st, command.Config{}))
	svc := newService(&otherProcess{store: st, races: 2}, st, command.Config{})

	got, err := svc.Update(t.Context(), id, post.Update{Title: ptr("Mine")}, command.Options{})

	if err != nil {
		t.Fatal(err)
	}
	if got.State.Title != "Mine" || got.State.Content != "written elsewhere 2" || got.State.Version != 4 {
		t.Errorf("state = %+v, want title Mine over content written elsewhere at version 4", got.State)
	}
}

func TestRetriesAreBounded(t *testing.T) {
	t.Parallel()
	st := newStore()
	id := mustCreate(t, newService(st, st, command.Config{}))
	ctx, cancel := context.WithCancel(t.Context())
	always := &alwaysConflicting{store: st}
	always.onAppend = func() {
		if always.appends.Load() >= 100 {
			cancel() // unbounded: end the test instead of hanging it
		}
	}
	svc := newService(always, st, command.Config{MaxAttempts: 4})

	_, err := svc.Update(ctx, id, post.Update{Title: ptr("Mine")}, command.Options{})

	if !errors.Is(err, ports.ErrConflict) {
		t.Errorf("error = %v, want %v", err, ports.ErrConflict)
	}
	if n := always.appends.Load(); n != 4 {
		t.Errorf("%d attempts, want 4", n)
	}
}

func TestRetriesStopWhenTheContextEnds(t *testing.T) {
	t.Parallel()
	st := newStore()
	id := mustCreate(t, newService(st, st, command.Config{}))
	ctx, cancel := context.WithCancel(t.Context())
	always := &alwaysConflicting{store: st, onAppend: cancel}
	svc := newService(always, st, command.Config{MaxAttempts: 1000})

	_, err := svc.Update(ctx, id, post.Update{Title: ptr("Mine")}, command.Options{})

	if !errors.Is(err, context.Canceled) {
		t.Errorf("error = %v, want %v", err, context.Canceled)
	}
	if n := always.appends.Load(); n != 1 {
		t.Errorf("%d attempts, want 1", n)
	}
}
