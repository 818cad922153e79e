package contract

import (
	"testing"
	"time"

	"hexapost/core/post"
	"hexapost/ports"
)

// epoch is when the suites' stories begin. Times are UTC with microseconds, as core/command
// stamps them.
var epoch = time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)

// story writes a realistic history with the real aggregate: every change is decided by a
// post.Post and carries the state right after it, as core/command produces them. So the
// suites test the adapters with the data they will really get, not with what a test author
// imagined.
type story struct {
	t       *testing.T
	clock   time.Time
	posts   map[string]*post.Post
	order   []string // post ids in creation order
	changes []ports.Change
}

func newStory(t *testing.T, start time.Time) *story {
	return &story{t: t, clock: start, posts: map[string]*post.Post{}}
}

// next advances the clock by a little over a millisecond, so times have microseconds.
func (s *story) next() post.Stamp {
	s.clock = s.clock.Add(time.Millisecond + 7*time.Microsecond)
	return post.Stamp{EventID: newID(), At: s.clock}
}

// create creates a post now and returns its id.
func (s *story) create(title, content, author string) string {
	return s.createAt(s.next().At, title, content, author)
}

// createAt creates a post at the given time, which lets a story give posts the same creation
// time. The clock does not move.
func (s *story) createAt(at time.Time, title, content, author string) string {
	s.t.Helper()
	id := newID()
	p, err := post.FromHistory(id, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	e, err := p.Create(post.Create{Title: title, Content: content, AuthorName: author},
		post.Stamp{EventID: newID(), At: at})
	if err != nil {
		s.t.Fatalf("story: create %q: %v", title, err)
	}
	s.posts[id] = p
	s.order = append(s.order, id)
	s.record(p, e)
	return id
}

func (s *story) update(id string, u post.Update) {
	s.t.Helper()
	events, err := s.posts[id].Update(u, s.next())
	if err != nil || len(events) == 0 {
		s.t.Fatalf("story: update %s: %d events, %v", id, len(events), err)
	}
	s.record(s.posts[id], events...)
}

func (s *story) delete(id string) {
	s.t.Helper()
	e, err := s.posts[id].Delete(post.Delete{}, s.next())
	if err != nil {
		s.t.Fatalf("story: delete %s: %v", id, err)
	}
	s.record(s.posts[id], e)
}

func (s *story) record(p *post.Post, events ...post.Event) {
	s.t.Helper()
	for _, e := range events {
		if err := p.Apply(e); err != nil {
			s.t.Fatal(err)
		}
		s.changes = append(s.changes, ports.Change{Event: e, State: p.State()})
	}
}

// of returns the changes of one post, in version order.
func (s *story) of(id string) []ports.Change {
	var out []ports.Change
	for _, c := range s.changes {
		if c.Event.PostID == id {
			out = append(out, c)
		}
	}
	return out
}

// state returns the post's state after the whole story.
func (s *story) state(id string) post.State { return s.posts[id].State() }

// changesOf folds hand-written events with the aggregate into changes, for cases that need
// events the aggregate would not decide (an empty but present field, say).
func changesOf(t *testing.T, events ...post.Event) []ports.Change {
	t.Helper()
	p, err := post.FromHistory(events[0].PostID, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]ports.Change, len(events))
	for i, e := range events {
		if err := p.Apply(e); err != nil {
			t.Fatal(err)
		}
		out[i] = ports.Change{Event: e, State: p.State()}
	}
	return out
}

func eventsOf(changes []ports.Change) []post.Event {
	out := make([]post.Event, len(changes))
	for i, c := range changes {
		out[i] = c.Event
	}
	return out
}
