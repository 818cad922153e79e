package api

import (
	"errors"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"hexapost/core/post"
)

// Server is one of the two servers as the combined spec names it.
type Server struct {
	API huma.API
	// URL is where the server is reached, e.g. http://localhost:3000.
	URL         string
	Description string
}

// ServerURL turns a listen address such as ":3000" or "127.0.0.1:3000" into a URL a browser on the
// same machine can use.
func ServerURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return (&url.URL{Scheme: "http", Host: net.JoinHostPort(host, port)}).String()
}

// Combine merges the OpenAPI documents of the servers into one, of the given version of
// hexapost. Every operation lists the server that serves it; an operation both serve (health,
// metrics, docs) lists both.
func Combine(version string, servers ...Server) *huma.OpenAPI {
	doc := &huma.OpenAPI{
		OpenAPI: "3.1.0",
		Info: &huma.Info{
			Title:   "hexapost",
			Version: version,
			Description: "CQRS with event sourcing for one aggregate, the Post. The command server " +
				"changes posts; the query server reads them from a projection that catches up " +
				"asynchronously. Errors are RFC 9457 problems.",
		},
		Tags: []*huma.Tag{
			{Name: TagCommands, Description: "Change posts (command server)."},
			{Name: TagQueries, Description: "Read posts (query server)."},
			{Name: TagAdmin, Description: "Resolve messages the projector could not apply (query server) and erase " +
				"posts for good (command server); both need the admin token."},
			{Name: TagOperations, Description: "Health, readiness, metrics and documentation (both servers)."},
		},
		Paths: map[string]*huma.PathItem{},
	}
	schemas := huma.NewMapRegistry("#/components/schemas/", huma.DefaultSchemaNamer)
	security := map[string]*huma.SecurityScheme{}
	for _, s := range servers {
		server := &huma.Server{URL: s.URL, Description: s.Description}
		doc.Servers = append(doc.Servers, server)
		src := s.API.OpenAPI()
		maps.Copy(schemas.Map(), src.Components.Schemas.Map())
		maps.Copy(security, src.Components.SecuritySchemes)
		for _, path := range slices.Sorted(maps.Keys(src.Paths)) {
			item := src.Paths[path]
			into := doc.Paths[path]
			if into == nil {
				into = &huma.PathItem{}
				doc.Paths[path] = into
			}
			for _, m := range methods {
				op := *m.of(item)
				if op == nil {
					continue
				}
				if have := *m.of(into); have != nil {
					have.Servers = append(have.Servers, server)
					continue
				}
				cp := *op
				cp.Servers = []*huma.Server{server}
				cp.Responses = withRequestID(cp.Responses, strings.HasPrefix(path, "/posts"))
				*m.of(into) = &cp
			}
		}
	}
	describeErased(doc)
	doc.Components = &huma.Components{Schemas: schemas, SecuritySchemes: security, Headers: map[string]*huma.Header{
		RequestIDHeader: {
			Description: "The id of the request in the servers' logs: the client's X-Request-Id when it " +
				"is 1–128 visible ASCII characters, else a new one.",
			Schema: &huma.Schema{Type: huma.TypeString, MaxLength: new(maxRequestID)},
		},
	}}
	return doc
}

// withRequestID returns a copy of responses, each declaring the X-Request-Id that every answer
// carries (RequestIDs) and, ofPosts (an operation on posts), the problem of each error status.
func withRequestID(responses map[string]*huma.Response, ofPosts bool) map[string]*huma.Response {
	out := make(map[string]*huma.Response, len(responses))
	examples := problemExamples()
	for code, r := range responses {
		cp := *r
		cp.Headers = maps.Clone(r.Headers)
		if cp.Headers == nil {
			cp.Headers = map[string]*huma.Param{}
		}
		cp.Headers[RequestIDHeader] = &huma.Param{Ref: "#/components/headers/" + RequestIDHeader}
		if example, ok := examples[code]; ok && ofPosts {
			cp.Content = maps.Clone(r.Content)
			if mt := cp.Content["application/problem+json"]; mt != nil {
				withExample := *mt
				withExample.Example = example
				cp.Content["application/problem+json"] = &withExample
			}
		}
		out[code] = &cp
	}
	return out
}

// problemExamples are the problems the servers answer with, by status, built by the functions
// that build them, so that the document shows what a client really receives.
func problemExamples() map[string]*huma.ErrorModel {
	model := func(err error) *huma.ErrorModel {
		var m *huma.ErrorModel
		_ = errors.As(err, &m)
		return m
	}
	return map[string]*huma.ErrorModel{
		"404": problem(http.StatusNotFound, detailNotFound),
		"409": problem(http.StatusConflict, detailConflict),
		"410": problem(http.StatusGone, detailGone),
		"412": model(preconditionFailed(2)),
		"422": model(validation(&post.ValidationError{Field: "title", Reason: "must not be empty or blank"})),
		"503": model(unavailable(detailUnavailable)),
	}
}

type method struct {
	of func(*huma.PathItem) **huma.Operation
}

var methods = []method{
	{func(p *huma.PathItem) **huma.Operation { return &p.Get }},
	{func(p *huma.PathItem) **huma.Operation { return &p.Post }},
	{func(p *huma.PathItem) **huma.Operation { return &p.Patch }},
	{func(p *huma.PathItem) **huma.Operation { return &p.Delete }},
	{func(p *huma.PathItem) **huma.Operation { return &p.Put }},
}
