// Package client is a small typed Go client of hexapost's HTTP API: the commands of the command
// server and the reads of the query server, with answers decoded into Go values and error
// answers into *Problem. The load tool and the end-to-end tests talk to hexapost through it.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Config says where the two servers are.
type Config struct {
	// CommandURL is the command server's base URL, e.g. http://127.0.0.1:3000.
	CommandURL string
	// QueryURL is the query server's base URL, e.g. http://127.0.0.1:4000; empty when only
	// commands are sent.
	QueryURL string
	// HTTP sends the requests; http.DefaultClient when nil.
	HTTP *http.Client
}

// Client sends requests to a hexapost command server and query server. It is safe for
// concurrent use.
type Client struct {
	command, query string
	http           *http.Client
}

// New checks the servers' URLs and returns a client of them.
func New(cfg Config) (*Client, error) {
	c := &Client{http: cfg.HTTP}
	if c.http == nil {
		c.http = http.DefaultClient
	}
	var err error
	if c.command, err = baseURL("command", cfg.CommandURL); err != nil {
		return nil, err
	}
	if cfg.QueryURL != "" {
		if c.query, err = baseURL("query", cfg.QueryURL); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func baseURL(server, s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%s server URL %q: want http://host:port", server, s)
	}
	return strings.TrimRight(s, "/"), nil
}

// Post is a post as both servers answer it.
type Post struct {
	ID         string    `json:"id"`
	Version    int64     `json:"version"`
	Title      string    `json:"title"`
	Content    string    `json:"content"`
	AuthorName string    `json:"author_name"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	Deleted    bool      `json:"deleted"`
	// Erased is set in the history of an erased post, whose personal data is gone.
	Erased bool `json:"erased,omitempty"`
}

// NewPost is the body of a create.
type NewPost struct {
	Title      string `json:"title"`
	Content    string `json:"content"`
	AuthorName string `json:"author_name"`
}

// Changes is the body of an update: the fields left nil keep their value.
type Changes struct {
	Title      *string `json:"title,omitempty"`
	Content    *string `json:"content,omitempty"`
	AuthorName *string `json:"author_name,omitempty"`
}

// Page is one page of a list, newest post first.
type Page struct {
	Items []Post `json:"items"`
	// NextCursor asks for the next page; empty on the last one.
	NextCursor string `json:"next_cursor,omitempty"`
}

// HistoryEntry is one version of a post.
type HistoryEntry struct {
	Version    int64     `json:"version"`
	EventType  string    `json:"event_type"`
	EventID    string    `json:"event_id"`
	OccurredAt time.Time `json:"occurred_at"`
	Post       Post      `json:"post"`
}

// HistoryPage is one page of a post's history, oldest version first.
type HistoryPage struct {
	Items []HistoryEntry `json:"items"`
	// NextCursor asks for the next page; empty on the last one.
	NextCursor string `json:"next_cursor,omitempty"`
}

// HistoryQuery selects a page of a post's history; zero fields take the server's defaults
// (the first page, 20 entries).
type HistoryQuery struct {
	Limit  int
	Cursor string
}

// ListQuery selects a page of posts; zero fields take the server's defaults.
type ListQuery struct {
	AuthorName string
	Limit      int
	Cursor     string
}

// Problem is an error answer (RFC 9457). An answer that carries no problem document still
// gives one, with its status and the status's text.
type Problem struct {
	Status int    `json:"status"`
	Title  string `json:"title"`
	Detail string `json:"detail"`
	Errors []struct {
		Message  string `json:"message"`
		Location string `json:"location"`
		Value    any    `json:"value,omitempty"`
	} `json:"errors,omitempty"`
	// ETag is the current version's tag a 412 answer carries.
	ETag string `json:"-"`
}

func (p *Problem) Error() string {
	msg := fmt.Sprintf("%d %s", p.Status, p.Title)
	if p.Detail != "" {
		msg += ": " + p.Detail
	}
	for _, e := range p.Errors {
		msg += fmt.Sprintf("; %s: %s", e.Location, e.Message)
	}
	return msg
}

// StatusOf returns the HTTP status of an error answer, or 0 when err is no answer (a
// transport failure, a canceled context).
func StatusOf(err error) int {
	var p *Problem
	if errors.As(err, &p) {
		return p.Status
	}
	return 0
}

// Create creates a post; the answer is its first version.
func (c *Client) Create(ctx context.Context, p NewPost) (Post, error) {
	var out Post
	return out, c.do(ctx, http.MethodPost, c.command+"/posts", p, &out)
}

// Update changes a post; the answer is its new version.
func (c *Client) Update(ctx context.Context, id string, ch Changes) (Post, error) {
	var out Post
	return out, c.do(ctx, http.MethodPatch, c.command+"/posts/"+url.PathEscape(id), ch, &out)
}

// Delete deletes a post; the answer is its last version.
func (c *Client) Delete(ctx context.Context, id string) (Post, error) {
	var out Post
	return out, c.do(ctx, http.MethodDelete, c.command+"/posts/"+url.PathEscape(id), nil, &out)
}

// Get reads a post from the query server. A positive minVersion waits, up to the server's read
// wait, until the read model has that version; a 503 Problem when it has not.
func (c *Client) Get(ctx context.Context, id string, minVersion int64) (Post, error) {
	u := c.query + "/posts/" + url.PathEscape(id)
	if minVersion > 0 {
		u += "?min_version=" + strconv.FormatInt(minVersion, 10)
	}
	var out Post
	return out, c.do(ctx, http.MethodGet, u, nil, &out)
}

// List reads a page of posts from the query server.
func (c *Client) List(ctx context.Context, q ListQuery) (Page, error) {
	v := pageValues(q.Limit, q.Cursor)
	if q.AuthorName != "" {
		v.Set("author_name", q.AuthorName)
	}
	var out Page
	return out, c.do(ctx, http.MethodGet, withQuery(c.query+"/posts", v), nil, &out)
}

// History reads a page of a post's history from the query server, oldest version first.
func (c *Client) History(ctx context.Context, id string, q HistoryQuery) (HistoryPage, error) {
	u := withQuery(c.query+"/posts/"+url.PathEscape(id)+"/history", pageValues(q.Limit, q.Cursor))
	var out HistoryPage
	return out, c.do(ctx, http.MethodGet, u, nil, &out)
}

// pageValues are the query parameters of a page: its size and where it starts.
func pageValues(limit int, cursor string) url.Values {
	v := url.Values{}
	if limit > 0 {
		v.Set("limit", strconv.Itoa(limit))
	}
	if cursor != "" {
		v.Set("cursor", cursor)
	}
	return v
}

func withQuery(u string, v url.Values) string {
	if len(v) == 0 {
		return u
	}
	return u + "?" + v.Encode()
}

// do sends one request and decodes a 2xx answer into out, any other into a *Problem.
func (c *Client) do(ctx context.Context, method, u string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, u, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, u, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer func() {
		_, _ = io.Copy(io.Discard, res.Body) // the connection is reused only once its body is read
		_ = res.Body.Close()
	}()
	if res.StatusCode/100 != 2 {
		p := &Problem{}
		_ = json.NewDecoder(io.LimitReader(res.Body, 64<<10)).Decode(p) // a body that is no problem document leaves the status
		p.Status, p.ETag = res.StatusCode, res.Header.Get("ETag")
		if p.Title == "" {
			p.Title = http.StatusText(res.StatusCode)
		}
		return p
	}
	if err := json.NewDecoder(res.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode the answer: %w", method, u, err)
	}
	return nil
}
