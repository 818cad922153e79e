package api

import (
	"crypto/rand"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// RequestIDHeader names the header that identifies a request in both servers' answers and logs.
const RequestIDHeader = "X-Request-Id"

// maxRequestID is the longest request id a client may choose; a longer one is replaced, so that
// no client can make every log line of its request as long as it likes.
const maxRequestID = 128

// RequestIDs gives every request an id: the client's X-Request-Id when it is sane (one value of
// 1 to 128 visible ASCII characters), else a new random one. The id is returned on the response, errors
// included, and set on the request in place of what the client sent: the handlers read it from
// there, as they read any other header, and pass it on to the logs of what the request changes.
func RequestIDs(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(RequestIDHeader)
		if !saneRequestID(id) || len(r.Header.Values(RequestIDHeader)) > 1 {
			id = rand.Text()
		}
		r.Header.Set(RequestIDHeader, id)
		w.Header().Set(RequestIDHeader, id)
		next.ServeHTTP(w, r)
	})
}

func saneRequestID(id string) bool {
	if id == "" || len(id) > maxRequestID {
		return false
	}
	for i := range len(id) {
		if id[i] < '!' || id[i] > '~' {
			return false
		}
	}
	return true
}

// AccessLog writes one line per request to log once it is answered: the server, method, route
// (the pattern it matched, so that ids in paths do not make every line unique), status,
// duration, response bytes and request id. Inside RequestIDs, it finds the id on the response.
func AccessLog(log *slog.Logger, server string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		begin := time.Now()
		sw := newStatusWriter(w)
		next.ServeHTTP(sw, r)
		log.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("server", server),
			slog.String("method", methodLabel(r.Method)),
			slog.String("route", route(r)),
			slog.Int("status", sw.Status),
			slog.Duration("duration", time.Since(begin)),
			slog.Int64("bytes", sw.Bytes),
			slog.String("request_id", w.Header().Get(RequestIDHeader)),
		)
	})
}

// pattern is the pattern the mux matched for r ("GET /posts/{id}"), or "unmatched". The mux
// sets it on the request it is given, so it is known once that request has been served.
func pattern(r *http.Request) string {
	if r.Pattern == "" || r.Pattern == "/" {
		return "unmatched"
	}
	return r.Pattern
}

// route is pattern without its method ("/posts/{id}").
func route(r *http.Request) string {
	p := pattern(r)
	if _, path, found := strings.Cut(p, " "); found {
		return path
	}
	return p
}
