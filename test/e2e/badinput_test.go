package e2e_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"hexapost/test/harness"
)

// assertProblemNames fails unless r is a problem+json whose text names want.
func assertProblemNames(t *testing.T, r response, want string) {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Errorf("Content-Type %q, want application/problem+json; body %s", ct, r.Raw)
	}
	if r.Num("status") != int64(r.Status) || r.Str("title") == "" {
		t.Errorf("problem lacks status/title: %s", r.Raw)
	}
	if !strings.Contains(strings.ToLower(string(r.Raw)), strings.ToLower(want)) {
		t.Errorf("problem does not name %q: %s", want, r.Raw)
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	p := start(t, nil)
	id := do(t, "POST", p.CommandURL+"/posts", map[string]string{
		"title": "target", "content": "c", "author_name": "a",
	}).Must(t, http.StatusCreated).Str("id")
	do(t, "GET", p.QueryURL+"/posts/"+id+"?min_version=1", nil).Must(t, http.StatusOK)

	valid := func(field, value string) string {
		f := map[string]string{"title": `"t"`, "content": `"c"`, "author_name": `"a"`}
		if value == "" {
			delete(f, field)
		} else {
			f[field] = value
		}
		parts := make([]string, 0, len(f))
		for k, v := range f {
			parts = append(parts, fmt.Sprintf("%q:%s", k, v))
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	long := func(n int) string { return `"` + strings.Repeat("é", n) + `"` }
	cmd, qry := p.CommandURL, p.QueryURL
	tests := []struct {
		name       string
		giveMethod string
		giveURL    string
		giveBody   string
		giveHeader []string
		wantStatus int
		wantNames  string
	}{
		{"missing title", "POST", cmd + "/posts", valid("title", ""), nil, 422, "title"},
		{"missing content", "POST", cmd + "/posts", valid("content", ""), nil, 422, "content"},
		{"missing author", "POST", cmd + "/posts", valid("author_name", ""), nil, 422, "author_name"},
		{"empty title", "POST", cmd + "/posts", valid("title", `""`), nil, 422, "body.title"},
		{"blank title", "POST", cmd + "/posts", valid("title", `"   "`), nil, 422, "body.title"},
		{"empty content", "POST", cmd + "/posts", valid("content", `""`), nil, 422, "body.content"},
		{"empty author", "POST", cmd + "/posts", valid("author_name", `""`), nil, 422, "body.author_name"},
		{"title too long", "POST", cmd + "/posts", valid("title", long(201)), nil, 422, "length <= 200"},
		{"author too long", "POST", cmd + "/posts", valid("author_name", long(101)), nil, 422, "length <= 100"},
		{"content too long", "POST", cmd + "/posts", valid("content", long(100_001)), nil, 422, "length <= 100000"},
		{"title a number", "POST", cmd + "/posts", valid("title", `42`), nil, 422, "title"},
		{"content an object", "POST", cmd + "/posts", valid("content", `{"a":1}`), nil, 422, "content"},
		{"author null", "POST", cmd + "/posts", valid("author_name", `null`), nil, 422, "author_name"},
		{"unknown field", "POST", cmd + "/posts", `{"title":"t","content":"c","author_name":"a","tags":[]}`, nil, 422, "tags"},
		{"malformed JSON", "POST", cmd + "/posts", `{"title": "t",`, nil, 400, "JSON"},
		{"not an object", "POST", cmd + "/posts", `[1,2,3]`, nil, 422, "object"},
		{"empty body", "POST", cmd + "/posts", ``, nil, 400, "body"},
		{"body over 1 MiB", "POST", cmd + "/posts", `{"title":"t","author_name":"a","content":"` + strings.Repeat("x", 1<<20) + `"}`, nil, 413, "too large"},
		{"idempotency key too long", "POST", cmd + "/posts", valid("title", `"t"`), []string{"Idempotency-Key", strings.Repeat("k", 256)}, 422, "Idempotency-Key"},
		{"patch with no field", "PATCH", cmd + "/posts/" + id, `{}`, nil, 422, "at least one of"},
		{"patch empty title", "PATCH", cmd + "/posts/" + id, `{"title":""}`, nil, 422, "body.title"},
		{"patch wrong type", "PATCH", cmd + "/posts/" + id, `{"title":true}`, nil, 422, "title"},
		{"patch unknown field", "PATCH", cmd + "/posts/" + id, `{"titel":"x"}`, nil, 422, "titel"},
		{"patch non-UUID id", "PATCH", cmd + "/posts/not-a-uuid", `{"title":"x"}`, nil, 422, "path.id"},
		{"patch If-Match garbage", "PATCH", cmd + "/posts/" + id, `{"title":"x"}`, []string{"If-Match", "banana"}, 422, "If-Match"},
		{"patch If-Match unquoted", "PATCH", cmd + "/posts/" + id, `{"title":"x"}`, []string{"If-Match", "1"}, 422, "If-Match"},
		{"patch unknown post", "PATCH", cmd + "/posts/0190b6a0-0000-7000-8000-000000000000", `{"title":"x"}`, nil, 404, "not found"},
		{"delete non-UUID id", "DELETE", cmd + "/posts/42", ``, nil, 422, "path.id"},
		{"patch If-Match two versions", "PATCH", cmd + "/posts/" + id, `{"title":"x"}`, []string{"If-Match", `"1", "2"`}, 422, "If-Match"},
		{"delete If-Match garbage", "DELETE", cmd + "/posts/" + id, ``, []string{"If-Match", `"x`}, 422, "If-Match"},
		// A tag in the field's syntax that this server never sends matches no version.
		{"delete If-Match a tag never sent", "DELETE", cmd + "/posts/" + id, ``, []string{"If-Match", `"x"`}, 412, "If-Match"},
		{"patch If-Match weak", "PATCH", cmd + "/posts/" + id, `{"title":"x"}`, []string{"If-Match", `W/"1"`}, 412, "If-Match"},
		{"get non-UUID id", "GET", qry + "/posts/nope", ``, nil, 422, "path.id"},
		{"get negative min_version", "GET", qry + "/posts/" + id + "?min_version=-1", ``, nil, 422, "min_version"},
		{"get min_version not a number", "GET", qry + "/posts/" + id + "?min_version=abc", ``, nil, 422, "min_version"},
		{"get unknown post", "GET", qry + "/posts/0190b6a0-0000-7000-8000-000000000000", ``, nil, 404, "not found"},
		{"get If-None-Match garbage", "GET", qry + "/posts/" + id, ``, []string{"If-None-Match", "3"}, 422, "If-None-Match"},
		{"list bad cursor", "GET", qry + "/posts?cursor=%21%21%21", ``, nil, 422, "cursor"},
		{"list forged cursor", "GET", qry + "/posts?cursor=djEuYWJjLmlk", ``, nil, 422, "cursor"},
		{"list limit 0", "GET", qry + "/posts?limit=0", ``, nil, 422, "limit"},
		{"list limit 101", "GET", qry + "/posts?limit=101", ``, nil, 422, "limit"},
		{"list limit huge", "GET", qry + "/posts?limit=99999999999999999999", ``, nil, 422, "limit"},
		{"history non-UUID", "GET", qry + "/posts/x/history", ``, nil, 422, "path.id"},
		{"history unknown post", "GET", qry + "/posts/0190b6a0-0000-7000-8000-000000000000/history", ``, nil, 404, "not found"},
		{"history bad cursor", "GET", qry + "/posts/" + id + "/history?cursor=%21%21%21", ``, nil, 422, "query.cursor"},
		{"history list cursor", "GET", qry + "/posts/" + id + "/history?cursor=djEuYWJjLmlk", ``, nil, 422, "query.cursor"},
		{"history cursor version 0", "GET", qry + "/posts/" + id + "/history?cursor=aDEuMA", ``, nil, 422, "query.cursor"},
		{"history cursor version 01", "GET", qry + "/posts/" + id + "/history?cursor=aDEuMDE", ``, nil, 422, "query.cursor"},
		{"history limit 0", "GET", qry + "/posts/" + id + "/history?limit=0", ``, nil, 422, "limit"},
		{"history limit 101", "GET", qry + "/posts/" + id + "/history?limit=101", ``, nil, 422, "limit"},
		{"redrive unknown dead letter", "POST", qry + "/admin/dead-letters/nope/redrive", ``, harness.AdminAuth(), 404, "not found"},
		{"discard unknown dead letter", "DELETE", qry + "/admin/dead-letters/nope", ``, harness.AdminAuth(), 404, "not found"},
		{"unknown route", "GET", cmd + "/nope", ``, nil, 404, "/nope"},
		{"wrong method", "PUT", cmd + "/posts/" + id, `{}`, nil, 405, "PUT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var body any
			if tt.giveBody != "" {
				body = tt.giveBody
			}
			r := do(t, tt.giveMethod, tt.giveURL, body, tt.giveHeader...)
			if r.Status != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %s", r.Status, tt.wantStatus, r.Raw)
			}
			assertProblemNames(t, r, tt.wantNames)
		})
	}

	// Nothing of the above changed the post.
	after := do(t, "GET", qry+"/posts/"+id, nil).Must(t, http.StatusOK)
	if after.Num("version") != 1 || after.Str("title") != "target" {
		t.Fatalf("bad requests changed the post: %s", after.Raw)
	}
}
