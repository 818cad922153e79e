package commandapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hexapost/api"
	"hexapost/api/commandapi"
	"hexapost/api/servers"
	"hexapost/core/command"
	"hexapost/core/post"
	"hexapost/ports"
)

// TestCreateAnswers pins create-post's answers byte for byte: valid requests, those the schema
// refuses (wrong types, missing or unknown members, lengths out of bounds, malformed JSON,
// bodies too large, bad headers) and those the core refuses (blank fields, a reused key).
func TestCreateAnswers(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(newCommandServer())
	t.Cleanup(srv.Close)

	const valid = `{"title":"Hello","content":"Body","author_name":"Ann"}`
	created := func(title string) want {
		return want{status: 201, contentType: "application/json", location: "/posts/ID?min_version=1", etag: `"1"`,
			body: `{"id":"ID","version":1,"title":"` + title + `","content":"Body","author_name":"Ann",` +
				`"created_at":"TIME","updated_at":"TIME","deleted":false}`}
	}
	problem := func(status int, body string) want {
		return want{status: status, contentType: "application/problem+json", body: body}
	}
	big := `{"title":"t","author_name":"a","content":"` + strings.Repeat("x", 1<<20) + `"}`
	tests := []struct {
		name    string
		give    string
		headers map[string]string
		want    want
	}{
		{name: "valid", give: valid, want: created("Hello")},
		{name: "valid with white space", give: " {\n\t\"author_name\" : \"Ann\" ,\r\n \"content\":\"Body\", \"title\":\"Hello\"}\n ", want: created("Hello")},
		{name: "escapes", give: `{"title":"H\u00e9llo \"x\"\/","content":"Body","author_name":"Ann"}`, want: created(`Héllo \"x\"/`)},
		{name: "title trimmed by the core", give: `{"title":"  Hello ","content":"Body","author_name":"Ann"}`, want: created("Hello")},
		{name: "repeated member, the last wins", give: `{"title":"A","title":"Hello","content":"Body","author_name":"Ann"}`, want: created("Hello")},
		{name: "no content type", give: valid, headers: map[string]string{"Content-Type": ""}, want: created("Hello")},
		{name: "accept another format", give: valid, headers: map[string]string{"Accept": "application/cbor"}, want: created("Hello")},
		{name: "idempotency key", give: valid, headers: map[string]string{"Idempotency-Key": "k1"}, want: created("Hello")},
		{
			name: "idempotency key with another body", give: `{"title":"Other","content":"Body","author_name":"Ann"}`,
			headers: map[string]string{"Idempotency-Key": "k1"},
			want:    problem(422, `{"title":"Unprocessable Entity","status":422,"detail":"idempotency key was used for a different request","errors":[{"message":"idempotency key was used for a different request","location":"header.Idempotency-Key"}]}`),
		},
		{
			name: "idempotency key too long", give: valid, headers: map[string]string{"Idempotency-Key": strings.Repeat("k", 256)},
			want: problem(422, `{"title":"Unprocessable Entity","status":422,"detail":"validation failed","errors":[{"message":"expected length <= 255","location":"header.Idempotency-Key","value":"`+strings.Repeat("k", 256)+`"}]}`),
		},
		{
			name: "blank title", give: `{"title":" ","content":"Body","author_name":"Ann"}`,
			want: problem(422, `{"title":"Unprocessable Entity","status":422,"detail":"validation failed","errors":[{"message":"must not be empty or blank","location":"body.title"}]}`),
		},
		{
			name: "empty title", give: `{"title":"","content":"Body","author_name":"Ann"}`,
			want: problem(422, `{"title":"Unprocessable Entity","status":422,"detail":"validation failed","errors":[{"message":"expected length >= 1","location":"body.title","value":""}]}`),
		},
		{name: "title at its limit", give: `{"title":"` + strings.Repeat("é", post.MaxTitle) + `","content":"Body","author_name":"Ann"}`, want: created(strings.Repeat("é", post.MaxTitle))},
		{
			name: "title too long", give: `{"title":"` + strings.Repeat("é", post.MaxTitle+1) + `","content":"Body","author_name":"Ann"}`,
			want: problem(422, `{"title":"Unprocessable Entity","status":422,"detail":"validation failed","errors":[{"message":"expected length <= 200","location":"body.title","value":"`+strings.Repeat("é", post.MaxTitle+1)+`"}]}`),
		},
		// The schema bounds the title as sent; the core trims it.
		{
			name: "title too long before trimming", give: `{"title":" ` + strings.Repeat("é", post.MaxTitle) + `","content":"Body","author_name":"Ann"}`,
			want: problem(422, `{"title":"Unprocessable Entity","status":422,"detail":"validation failed","errors":[{"message":"expected length <= 200","location":"body.title","value":" `+strings.Repeat("é", post.MaxTitle)+`"}]}`),
		},
		{
			name: "author name too long", give: `{"title":"Hello","content":"Body","author_name":"` + strings.Repeat("a", post.MaxAuthorName+1) + `"}`,
			want: problem(422, `{"title":"Unprocessable Entity","status":422,"detail":"validation failed","errors":[{"message":"expected length <= 100","location":"body.author_name","value":"`+strings.Repeat("a", post.MaxAuthorName+1)+`"}]}`),
		},
		{
			name: "content too long, not echoed", give: `{"title":"Hello","content":"` + strings.Repeat("c", post.MaxContent+1) + `","author_name":"Ann"}`,
			want: problem(422, `{"title":"Unprocessable Entity","status":422,"detail":"validation failed","errors":[{"message":"expected length <= 100000","location":"body.content"}]}`),
		},
		// encoding/json replaces bytes that are not UTF-8 by U+FFFD.
		{name: "invalid UTF-8", give: "{\"title\":\"Hello\xff\",\"content\":\"Body\",\"author_name\":\"Ann\"}", want: created("Hello\uFFFD")},
		{
			name: "missing member", give: `{"title":"Hello","content":"Body"}`,
			want: problem(422, `{"title":"Unprocessable Entity","status":422,"detail":"validation failed","errors":[{"message":"expected required property author_name to be present","location":"body","value":{"content":"Body","title":"Hello"}}]}`),
		},
		{
			name: "wrong type and unknown member", give: `{"title":1,"content":"Body","author_name":"Ann","x":1}`,
			want: problem(422, `{"title":"Unprocessable Entity","status":422,"detail":"validation failed","errors":[{"message":"expected string","location":"body.title","value":1},{"message":"unexpected property","location":"body.x","value":{"author_name":"Ann","content":"Body","title":1,"x":1}}]}`),
		},
		{
			name: "null", give: `{"title":null,"content":"Body","author_name":"Ann"}`,
			want: problem(422, `{"title":"Unprocessable Entity","status":422,"detail":"validation failed","errors":[{"message":"expected string","location":"body.title"}]}`),
		},
		// huma matches member names as encoding/json does, ignoring case.
		{name: "member in another case", give: `{"Title":"Hello","content":"Body","author_name":"Ann"}`, want: created("Hello")},
		{
			name: "not an object", give: `["Hello"]`,
			want: problem(422, `{"title":"Unprocessable Entity","status":422,"detail":"validation failed","errors":[{"message":"expected object","location":"body","value":["Hello"]}]}`),
		},
		{
			name: "malformed", give: `{"title":"Hello",`,
			want: problem(400, `{"title":"Bad Request","status":400,"detail":"validation failed","errors":[{"message":"unexpected end of JSON input","location":"body","value":"{\"title\":\"Hello\","}]}`),
		},
		{
			name: "trailing data", give: valid + ` x`,
			want: problem(400, `{"title":"Bad Request","status":400,"detail":"validation failed","errors":[{"message":"invalid character 'x' after top-level value","location":"body","value":"{\"title\":\"Hello\",\"content\":\"Body\",\"author_name\":\"Ann\"} x"}]}`),
		},
		{
			name: "control character in a string", give: "{\"title\":\"He\tllo\",\"content\":\"Body\",\"author_name\":\"Ann\"}",
			want: problem(400, `{"title":"Bad Request","status":400,"detail":"validation failed","errors":[{"message":"invalid character '\\t' in string","location":"body","value":"{\"title\":\"He\tllo\",\"content\":\"Body\",\"author_name\":\"Ann\"}"}]}`),
		},
		{
			name: "empty body", give: ``,
			want: problem(400, `{"title":"Bad Request","status":400,"detail":"request body is required"}`),
		},
		{
			name: "body too large", give: big,
			want: problem(413, `{"title":"Request Entity Too Large","status":413,"detail":"request body is too large limit=1048576 bytes"}`),
		},
		{
			name: "another content type", give: valid, headers: map[string]string{"Content-Type": "text/plain"},
			want: problem(415, `{"title":"Unsupported Media Type","status":415,"detail":"validation failed","errors":[{"message":"unknown content type: text/plain","location":"body","value":"{\"title\":\"Hello\",\"content\":\"Body\",\"author_name\":\"Ann\"}"}]}`),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/posts", strings.NewReader(tt.give))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			if got := answer(t, srv.Client(), req); got != tt.want {
				t.Errorf("answer\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// TestProblemsStaySmall checks that a body with many errors gets a short answer: a bounded list
// of errors, without the body repeated in each.
func TestProblemsStaySmall(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(newCommandServer())
	t.Cleanup(srv.Close)
	var body strings.Builder
	body.WriteString(`{"title":"Hello","content":"` + strings.Repeat("c", post.MaxContent+1) + `","author_name":"Ann"`)
	for i := range 5000 {
		fmt.Fprintf(&body, `,"x%d":1`, i)
	}
	body.WriteString("}")
	res, err := srv.Client().Post(srv.URL+"/posts", "application/json", strings.NewReader(body.String()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	var problem struct {
		Errors []struct{ Location string }
	}
	b, err := io.ReadAll(res.Body)
	if err == nil {
		err = json.Unmarshal(b, &problem)
	}
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusUnprocessableEntity || len(problem.Errors) != 20 || len(b) > 4<<10 {
		t.Errorf("status %d, %d errors, %d bytes, want 422, 20 errors, at most 4 KiB: %.500s",
			res.StatusCode, len(problem.Errors), len(b), b)
	}
}

// BenchmarkCreate measures what the command server's HTTP layer adds to a create: the core
// runs over a store that keeps nothing.
func BenchmarkCreate(b *testing.B) {
	h := newCommandServer()
	const body = `{"title":"A post of a usual size","content":"A paragraph or so of text, as people write it.","author_name":"Ann"}`
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequestWithContext(b.Context(), http.MethodPost, "/posts", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusCreated {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
}

// TestConditionsAnswers pins the answers to a change's If-Match as the handler reads it, on a
// server that requires it and knows the query server's URL. The store holds no post, so a
// condition the handler accepts reaches the core and finds none.
func TestConditionsAnswers(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(newCommandServerWith(commandapi.Config{
		RequireIfMatch: true, QueryURL: func() string { return "https://query.example.com" },
	}))
	t.Cleanup(srv.Close)
	const (
		missing  = `{"title":"Precondition Required","status":428,"detail":"this server requires If-Match on every change: send the ETag of the version the change applies to, or * for any version","errors":[{"message":"this server requires If-Match on every change: send the ETag of the version the change applies to, or * for any version","location":"header.If-Match"}]}`
		notFound = `{"title":"Not Found","status":404,"detail":"post not found"}`
		bad      = `{"title":"Unprocessable Entity","status":422,"detail":"validation failed","errors":[{"message":"want * or a list of entity tags such as \"3\" (quoted) or W/\"3\"","location":"header.If-Match"}]}`
	)
	unknown := srv.URL + "/posts/0190b6a0-0000-7000-8000-00000000ffff"
	tests := []struct {
		name, method, url, body, ifMatch string
		want                             want
	}{
		{name: "create needs no If-Match, and leads to the query server", method: "POST", url: srv.URL + "/posts",
			body: `{"title":"Hello","content":"Body","author_name":"Ann"}`,
			want: want{status: 201, contentType: "application/json", location: "https://query.example.com/posts/ID?min_version=1", etag: `"1"`,
				body: `{"id":"ID","version":1,"title":"Hello","content":"Body","author_name":"Ann","created_at":"TIME","updated_at":"TIME","deleted":false}`}},
		{name: "update without If-Match", method: "PATCH", url: unknown, body: `{"title":"x"}`,
			want: want{status: 428, contentType: "application/problem+json", body: missing}},
		{name: "delete without If-Match", method: "DELETE", url: unknown,
			want: want{status: 428, contentType: "application/problem+json", body: missing}},
		{name: "any version", method: "PATCH", url: unknown, body: `{"title":"x"}`, ifMatch: `*`,
			want: want{status: 404, contentType: "application/problem+json", body: notFound}},
		{name: "a weak tag", method: "DELETE", url: unknown, ifMatch: `W/"1"`,
			want: want{status: 404, contentType: "application/problem+json", body: notFound}},
		{name: "a version", method: "DELETE", url: unknown, ifMatch: `"1", W/"2"`,
			want: want{status: 404, contentType: "application/problem+json", body: notFound}},
		{name: "unquoted", method: "PATCH", url: unknown, body: `{"title":"x"}`, ifMatch: `1`,
			want: want{status: 422, contentType: "application/problem+json", body: bad}},
		{name: "garbage", method: "DELETE", url: unknown, ifMatch: `banana`,
			want: want{status: 422, contentType: "application/problem+json", body: bad}},
		{name: "two versions", method: "PATCH", url: unknown, body: `{"title":"x"}`, ifMatch: `"1", "2"`,
			want: want{status: 422, contentType: "application/problem+json",
				body: `{"title":"Unprocessable Entity","status":422,"detail":"validation failed","errors":[{"message":"a post has one current version: name one","location":"header.If-Match"}]}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequestWithContext(t.Context(), tt.method, tt.url, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			if tt.ifMatch != "" {
				req.Header.Set("If-Match", tt.ifMatch)
			}
			if got := answer(t, srv.Client(), req); got != tt.want {
				t.Errorf("answer\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// newCommandServer returns the command server's operations over a keyStore.
func newCommandServer() http.Handler {
	return newCommandServerWith(commandapi.Config{})
}

// newCommandServerWith returns the command server's operations over a keyStore, configured cfg.
func newCommandServerWith(cfg commandapi.Config) http.Handler {
	store := &keyStore{keys: map[string]ports.IdempotencyRecord{}}
	var n atomic.Int64
	newID := func() string { return fmt.Sprintf("0190b6a0-0000-7000-8000-%012x", n.Add(1)) }
	svc := command.NewService(command.NewStreams(store), store, newID, time.Now, slog.New(slog.DiscardHandler), command.Config{})
	mux := http.NewServeMux()
	servers.Command(mux, commandapi.NewHandler(svc, slog.New(slog.DiscardHandler), nil, cfg), api.Operations{})
	return mux
}

type want struct {
	status                      int
	contentType, location, etag string
	body                        string
}

// answer sends req and returns its answer with ids and times normalized.
func answer(t *testing.T, c *http.Client, req *http.Request) want {
	t.Helper()
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(res.Body)
	if err := errors.Join(err, res.Body.Close()); err != nil {
		t.Fatal(err)
	}
	return want{
		status: res.StatusCode, contentType: res.Header.Get("Content-Type"),
		location: normalize(res.Header.Get("Location")), etag: res.Header.Get("ETag"),
		body: normalize(strings.TrimSuffix(string(b), "\n")),
	}
}

var (
	uuidRE = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	timeRE = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`)
)

// normalize replaces ids and times, which differ from run to run.
func normalize(s string) string {
	return timeRE.ReplaceAllString(uuidRE.ReplaceAllString(s, "ID"), "TIME")
}

// keyStore is an event store of new posts that keeps only their idempotency records: all that
// creates need.
type keyStore struct {
	mu   sync.Mutex
	keys map[string]ports.IdempotencyRecord
}

func (s *keyStore) Load(context.Context, string, int64) ([]post.Event, error) { return nil, nil }

func (s *keyStore) ReadAll(context.Context, int64, int) ([]ports.Recorded, error) { return nil, nil }

func (s *keyStore) Append(_ context.Context, a ports.Append) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a.ExpectedVersion != 0 {
		return fmt.Errorf("append %s at version %d: %w", a.PostID, a.ExpectedVersion, ports.ErrConflict)
	}
	if k := a.Idempotency; k != nil {
		if _, ok := s.keys[k.Key]; ok {
			return fmt.Errorf("key %s: %w", k.Key, ports.ErrDuplicate)
		}
		s.keys[k.Key] = *k
	}
	return nil
}

func (s *keyStore) Lookup(_ context.Context, key string) (ports.IdempotencyRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.keys[key]; ok {
		return k, nil
	}
	return ports.IdempotencyRecord{}, ports.ErrNotFound
}
