// Package servers assembles the two HTTP servers' APIs — their own operations plus the shared
// ones — and the combined OpenAPI document that describes both.
package servers

import (
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"hexapost/api"
	"hexapost/api/commandapi"
	"hexapost/api/queryapi"
)

// Command registers the command server's operations on mux.
func Command(mux *http.ServeMux, h *commandapi.Handler, ops api.Operations) huma.API {
	return CommandWithErasures(mux, h, ops, api.Admin{}, nil)
}

// CommandWithErasures is Command with the admin operations that erase posts, behind admin;
// with e nil it has none.
func CommandWithErasures(mux *http.ServeMux, h *commandapi.Handler, ops api.Operations, admin api.Admin,
	e *commandapi.Erasures) huma.API {
	a := api.NewAPI(mux, "hexapost command server")
	if e != nil {
		api.RequireAdmin(a, admin)
	}
	h.Register(a)
	if e != nil {
		e.Register(a)
	}
	api.RegisterOperations(a, mux, ops)
	return a
}

// Query registers the query server's operations on mux, its admin operations behind admin.
func Query(mux *http.ServeMux, h *queryapi.Handler, ops api.Operations, admin api.Admin) huma.API {
	a := api.NewAPI(mux, "hexapost query server")
	api.RequireAdmin(a, admin)
	h.Register(a)
	api.RegisterOperations(a, mux, ops)
	return a
}

// Spec returns the combined OpenAPI document of both servers at the given URLs, of the given
// version of hexapost (its build's). It is built from the same registration code as the live
// servers, so it cannot describe anything else.
func Spec(version, commandURL, queryURL string) *huma.OpenAPI {
	ops := api.Operations{Metrics: http.NotFoundHandler()}
	cmd := CommandWithErasures(http.NewServeMux(), &commandapi.Handler{}, ops, api.Admin{}, &commandapi.Erasures{})
	qry := Query(http.NewServeMux(), &queryapi.Handler{}, ops, api.Admin{})
	return api.Combine(version,
		api.Server{API: cmd, URL: commandURL, Description: "command server"},
		api.Server{API: qry, URL: queryURL, Description: "query server"},
	)
}
