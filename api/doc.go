// Package api is the HTTP face of hexapost: what both servers share — the huma configuration,
// the one place where errors become RFC 9457 problems, the post body, health, readiness,
// metrics, the OpenAPI documents and the Swagger UI. The operations themselves live in
// api/commandapi and api/queryapi.
//
// Handlers are thin: huma validates the shape of a request, the core decides the rules.
package api
