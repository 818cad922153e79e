package api

import (
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
	swaggerfiles "github.com/swaggo/files/v2"
)

// Check is one backend a server depends on, proven reachable by a real round trip.
type Check struct {
	Name string
	Ping func(ctx context.Context) error
}

// Operations are the routes every server has besides its own operations.
type Operations struct {
	// Checks are pinged, concurrently, by /readyz.
	Checks []Check
	// CheckTimeout bounds each ping (default 2s).
	CheckTimeout time.Duration
	// Metrics serves /metrics in the Prometheus text format.
	Metrics http.Handler
	// MetricsAt, when set, says that another server of this process serves its metrics: /metrics
	// answers 404 naming the URL it returns, so that scraping every server counts each event once.
	MetricsAt func() string
	// Spec returns the combined OpenAPI document. It is asked on each request, so it may be
	// completed after the routes are registered.
	Spec func() *huma.OpenAPI
}

type healthOutput struct {
	Body struct {
		Status string `json:"status" example:"ok"`
	}
}

type readyOutput struct {
	Body struct {
		Status   string            `json:"status" enum:"ready,unavailable"`
		Backends map[string]string `json:"backends" doc:"Each backend and \"ok\" or why it failed."`
	}
}

type rawOutput struct {
	ContentType string `header:"Content-Type"`
	Body        []byte
}

// RegisterOperations adds /healthz, /readyz, /metrics, /openapi.json, /openapi.yaml and /docs to
// a server, and answers unknown routes with problems instead of plain-text errors.
func RegisterOperations(a huma.API, mux *http.ServeMux, o Operations) {
	if o.CheckTimeout <= 0 {
		o.CheckTimeout = 2 * time.Second
	}
	huma.Register(a, huma.Operation{
		OperationID: "get-health", Method: http.MethodGet, Path: "/healthz", Tags: []string{TagOperations},
		Summary:     "Liveness",
		Description: "200 while the process is alive. It checks no backend: see /readyz.",
	}, func(context.Context, *struct{}) (*healthOutput, error) {
		out := &healthOutput{}
		out.Body.Status = "ok"
		return out, nil
	})

	huma.Register(a, huma.Operation{
		OperationID: "get-readiness", Method: http.MethodGet, Path: "/readyz", Tags: []string{TagOperations},
		Summary: "Readiness",
		Description: "200 only when every configured backend answers a real round trip; " +
			"otherwise 503 naming the failing ones.",
		Errors: []int{http.StatusServiceUnavailable},
	}, func(ctx context.Context, _ *struct{}) (*readyOutput, error) {
		results, failed := ping(ctx, o.Checks, o.CheckTimeout)
		if len(failed) > 0 {
			return nil, unavailable(fmt.Sprintf("not ready: %s", strings.Join(failed, "; ")))
		}
		out := &readyOutput{}
		out.Body.Status = "ready"
		out.Body.Backends = results
		return out, nil
	})

	if o.Metrics != nil || o.MetricsAt != nil {
		huma.Register(a, huma.Operation{
			OperationID: "get-metrics", Method: http.MethodGet, Path: "/metrics", Tags: []string{TagOperations},
			Summary: "Prometheus metrics",
			Description: "The metrics of the process. A process that runs both servers serves them once, " +
				"on the command server; the query server's /metrics then answers 404 naming it.",
			Responses: map[string]*huma.Response{"200": {
				Description: "Metrics in the Prometheus text format",
				Content:     map[string]*huma.MediaType{"text/plain": {}},
			}},
			Errors: []int{http.StatusNotFound},
		}, func(ctx context.Context, _ *struct{}) (*huma.StreamResponse, error) {
			if o.MetricsAt != nil {
				return nil, problem(http.StatusNotFound, fmt.Sprintf("this process serves the metrics of both "+
					"its servers once, at %s: scrape that, so that each event counts once", o.MetricsAt()))
			}
			return &huma.StreamResponse{Body: func(hctx huma.Context) {
				r, w := humago.Unwrap(hctx)
				o.Metrics.ServeHTTP(w, r)
			}}, nil
		})
	}

	spec := func(marshal func(*huma.OpenAPI) ([]byte, error), ct string) func(context.Context, *struct{}) (*rawOutput, error) {
		return func(context.Context, *struct{}) (*rawOutput, error) {
			b, err := marshal(o.Spec())
			if err != nil {
				return nil, fmt.Errorf("openapi: %w", err)
			}
			return &rawOutput{ContentType: ct, Body: b}, nil
		}
	}
	raw := func(id, path, summary, ct string) huma.Operation {
		return huma.Operation{
			OperationID: id, Method: http.MethodGet, Path: path, Tags: []string{TagOperations}, Summary: summary,
			Responses: map[string]*huma.Response{"200": {
				Description: summary, Content: map[string]*huma.MediaType{ct: {}},
			}},
		}
	}
	huma.Register(a, raw("get-openapi-json", "/openapi.json", "OpenAPI document (JSON)", "application/json"),
		spec(func(s *huma.OpenAPI) ([]byte, error) { return s.MarshalJSON() }, "application/json"))
	huma.Register(a, raw("get-openapi-yaml", "/openapi.yaml", "OpenAPI document (YAML)", "application/yaml"),
		spec(func(s *huma.OpenAPI) ([]byte, error) { return s.YAML() }, "application/yaml"))
	huma.Register(a, raw("get-docs", "/docs", "Swagger UI", "text/html"),
		func(context.Context, *struct{}) (*rawOutput, error) {
			return &rawOutput{ContentType: "text/html; charset=utf-8", Body: []byte(docsPage)}, nil
		})

	assets := http.StripPrefix("/docs/", http.FileServerFS(swaggerAssets()))
	mux.Handle("GET /docs/", assets)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { notFound(mux, w, r) })
}

func ping(ctx context.Context, checks []Check, timeout time.Duration) (map[string]string, []string) {
	var (
		mu      sync.Mutex
		wg      sync.WaitGroup
		results = make(map[string]string, len(checks))
		failed  []string
	)
	for _, c := range checks {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			err := c.Ping(ctx)
			if err == nil && ctx.Err() != nil {
				err = ctx.Err()
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				results[c.Name] = err.Error()
				failed = append(failed, c.Name+": "+err.Error())
				return
			}
			results[c.Name] = "ok"
		})
	}
	wg.Wait()
	return results, failed
}

// notFound answers a request no route matched: 405 with Allow when the path exists with other
// methods, else 404, both as problems.
func notFound(mux *http.ServeMux, w http.ResponseWriter, r *http.Request) {
	var allowed []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := mux.Handler(probe); pattern != "/" && pattern != "" {
			allowed = append(allowed, m)
		}
	}
	p := problem(http.StatusNotFound, fmt.Sprintf("no operation at %s %s", r.Method, r.URL.Path))
	if len(allowed) > 0 {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		p = problem(http.StatusMethodNotAllowed,
			fmt.Sprintf("%s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, strings.Join(allowed, ", ")))
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	_, _ = fmt.Fprintf(w, `{"title":%q,"status":%d,"detail":%q}`+"\n", p.Title, p.Status, p.Detail)
}

func swaggerAssets() fs.FS {
	return swaggerfiles.FS
}

// docsPage is Swagger UI's page with the spec served next to it; every asset comes from the
// binary, so the docs work with no internet.
const docsPage = `<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="UTF-8">
  <title>hexapost API</title>
  <link rel="stylesheet" type="text/css" href="/docs/swagger-ui.css">
  <link rel="icon" type="image/png" href="/docs/favicon-32x32.png" sizes="32x32">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js" charset="UTF-8"></script>
  <script src="/docs/swagger-ui-standalone-preset.js" charset="UTF-8"></script>
  <script>
    window.onload = function () {
      window.ui = SwaggerUIBundle({
        url: "/openapi.json",
        dom_id: "#swagger-ui",
        deepLinking: true,
        docExpansion: "list",
        displayOperationId: true,
        validatorUrl: null,
        presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
        layout: "StandaloneLayout"
      });
    };
  </script>
</body>
</html>
`
