package e2e_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestRequestIDFollowsAChange runs the command and query servers as separate processes over
// Redis and MySQL, with the access log on. A create sent with X-Request-Id gets it back, and the
// command server's lines of the change and the query server's line of its projection name it:
// it crossed the event store and the bus. Each process's access log has its requests, and each
// serves its own metrics.
func TestRequestIDFollowsAChange(t *testing.T) {
	t.Parallel()
	env := map[string]string{"POSTS_BUS": "redis", "POSTS_REDIS_URL": startPrivateRedis(t).URL(), "POSTS_ACCESS_LOG": "on"}
	query := start(t, env, "serve", "query")
	env["POSTS_EVENT_STORE"], env["POSTS_MYSQL_DSN"] = "mysql", mysqlDatabase(t)
	env["POSTS_QUERY_URL"] = query.QueryURL
	command := start(t, env, "serve", "command")

	created := do(t, "POST", command.CommandURL+"/posts", map[string]string{
		"title": "followed", "content": "by its request id", "author_name": "ops",
	}, "X-Request-Id", "abc-123").Must(t, http.StatusCreated)
	id := created.Str("id")
	if got := created.Header.Get("X-Request-Id"); got != "abc-123" {
		t.Errorf("create answered X-Request-Id %q, want abc-123", got)
	}
	read := do(t, "GET", created.Header.Get("Location"), nil).Must(t, http.StatusOK)

	lineOf := func(p *process, fields map[string]any) bool {
		for _, l := range p.Logs() {
			if matches(l, fields) {
				return true
			}
		}
		return false
	}
	tests := []struct {
		name string
		p    *process
		want map[string]any
	}{
		{"appended", command, map[string]any{"msg": "event appended", "post_id": id, "request_id": "abc-123"}},
		{"projected", query, map[string]any{"msg": "event projected", "post_id": id, "request_id": "abc-123"}},
		{"create's access line", command, map[string]any{"msg": "request", "server": "command", "method": "POST",
			"route": "/posts", "status": 201.0, "bytes": float64(len(created.Raw)), "request_id": "abc-123"}},
		{"read's access line", query, map[string]any{"msg": "request", "server": "query", "method": "GET",
			"route": "/posts/{id}", "status": 200.0, "bytes": float64(len(read.Raw)),
			"request_id": read.Header.Get("X-Request-Id")}},
	}
	for _, tt := range tests {
		eventually(t, 10*time.Second, fmt.Sprintf("the %s line %v", tt.name, tt.want), func() bool {
			return lineOf(tt.p, tt.want)
		})
	}
	if len(read.Header.Get("X-Request-Id")) < 16 {
		t.Errorf("a read without X-Request-Id answered %q, want a generated id", read.Header.Get("X-Request-Id"))
	}

	// Apart, each process serves its own metrics: the command counts the create, the query
	// server its projection.
	if n := scrape(t, command.CommandURL).value("hexapost_commands_total", "type", "create", "outcome", "ok"); n != 1 {
		t.Errorf("the command process counts %v creates, want 1", n)
	}
	if n := scrape(t, query.QueryURL).count("hexapost_projection_lag_seconds"); n != 1 {
		t.Errorf("the query process counts %v projections, want 1", n)
	}
}

// TestRequestIDOnEveryAnswer: both servers return an X-Request-Id on every answer, errors and
// unknown routes included; one the client sends is kept when sane and replaced when not.
func TestRequestIDOnEveryAnswer(t *testing.T) {
	t.Parallel()
	p := start(t, nil)
	unknown := "0193c0de-0000-7000-8000-000000000001"
	tests := []struct {
		name       string
		giveMethod string
		giveURL    string
		giveBody   any
		giveID     string
		wantStatus int
		wantKept   bool
	}{
		{"invalid create", "POST", p.CommandURL + "/posts", map[string]string{"title": " "}, "bad-create-1",
			http.StatusUnprocessableEntity, true},
		{"unknown post", "GET", p.QueryURL + "/posts/" + unknown, nil, "", http.StatusNotFound, false},
		{"unknown route", "GET", p.CommandURL + "/nowhere", nil, "route-1", http.StatusNotFound, true},
		{"id with a space", "GET", p.QueryURL + "/healthz", nil, "has space", http.StatusOK, false},
		{"id too long", "GET", p.CommandURL + "/healthz", nil, strings.Repeat("a", 200),
			http.StatusOK, false},
	}
	for _, tt := range tests {
		var headers []string
		if tt.giveID != "" {
			headers = []string{"X-Request-Id", tt.giveID}
		}
		r := do(t, tt.giveMethod, tt.giveURL, tt.giveBody, headers...).Must(t, tt.wantStatus)
		got := r.Header.Get("X-Request-Id")
		switch {
		case tt.wantKept && got != tt.giveID:
			t.Errorf("%s: X-Request-Id %q, want the client's %q", tt.name, got, tt.giveID)
		case !tt.wantKept && (len(got) < 16 || len(got) > 128 || got == tt.giveID):
			t.Errorf("%s: X-Request-Id %q, want a generated id", tt.name, got)
		}
	}
}

// matches says whether the log line has every field of want.
func matches(line, want map[string]any) bool {
	for k, v := range want {
		if line[k] != v {
			return false
		}
	}
	return true
}
