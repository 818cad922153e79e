package api

import (
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// CORS decides which other origins may call a server from a browser. By default only the bundled
// docs may: the Swagger UI of one server tries the operations of the other, which is another
// origin. Admin operations are never answered cross-origin.
type CORS struct {
	// Origins lists the allowed origins exactly as browsers send them ("https://app.example.com"),
	// or holds "*" for any origin. When empty, an origin is allowed when it is on one of Ports and
	// its host is a loopback name or the host the request was sent to: where the docs are served.
	Origins []string
	// Ports are the ports of both servers, from their configured addresses.
	Ports []string
}

// Wrap answers the CORS requests of the allowed origins and passes every request on.
func (c CORS) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" || strings.HasPrefix(r.URL.Path, "/admin/") || !c.allows(origin, r.Host) {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Add("Vary", "Origin")
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Expose-Headers", "ETag, Location, Content-Location, Retry-After, X-Request-Id")
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", "GET, POST, PATCH, DELETE")
			h.Set("Access-Control-Allow-Headers", "Content-Type, If-Match, If-None-Match, Idempotency-Key, X-Request-Id")
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (c CORS) allows(origin, requestHost string) bool {
	if len(c.Origins) > 0 {
		return slices.Contains(c.Origins, "*") || slices.Contains(c.Origins, origin)
	}
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || !slices.Contains(c.Ports, u.Port()) {
		return false
	}
	host := u.Hostname()
	if reqHost, _, err := net.SplitHostPort(requestHost); err == nil && host == reqHost {
		return true
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
