package e2e_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"hexapost/test/harness"
)

// TestAdminNeedsTheToken checks the admin door of a real query server: closed, with a problem
// saying how to open it, while no token is configured; then open only to the bearer of the token,
// which the process never logs.
func TestAdminNeedsTheToken(t *testing.T) {
	t.Parallel()
	const token = "e2e-admin-7f3a9c"
	closed := start(t, map[string]string{"POSTS_ADMIN_TOKEN": ""})
	r := do(t, "GET", closed.QueryURL+"/admin/dead-letters", nil, "Authorization", "Bearer "+token)
	r.Must(t, http.StatusForbidden)
	if !strings.Contains(string(r.Raw), "POSTS_ADMIN_TOKEN") {
		t.Errorf("403 does not say how to enable the admin operations: %s", r.Raw)
	}

	open := start(t, map[string]string{"POSTS_ADMIN_TOKEN": token})
	for _, tt := range []struct {
		method, path string
		wantOK       int
	}{
		{"GET", "/admin/dead-letters", http.StatusOK},
		{"POST", "/admin/dead-letters/nope/redrive", http.StatusNotFound},
		{"DELETE", "/admin/dead-letters/nope", http.StatusNotFound},
	} {
		url := open.QueryURL + tt.path
		if r := do(t, tt.method, url, nil).Must(t, http.StatusUnauthorized); r.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s %s: 401 without WWW-Authenticate", tt.method, tt.path)
		}
		do(t, tt.method, url, nil, "Authorization", "Bearer wrong").Must(t, http.StatusUnauthorized)
		do(t, tt.method, url, nil, "Authorization", "Bearer "+token).Must(t, tt.wantOK)
	}
	if strings.Contains(open.LogText(), token) || strings.Contains(closed.LogText(), token) {
		t.Error("a process logged the admin token")
	}
}

// TestCORSAllowsTheDocsAndConfiguredOrigins checks a real query server's answers to browsers: by
// default the docs of the command server may call it and other pages may not; with origins
// configured, those and only those; admin operations never.
func TestCORSAllowsTheDocsAndConfiguredOrigins(t *testing.T) {
	t.Parallel()
	cmdPort, qryPort := strconv.Itoa(harness.FreePort(t)), strconv.Itoa(harness.FreePort(t))
	addrs := map[string]string{"POSTS_COMMAND_ADDR": "127.0.0.1:" + cmdPort, "POSTS_QUERY_ADDR": "127.0.0.1:" + qryPort}
	byDefault := start(t, addrs)

	otherPorts := map[string]string{"POSTS_COMMAND_ADDR": "127.0.0.1:0", "POSTS_QUERY_ADDR": "127.0.0.1:0",
		"POSTS_CORS_ORIGINS": "https://app.example.com"}
	listed := start(t, otherPorts)

	tests := []struct {
		name       string
		giveURL    string
		giveOrigin string
		wantAllow  bool
	}{
		{"the command server's docs", byDefault.QueryURL + "/posts", "http://localhost:" + cmdPort, true},
		{"the command server's docs on 127.0.0.1", byDefault.QueryURL + "/posts", "http://127.0.0.1:" + cmdPort, true},
		{"another page", byDefault.QueryURL + "/posts", "https://evil.example", false},
		{"admin from the docs", byDefault.QueryURL + "/admin/dead-letters", "http://localhost:" + cmdPort, false},
		{"a configured origin", listed.QueryURL + "/posts", "https://app.example.com", true},
		{"the docs when origins are configured", listed.QueryURL + "/posts", "http://localhost:" + cmdPort, false},
		{"admin from a configured origin", listed.QueryURL + "/admin/dead-letters", "https://app.example.com", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pre := do(t, "OPTIONS", tt.giveURL, nil, "Origin", tt.giveOrigin, "Access-Control-Request-Method", "GET",
				"Access-Control-Request-Headers", "authorization")
			get := do(t, "GET", tt.giveURL, nil, "Origin", tt.giveOrigin)
			for _, r := range []response{pre, get} {
				if got := r.Header.Get("Access-Control-Allow-Origin"); (got == tt.giveOrigin) != tt.wantAllow ||
					(!tt.wantAllow && got != "") {
					t.Errorf("Access-Control-Allow-Origin %q (status %d), want allowed=%v", got, r.Status, tt.wantAllow)
				}
			}
		})
	}
}
