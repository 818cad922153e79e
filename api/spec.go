package api

import (
	"maps"
	"net"
	"net/url"
	"slices"

	"github.com/danielgtaylor/huma/v2"
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
			{Name: TagAdmin, Description: "Resolve messages the projector could not apply (query server; " +
				"needs the admin token)."},
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
				cp.Responses = withRequestID(cp.Responses)
				*m.of(into) = &cp
			}
		}
	}
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
// carries (RequestIDs).
func withRequestID(responses map[string]*huma.Response) map[string]*huma.Response {
	out := make(map[string]*huma.Response, len(responses))
	for code, r := range responses {
		cp := *r
		cp.Headers = maps.Clone(r.Headers)
		if cp.Headers == nil {
			cp.Headers = map[string]*huma.Param{}
		}
		cp.Headers[RequestIDHeader] = &huma.Param{Ref: "#/components/headers/" + RequestIDHeader}
		out[code] = &cp
	}
	return out
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
