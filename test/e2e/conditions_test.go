package e2e_test

import (
	"net/http"
	"testing"
)

// TestConditionalRequests follows one post through the conditional requests of RFC 9110 on
// one process: the Location of a create and the Content-Location of a change lead to the post
// at that version on the query server, a stale or weak If-Match is 412 with the current ETag,
// If-Match: * matches the post, and a read whose If-None-Match holds the version is 304.
func TestConditionalRequests(t *testing.T) {
	t.Parallel()
	p := start(t, nil)
	cmd, qry := p.CommandURL, p.QueryURL

	created := do(t, "POST", cmd+"/posts", map[string]string{
		"title": "v1", "content": "c", "author_name": "conditions",
	}).Must(t, http.StatusCreated)
	id := created.Str("id")
	post := cmd + "/posts/" + id
	if got, want := created.Header.Get("Location"), qry+"/posts/"+id+"?min_version=1"; got != want {
		t.Fatalf("Location %q, want %q: the post on this process's query server", got, want)
	}
	read := do(t, "GET", created.Header.Get("Location"), nil).Must(t, http.StatusOK)
	if read.Num("version") != 1 || read.Str("title") != "v1" || read.Header.Get("ETag") != `"1"` {
		t.Fatalf("following Location: ETag %q, %s", read.Header.Get("ETag"), read.Raw)
	}

	updated := do(t, "PATCH", post, map[string]string{"title": "v2"}, "If-Match", `"1"`).Must(t, http.StatusOK)
	if got, want := updated.Header.Get("Content-Location"), qry+"/posts/"+id+"?min_version=2"; got != want {
		t.Fatalf("Content-Location %q, want %q", got, want)
	}
	read = do(t, "GET", updated.Header.Get("Content-Location"), nil).Must(t, http.StatusOK)
	if read.Num("version") != 2 || read.Str("title") != "v2" {
		t.Fatalf("following Content-Location: %s", read.Raw)
	}

	// Preconditions that fail: the answer names the version to retry with, and nothing changes.
	for _, ifMatch := range []string{`"1"`, `W/"2"`, `"7"`, `"1", W/"2"`} {
		r := do(t, "PATCH", post, map[string]string{"title": "never"}, "If-Match", ifMatch).
			Must(t, http.StatusPreconditionFailed)
		assertProblemNames(t, r, "If-Match")
		if r.Header.Get("ETag") != `"2"` {
			t.Errorf("If-Match %s: 412 with ETag %q, want \"2\"", ifMatch, r.Header.Get("ETag"))
		}
	}
	r := do(t, "DELETE", post, nil, "If-Match", `"1"`).Must(t, http.StatusPreconditionFailed)
	if r.Header.Get("ETag") != `"2"` {
		t.Errorf("stale delete: 412 with ETag %q, want \"2\"", r.Header.Get("ETag"))
	}

	// * matches the post whatever its version; a list matches by any of its strong tags.
	anyVersion := do(t, "PATCH", post, map[string]string{"title": "v3"}, "If-Match", `*`).Must(t, http.StatusOK)
	if anyVersion.Num("version") != 3 {
		t.Fatalf("If-Match *: version %d, want 3", anyVersion.Num("version"))
	}
	do(t, "PATCH", post, map[string]string{"title": "v4"}, "If-Match", `W/"3", "3"`).Must(t, http.StatusOK)

	// Conditional reads compare weakly; a version not held is read in full.
	do(t, "GET", qry+"/posts/"+id+"?min_version=4", nil).Must(t, http.StatusOK)
	for _, inm := range []string{`"4"`, `W/"4"`, `"1", "4"`, `*`} {
		r := do(t, "GET", qry+"/posts/"+id, nil, "If-None-Match", inm)
		if r.Status != http.StatusNotModified || r.Header.Get("ETag") != `"4"` || len(r.Raw) != 0 {
			t.Errorf("If-None-Match %s: %d, ETag %q, body %q; want 304, \"4\", none",
				inm, r.Status, r.Header.Get("ETag"), r.Raw)
		}
	}
	full := do(t, "GET", qry+"/posts/"+id, nil, "If-None-Match", `"3"`).Must(t, http.StatusOK)
	if full.Num("version") != 4 || full.Header.Get("ETag") != `"4"` {
		t.Fatalf("If-None-Match of an older version: ETag %q, %s", full.Header.Get("ETag"), full.Raw)
	}

	deleted := do(t, "DELETE", post, nil, "If-Match", `"4"`).Must(t, http.StatusOK)
	if got, want := deleted.Header.Get("Content-Location"), qry+"/posts/"+id+"?min_version=5"; got != want {
		t.Fatalf("Content-Location of the delete %q, want %q", got, want)
	}
	do(t, "GET", deleted.Header.Get("Content-Location"), nil).Must(t, http.StatusGone)
	// A deleted post is gone whatever the condition: no version of it is current.
	do(t, "PATCH", post, map[string]string{"title": "v6"}, "If-Match", `*`).Must(t, http.StatusGone)
	do(t, "GET", qry+"/posts/"+id, nil, "If-None-Match", `*`).Must(t, http.StatusGone)
}

// TestIfMatchRequired runs a command server that requires If-Match and knows the query server's
// public URL: a change without If-Match is 428 and changes nothing, and the Location of a
// create is on that URL.
func TestIfMatchRequired(t *testing.T) {
	t.Parallel()
	p := start(t, map[string]string{
		"POSTS_REQUIRE_IF_MATCH": "on",
		"POSTS_QUERY_URL":        "https://query.example.com/",
	})
	created := do(t, "POST", p.CommandURL+"/posts", map[string]string{
		"title": "t", "content": "c", "author_name": "required",
	}).Must(t, http.StatusCreated)
	id := created.Str("id")
	if got, want := created.Header.Get("Location"), "https://query.example.com/posts/"+id+"?min_version=1"; got != want {
		t.Fatalf("Location %q, want %q", got, want)
	}
	post := p.CommandURL + "/posts/" + id

	r := do(t, "PATCH", post, map[string]string{"title": "unseen"}).Must(t, http.StatusPreconditionRequired)
	assertProblemNames(t, r, "header.If-Match")
	r = do(t, "DELETE", post, nil).Must(t, http.StatusPreconditionRequired)
	assertProblemNames(t, r, "header.If-Match")

	updated := do(t, "PATCH", post, map[string]string{"title": "seen"}, "If-Match", `"1"`).Must(t, http.StatusOK)
	if updated.Num("version") != 2 {
		t.Fatalf("update with If-Match: version %d, want 2 (the refused ones changed nothing)", updated.Num("version"))
	}
	do(t, "DELETE", post, nil, "If-Match", `*`).Must(t, http.StatusOK)
}
