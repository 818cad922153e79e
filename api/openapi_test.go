package api_test

import (
	"bytes"
	"flag"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/danielgtaylor/huma/v2"

	"hexapost/api"
	"hexapost/api/servers"
)

var update = flag.Bool("update", false, "rewrite openapi.yaml from the code")

// TestOpenAPI keeps openapi.yaml equal to what the code generates: run
// `go test ./api -run OpenAPI -update` after changing an operation.
func TestOpenAPI(t *testing.T) {
	t.Parallel()
	// The version a build reports when it knows none; a release build puts its own.
	doc := servers.Spec("(devel)", api.ServerURL(":3000"), api.ServerURL(":4000"))
	got, err := doc.YAML()
	if err != nil {
		t.Fatal(err)
	}
	const golden = "../openapi.yaml"
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./api -run OpenAPI -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("openapi.yaml is out of date; run go test ./api -run OpenAPI -update")
	}
}

// TestOpenAPIOperations checks that the document lists every operation of both servers, each
// with the server that serves it.
func TestOpenAPIOperations(t *testing.T) {
	t.Parallel()
	cmd, qry := "http://localhost:3000", "http://localhost:4000"
	doc := servers.Spec("v1.2.3", cmd, qry)
	both := []string{cmd, qry}
	want := map[string][]string{
		"POST /posts":                             {cmd},
		"PATCH /posts/{id}":                       {cmd},
		"DELETE /posts/{id}":                      {cmd},
		"GET /posts/{id}":                         {qry},
		"GET /posts":                              {qry},
		"GET /posts/{id}/history":                 {qry},
		"GET /changes":                            {qry},
		"GET /admin/dead-letters":                 {qry},
		"POST /admin/dead-letters/{id}/redrive":   {qry},
		"DELETE /admin/dead-letters/{id}":         {qry},
		"POST /admin/posts/{id}/erase":            {cmd},
		"POST /admin/authors/{author_name}/erase": {cmd},
		"GET /healthz":                            both,
		"GET /readyz":                             both,
		"GET /metrics":                            both,
		"GET /openapi.json":                       both,
		"GET /openapi.yaml":                       both,
		"GET /docs":                               both,
	}
	got := map[string][]string{}
	for path, item := range doc.Paths {
		for m, op := range map[string]*huma.Operation{
			"GET": item.Get, "POST": item.Post, "PATCH": item.Patch, "DELETE": item.Delete, "PUT": item.Put,
		} {
			if op != nil {
				got[m+" "+path] = urls(op.Servers)
			}
		}
	}
	for k, v := range want {
		if !slices.Equal(got[k], v) {
			t.Errorf("%s: servers %v, want %v", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected operation %s", k)
		}
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Errorf("openapi %q, want 3.1", doc.OpenAPI)
	}
	if doc.Info.Version != "v1.2.3" {
		t.Errorf("info.version %q, want the build's v1.2.3", doc.Info.Version)
	}
}

func urls(servers []*huma.Server) []string {
	out := make([]string, 0, len(servers))
	for _, s := range servers {
		out = append(out, s.URL)
	}
	return out
}
