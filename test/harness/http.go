package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Response is an HTTP answer with its body decoded as a JSON object when it is one.
type Response struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    []byte
}

// Client is the HTTP client of the helpers here: every request ends within 30 seconds.
var Client = &http.Client{Timeout: 30 * time.Second}

// Send sends a request with a body (a string or []byte as it is, any other value as JSON; the
// content type is JSON either way) and headers as name, value pairs. It returns the answer, or
// the transport error, which tests that kill processes and servers expect.
func Send(method, url string, body any, headers ...string) (Response, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			return Response{}, err
		}
		rd = bytes.NewReader(enc)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, url, rd)
	if err != nil {
		return Response{}, err
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := Client.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer func() { _ = res.Body.Close() }()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return Response{}, err
	}
	r := Response{Status: res.StatusCode, Header: res.Header, Raw: raw}
	_ = json.Unmarshal(raw, &r.Body)
	return r, nil
}

// Do is Send for requests that must reach the server: a transport error fails the test.
func Do(t testing.TB, method, url string, body any, headers ...string) Response {
	t.Helper()
	r, err := Send(method, url, body, headers...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return r
}

// Must fails the test unless the response has the status, and returns it for chaining.
func (r Response) Must(t testing.TB, status int) Response {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d; body %s", r.Status, status, r.Raw)
	}
	return r
}

// Str is the body's string field key, or "" when it has none.
func (r Response) Str(key string) string {
	s, _ := r.Body[key].(string)
	return s
}

// Num is the body's number field key as an integer, or 0 when it has none.
func (r Response) Num(key string) int64 {
	f, _ := r.Body[key].(float64)
	return int64(f)
}

// Items is the body's "items" array of objects, as list endpoints answer.
func (r Response) Items() []map[string]any {
	raw, _ := r.Body["items"].([]any)
	out := make([]map[string]any, 0, len(raw))
	for _, it := range raw {
		m, _ := it.(map[string]any)
		out = append(out, m)
	}
	return out
}

// History reads a post's whole history from a query server, following next_cursor in pages of
// the largest size the server serves. It stops at the first answer that is not a 200 and
// returns it as last, with the entries of the pages before it; the transport error, if any.
func History(queryURL, id string) (entries []map[string]any, last Response, err error) {
	base := queryURL + "/posts/" + url.PathEscape(id) + "/history?limit=100"
	u := base
	for range 10_000 {
		if last, err = Send(http.MethodGet, u, nil); err != nil || last.Status != http.StatusOK {
			return entries, last, err
		}
		entries = append(entries, last.Items()...)
		next := last.Str("next_cursor")
		if next == "" {
			return entries, last, nil
		}
		u = base + "&cursor=" + url.QueryEscape(next)
	}
	return entries, last, errors.New("the pages of the history do not come to an end")
}

// MustHistory is History for a history that must be read whole: a transport error or an
// answer other than 200 fails the test.
func MustHistory(t testing.TB, queryURL, id string) []map[string]any {
	t.Helper()
	entries, last, err := History(queryURL, id)
	if err != nil {
		t.Fatalf("history of %s: %v", id, err)
	}
	last.Must(t, http.StatusOK)
	return entries
}
