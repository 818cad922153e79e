package api_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/danielgtaylor/huma/v2"

	"hexapost/api"
)

// adminServer serves one admin operation and one open operation behind RequireAdmin.
func adminServer(t *testing.T, admin api.Admin) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	a := api.NewAPI(mux, "test")
	api.RequireAdmin(a, admin)
	type out struct{ Body string }
	ok := func(context.Context, *struct{}) (*out, error) { return &out{Body: "done"}, nil }
	huma.Register(a, huma.Operation{OperationID: "secret", Method: http.MethodGet, Path: "/admin/thing",
		Security: api.AdminSecurity}, ok)
	huma.Register(a, huma.Operation{OperationID: "open", Method: http.MethodGet, Path: "/open"}, ok)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestAdminOperationsNeedTheToken(t *testing.T) {
	t.Parallel()
	const token = "s3cret-token"
	tests := []struct {
		name         string
		giveToken    string
		givePath     string
		giveAuth     string
		wantStatus   int
		wantInBody   string
		wantAuthHint bool
	}{
		{"no token configured closes admin", "", "/admin/thing", "Bearer anything", 403, "set THE_TOKEN", false},
		{"no token configured leaves the rest open", "", "/open", "", 200, "done", false},
		{"missing credential", token, "/admin/thing", "", 401, "Authorization: Bearer", true},
		{"wrong token", token, "/admin/thing", "Bearer s3cret-tokeN", 401, "wrong admin token", true},
		{"a prefix of the token", token, "/admin/thing", "Bearer s3cret", 401, "wrong admin token", true},
		{"another scheme", token, "/admin/thing", "Basic " + token, 401, "wrong admin token", true},
		{"the token", token, "/admin/thing", "Bearer " + token, 200, "done", false},
		{"open operation needs none", token, "/open", "", 200, "done", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := adminServer(t, api.Admin{Token: tt.giveToken, HowToEnable: "set THE_TOKEN"})
			req, _ := http.NewRequest(http.MethodGet, srv.URL+tt.givePath, nil)
			if tt.giveAuth != "" {
				req.Header.Set("Authorization", tt.giveAuth)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			_ = res.Body.Close()
			if res.StatusCode != tt.wantStatus || !strings.Contains(string(body), tt.wantInBody) {
				t.Fatalf("got %d %s; want %d containing %q", res.StatusCode, body, tt.wantStatus, tt.wantInBody)
			}
			if tt.wantStatus >= 400 && res.Header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("Content-Type %q, want application/problem+json", res.Header.Get("Content-Type"))
			}
			if got := res.Header.Get("WWW-Authenticate") != ""; got != tt.wantAuthHint {
				t.Errorf("WWW-Authenticate present = %v, want %v", got, tt.wantAuthHint)
			}
			if strings.Contains(string(body), token) {
				t.Errorf("the answer repeats the token: %s", body)
			}
		})
	}
}

func TestAdminSchemeIsDeclared(t *testing.T) {
	t.Parallel()
	a := api.NewAPI(http.NewServeMux(), "test")
	api.RequireAdmin(a, api.Admin{})
	s := a.OpenAPI().Components.SecuritySchemes[api.AdminScheme]
	if s == nil || s.Type != "http" || s.Scheme != "bearer" {
		t.Fatalf("security scheme %s = %+v, want http bearer", api.AdminScheme, s)
	}
}

func TestCORS(t *testing.T) {
	t.Parallel()
	docs := api.CORS{Ports: []string{"3000", "4000"}}
	listed := api.CORS{Origins: []string{"https://app.example.com"}, Ports: docs.Ports}
	anyOrigin := api.CORS{Origins: []string{"*"}, Ports: docs.Ports}
	tests := []struct {
		name       string
		giveCORS   api.CORS
		giveHost   string
		givePath   string
		giveOrigin string
		wantAllow  bool
	}{
		{"the other server's docs on localhost", docs, "localhost:4000", "/posts", "http://localhost:3000", true},
		{"the other server's docs on 127.0.0.1", docs, "localhost:4000", "/posts", "http://127.0.0.1:3000", true},
		{"docs on the host the request was sent to", docs, "posts.internal:4000", "/posts", "http://posts.internal:3000", true},
		{"a page on another port", docs, "localhost:4000", "/posts", "http://localhost:8080", false},
		{"a page elsewhere on the same port", docs, "localhost:4000", "/posts", "http://evil.example:3000", false},
		{"a listed origin", listed, "api.example.com", "/posts", "https://app.example.com", true},
		{"an unlisted origin when some are listed", listed, "localhost:4000", "/posts", "http://localhost:3000", false},
		{"any origin when * is listed", anyOrigin, "localhost:4000", "/posts", "https://anywhere.example", true},
		{"admin is never cross-origin", anyOrigin, "localhost:4000", "/admin/dead-letters", "https://anywhere.example", false},
		{"admin not even from the docs", docs, "localhost:4000", "/admin/dead-letters", "http://localhost:3000", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			next := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
			for _, method := range []string{http.MethodGet, http.MethodOptions} {
				req := httptest.NewRequest(method, "http://"+tt.giveHost+tt.givePath, nil)
				req.Header.Set("Origin", tt.giveOrigin)
				if method == http.MethodOptions {
					req.Header.Set("Access-Control-Request-Method", http.MethodPost)
				}
				rec := httptest.NewRecorder()
				tt.giveCORS.Wrap(next).ServeHTTP(rec, req)
				got := rec.Header().Get("Access-Control-Allow-Origin")
				if allowed := got == tt.giveOrigin; allowed != tt.wantAllow || (!tt.wantAllow && got != "") {
					t.Fatalf("%s: Access-Control-Allow-Origin %q, want allowed=%v", method, got, tt.wantAllow)
				}
				if method == http.MethodOptions && tt.wantAllow && rec.Code != http.StatusNoContent {
					t.Errorf("preflight answered %d, want 204", rec.Code)
				}
				if !tt.wantAllow && rec.Code != http.StatusTeapot {
					t.Errorf("%s of a refused origin answered %d, want it passed on", method, rec.Code)
				}
			}
		})
	}
}
