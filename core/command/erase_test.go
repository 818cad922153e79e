package command_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	"hexapost/core/command"
	"hexapost/core/post"
)

// authors finds posts by the author name of their events in the store double.
type authors struct{ s *store }

func (a authors) PostsOf(_ context.Context, name, after string, limit int) ([]string, error) {
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	var ids []string
	for id, events := range a.s.streams {
		if id > after && slices.ContainsFunc(events, func(e post.Event) bool {
			return e.AuthorName != nil && *e.AuthorName == name
		}) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids[:min(limit, len(ids))], nil
}

// busEraser records the posts it was asked to erase.
type busEraser struct {
	mu    sync.Mutex
	calls [][]string
}

func (b *busEraser) EraseFromBus(_ context.Context, ids []string) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, slices.Clone(ids))
	return len(ids), nil
}

func newEraser(t *testing.T) (*command.Service, *store, *busEraser, *command.Eraser, *bytes.Buffer) {
	t.Helper()
	s := newStore()
	svc := newService(s, s, command.Config{})
	bus := &busEraser{}
	var logged bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logged, nil))
	return svc, s, bus, command.NewEraser(svc, authors{s}, bus, log), &logged
}

func TestErasePost(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	svc, s, bus, eraser, logged := newEraser(t)
	r, err := svc.Create(ctx, post.Create{Title: "secret title", Content: "body", AuthorName: "Ann Example"}, command.Options{})
	if err != nil {
		t.Fatal(err)
	}
	id := r.State.ID

	got, err := eraser.ErasePost(ctx, id, "admin-token:0123abcd", "req-1")
	if err != nil || got.Version != 2 || got.Before || got.BusMessages != 1 {
		t.Fatalf("ErasePost = %+v, %v; want version 2 erased now, one bus message", got, err)
	}
	changes := s.changes()
	last := changes[len(changes)-1]
	if last.Event.Type != post.EventErased || last.Metadata.Actor != "admin-token:0123abcd" || !last.State.Erased {
		t.Errorf("appended %+v, want the erasure naming its actor", last)
	}
	again, err := eraser.ErasePost(ctx, id, "admin-token:0123abcd", "req-2")
	if err != nil || again.Version != 2 || !again.Before {
		t.Errorf("ErasePost again = %+v, %v; want version 2 erased before", again, err)
	}
	if len(bus.calls) != 2 {
		t.Errorf("the bus was erased %d times, want once per request", len(bus.calls))
	}
	if _, err := svc.Update(ctx, id, post.Update{Title: ptr("back")}, command.Options{}); !errors.Is(err, post.ErrErased) {
		t.Errorf("update of the erased post: %v, want ErrErased", err)
	}
	if _, err := eraser.ErasePost(ctx, "unknown", "admin-token:0123abcd", ""); !errors.Is(err, post.ErrNotFound) {
		t.Errorf("ErasePost of an unknown post: %v, want ErrNotFound", err)
	}
	lines := logged.String()
	if strings.Count(lines, `"audit":"erasure"`) != 2 || !strings.Contains(lines, `"by":"admin-token:0123abcd"`) {
		t.Errorf("audit lines:\n%s\nwant one per erasure naming the credential", lines)
	}
	for _, personal := range []string{"secret", "Ann Example"} {
		if strings.Contains(lines, personal) {
			t.Errorf("the log holds %q:\n%s", personal, lines)
		}
	}
}

func TestEraseAuthorErasesEveryPostOfTheAuthorAndPurgesTheBusOnce(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	svc, s, bus, eraser, logged := newEraser(t)
	create := func(author string) string {
		r, err := svc.Create(ctx, post.Create{Title: "t", Content: "c", AuthorName: author}, command.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return r.State.ID
	}
	var ann []string
	for i := range 250 { // more than a page of the author's posts
		ann = append(ann, create("Ann Example"))
		if i%50 == 0 {
			create("Bob")
		}
	}
	bob := create("Bob")

	got, err := eraser.EraseAuthor(ctx, "Ann Example", "admin-token:0123abcd", "")
	if err != nil {
		t.Fatal(err)
	}
	var erased []string
	for _, er := range got.Posts {
		erased = append(erased, er.PostID)
		if er.Version != 2 || er.Before {
			t.Errorf("post %s: %+v, want erased now at version 2", er.PostID, er)
		}
	}
	slices.Sort(ann)
	if !slices.Equal(erased, ann) {
		t.Errorf("erased %d posts, want Ann's %d in id order", len(erased), len(ann))
	}
	if len(bus.calls) != 1 || !slices.Equal(bus.calls[0], ann) || got.BusMessages != len(ann) {
		t.Errorf("bus erasures %d, want one of every post of Ann's", len(bus.calls))
	}
	if events, _ := s.Load(ctx, bob, 0); len(events) != 1 {
		t.Errorf("Bob's post has %d events, want its creation only", len(events))
	}
	if lines := logged.String(); strings.Contains(lines, "Ann") ||
		!strings.Contains(lines, fmt.Sprintf(`"msg":"author erased","posts":%d`, len(ann))) {
		t.Errorf("audit lines:\n%s\nwant the count and not the name", lines)
	}
}

// failingAuthors fails every look-up after the first.
type failingAuthors struct {
	authors
	calls int
}

var errLookup = errors.New("store unavailable")

func (f *failingAuthors) PostsOf(ctx context.Context, name, after string, limit int) ([]string, error) {
	if f.calls++; f.calls > 1 {
		return nil, errLookup
	}
	return f.authors.PostsOf(ctx, name, after, limit)
}

func TestEraseAuthorThatFailsHalfWayStillPurgesTheBusOfWhatItErased(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	svc, s, bus, _, _ := newEraser(t)
	for range 150 {
		if _, err := svc.Create(ctx, post.Create{Title: "t", Content: "c", AuthorName: "Ann"}, command.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	eraser := command.NewEraser(svc, &failingAuthors{authors: authors{s}}, bus, slog.New(slog.DiscardHandler))
	got, err := eraser.EraseAuthor(ctx, "Ann", "admin-token:0123abcd", "")
	if !errors.Is(err, errLookup) {
		t.Fatalf("EraseAuthor = %v, want the look-up's error", err)
	}
	if len(got.Posts) != 100 || len(bus.calls) != 1 || len(bus.calls[0]) != 100 {
		t.Errorf("erased %d posts and purged the bus of %v, want the first page's 100 in both", len(got.Posts), len(bus.calls))
	}
}
