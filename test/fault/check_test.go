package fault_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"hexapost/adapters/mysql"
	"hexapost/core/post"
	"hexapost/test/harness"
)

// verdict is the outcome of the consistency check of one scenario.
type verdict struct {
	stored, posts, matching, lost, duplicated int
	converged                                 time.Duration
}

// storedPost is one post as the event store has it: its events in version order and the fold
// of each prefix of them (states[i] is the state after version i+1).
type storedPost struct {
	events []post.Event
	states []post.State
}

// readStore reads every event of the event store at dsn directly, checks each stream has
// versions 1..n without gap or duplicate, and folds it.
func readStore(t *testing.T, dsn string) (map[string]*storedPost, int, verdict) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store, err := mysql.Open(ctx, mysql.Config{DSN: dsn})
	if err != nil {
		t.Fatalf("open the event store: %v", err)
	}
	defer func() { _ = store.Close() }()
	var v verdict
	posts := map[string]*storedPost{}
	seenIDs := map[string]bool{}
	var after int64
	for {
		page, err := store.ReadAll(ctx, after, 1000)
		if err != nil {
			t.Fatalf("read the event store: %v", err)
		}
		if len(page) == 0 {
			break
		}
		for _, r := range page {
			after = r.Position
			e := r.Event
			v.stored++
			if seenIDs[e.ID] {
				v.duplicated++
				t.Errorf("event %s stored twice", e.ID)
				continue
			}
			seenIDs[e.ID] = true
			sp := posts[e.PostID]
			if sp == nil {
				sp = &storedPost{}
				posts[e.PostID] = sp
			}
			sp.events = append(sp.events, e)
		}
	}
	for id, sp := range posts {
		slices.SortFunc(sp.events, func(a, b post.Event) int { return int(a.Version - b.Version) })
		for i, e := range sp.events {
			switch {
			case e.Version < int64(i+1):
				v.duplicated++
				t.Errorf("post %s: version %d stored twice", id, e.Version)
			case e.Version > int64(i+1):
				v.lost++
				t.Errorf("post %s: gap before version %d", id, e.Version)
			}
		}
		p, err := post.FromHistory(id, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range sp.events {
			if err := p.Apply(e); err != nil {
				t.Errorf("post %s does not fold: %v", id, err)
				break
			}
			sp.states = append(sp.states, p.State())
		}
	}
	return posts, v.stored, v
}

// checkAcks counts acknowledged commands missing from the store (lost) and versions
// acknowledged to two commands (a silent overwrite, counted as duplicated).
func checkAcks(t *testing.T, l *ledger, posts map[string]*storedPost, v *verdict) {
	t.Helper()
	type key struct {
		id      string
		version int64
	}
	acked := map[key]string{}
	for _, a := range l.acks {
		k := key{a.id, a.version}
		if prev, ok := acked[k]; ok {
			v.duplicated++
			t.Errorf("post %s version %d acknowledged to two commands (%s, %s)", a.id, a.version, prev, a.content)
			continue
		}
		acked[k] = a.content
		sp := posts[a.id]
		if sp == nil || a.version < 1 || a.version > int64(len(sp.states)) || sp.states[a.version-1].Content != a.content {
			v.lost++
			t.Errorf("acknowledged command (post %s, version %d, content %s) is not in the event store", a.id, a.version, a.content)
		}
	}
}

// viewDiff compares what the query server shows of a post with the fold of the event store;
// it returns "" when they agree.
func viewDiff(got map[string]any, want post.State) string {
	wantFields := map[string]any{
		"id": want.ID, "version": float64(want.Version), "title": want.Title, "content": want.Content,
		"author_name": want.AuthorName, "deleted": want.Deleted,
	}
	for k, w := range wantFields {
		if got[k] != w {
			return fmt.Sprintf("%s = %v, want %v", k, got[k], w)
		}
	}
	for k, w := range map[string]time.Time{"created_at": want.CreatedAt, "updated_at": want.UpdatedAt} {
		s, _ := got[k].(string)
		g, err := time.Parse(time.RFC3339Nano, s)
		if err != nil || !g.Equal(w) {
			return fmt.Sprintf("%s = %v, want %v", k, got[k], w)
		}
	}
	return ""
}

// postDiff compares one post's view and history on a query server with the store; it returns
// "" when they agree, and how many stored versions the history lacks or has twice.
func postDiff(queryURL, id string, sp *storedPost) (diff string, missing, twice int) {
	n := int64(len(sp.states))
	r, err := send("GET", fmt.Sprintf("%s/posts/%s?min_version=%d", queryURL, id, n), nil)
	if err != nil {
		return err.Error(), 0, 0
	}
	items, _, err := harness.History(queryURL, id)
	if err != nil {
		return err.Error(), 0, 0
	}
	count := map[int64]int{}
	var hdiff string
	for _, it := range items {
		ver := int64(it["version"].(float64))
		count[ver]++
		if ver < 1 || ver > n {
			hdiff = fmt.Sprintf("history has version %d, the store %d", ver, n)
			continue
		}
		p, _ := it["post"].(map[string]any)
		if d := viewDiff(p, sp.states[ver-1]); d != "" && hdiff == "" {
			hdiff = fmt.Sprintf("history v%d: %s", ver, d)
		}
		if it["event_id"] != sp.events[ver-1].ID && hdiff == "" {
			hdiff = fmt.Sprintf("history v%d: event %v, want %s", ver, it["event_id"], sp.events[ver-1].ID)
		}
	}
	for ver := int64(1); ver <= n; ver++ {
		switch c := count[ver]; {
		case c == 0:
			missing++
		case c > 1:
			twice += c - 1
		}
	}
	want := sp.states[n-1]
	switch {
	case want.Deleted && r.Status == http.StatusGone:
	case r.Status != http.StatusOK:
		diff = fmt.Sprintf("view: status %d %s", r.Status, r.Raw)
	default:
		diff = viewDiff(r.Body, want)
	}
	if diff == "" {
		diff = hdiff
	}
	if diff == "" && (missing > 0 || twice > 0) {
		diff = fmt.Sprintf("history lacks %d versions, has %d twice", missing, twice)
	}
	return diff, missing, twice
}

// consistency is the check every scenario ends with: every acknowledged command is in the
// event store, every stream there is gapless and without duplicates, and — polled until
// sc.converge — every query server's view and history of every post equal the fold of its
// events. It records the scenario's row and fails the test unless nothing was lost or
// duplicated and every view matches.
func consistency(t *testing.T, scenario string, sc scale, dsn string, queryURLs []string, l *ledger) verdict {
	t.Helper()
	posts, _, v := readStore(t, dsn)
	checkAcks(t, l, posts, &v)
	v.posts = len(posts)
	if v.posts < len(l.ids) {
		t.Errorf("%d posts in the store, %d created", v.posts, len(l.ids))
	}
	begin := time.Now()
	matching, missing, twice := awaitPosts(t, posts, queryURLs, begin.Add(sc.converge))
	v.matching = matching
	v.converged = time.Since(begin)
	v.lost += missing
	v.duplicated += twice
	l.mu.Lock()
	sent, acked := l.sent, len(l.acks)
	l.mu.Unlock()
	record(row{Scenario: scenario, Sent: sent, Acked: acked, Stored: v.stored, Matching: v.matching, Posts: v.posts,
		Lost: v.lost, Duplicated: v.duplicated, Converged: v.converged})
	if v.lost != 0 || v.duplicated != 0 || v.matching != v.posts {
		t.Errorf("%s: lost %d, duplicated %d, views matching %d/%d", scenario, v.lost, v.duplicated, v.matching, v.posts)
	}
	return v
}

// awaitPosts polls, until deadline, each post's view and history on every query server until
// they equal the store's, failing the test for each that does not. It returns how many posts
// matched everywhere, and how many stored versions the histories lacked or had twice.
func awaitPosts(t *testing.T, posts map[string]*storedPost, queryURLs []string, deadline time.Time) (matching, missing, twice int) {
	t.Helper()
	for id, sp := range posts {
		ok := true
		for _, q := range queryURLs {
			for {
				d, m, tw := postDiff(q, id, sp)
				if d == "" {
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("post %s on %s: %s", id, q, d)
					missing, twice, ok = missing+m, twice+tw, false
					break
				}
				time.Sleep(50 * time.Millisecond) // polling a condition with a deadline
			}
		}
		if ok {
			matching++
		}
	}
	return matching, missing, twice
}
