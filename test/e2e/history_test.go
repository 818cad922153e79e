package e2e_test

import (
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"testing"
)

// TestHistoryPages reads the history of a post with 45 versions over HTTP: pages of the asked
// size, oldest first, each version once, next_cursor leading to the next page and absent on
// the last.
func TestHistoryPages(t *testing.T) {
	t.Parallel()
	const versions = 45
	p := start(t, nil)
	id := do(t, "POST", p.CommandURL+"/posts", map[string]string{
		"title": "paged", "content": "edit 0", "author_name": "pager",
	}).Must(t, http.StatusCreated).Str("id")
	for i := 1; i < versions; i++ {
		do(t, "PATCH", p.CommandURL+"/posts/"+id, map[string]string{"content": fmt.Sprintf("edit %d", i)}).
			Must(t, http.StatusOK)
	}
	do(t, "GET", fmt.Sprintf("%s/posts/%s?min_version=%d", p.QueryURL, id, versions), nil).Must(t, http.StatusOK)
	historyURL := p.QueryURL + "/posts/" + id + "/history"

	var got, want []float64
	var sizes []int
	var cursors []string
	u := historyURL + "?limit=20"
	for range versions {
		r := do(t, "GET", u, nil).Must(t, http.StatusOK)
		for _, e := range r.Items() {
			got = append(got, e["version"].(float64))
		}
		sizes = append(sizes, len(r.Items()))
		next, ok := r.Body["next_cursor"]
		if !ok {
			break
		}
		cursors = append(cursors, next.(string))
		u = historyURL + "?limit=20&cursor=" + url.QueryEscape(next.(string))
	}
	for v := 1; v <= versions; v++ {
		want = append(want, float64(v))
	}
	if !reflect.DeepEqual(sizes, []int{20, 20, 5}) || !reflect.DeepEqual(got, want) {
		t.Fatalf("pages of 20: sizes %v, versions %v; want 20, 20, 5 and versions 1 to %d in order", sizes, got, versions)
	}

	tests := []struct {
		name       string
		giveQuery  string
		wantFirst  float64
		wantLen    int
		wantCursor bool
	}{
		{"the default page", "", 1, 20, true},
		{"the largest page", "?limit=100", 1, versions, false},
		{"a page after a cursor", "?limit=3&cursor=" + url.QueryEscape(cursors[0]), 21, 3, true},
		{"the default page after a cursor", "?cursor=" + url.QueryEscape(cursors[1]), 41, 5, false},
	}
	for _, tt := range tests {
		r := do(t, "GET", historyURL+tt.giveQuery, nil).Must(t, http.StatusOK)
		items := r.Items()
		var first any
		if len(items) > 0 {
			first = items[0]["version"]
		}
		_, hasCursor := r.Body["next_cursor"]
		if len(items) != tt.wantLen || first != tt.wantFirst || hasCursor != tt.wantCursor {
			t.Errorf("%s: %d entries from version %v, next_cursor %t; want %d from %v, next_cursor %t",
				tt.name, len(items), first, hasCursor, tt.wantLen, tt.wantFirst, tt.wantCursor)
		}
	}

	// A cursor of one post on a post that does not exist is still a 404.
	unknown := p.QueryURL + "/posts/0190b6a0-0000-7000-8000-000000000000/history?cursor=" + url.QueryEscape(cursors[0])
	assertProblemNames(t, do(t, "GET", unknown, nil).Must(t, http.StatusNotFound), "not found")
}
