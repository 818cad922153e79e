package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/danielgtaylor/huma/v2"
)

// AdminScheme names the security scheme that the admin operations declare: a bearer token.
const AdminScheme = "adminToken"

// AdminSecurity is the Security of an admin operation.
var AdminSecurity = []map[string][]string{{AdminScheme: {}}}

// Admin is how a server guards the operations that declare AdminSecurity.
type Admin struct {
	// Token is the bearer token they need; when empty they are closed to everyone.
	Token string
	// HowToEnable is told to a caller when Token is empty.
	HowToEnable string
}

// RequireAdmin declares the admin security scheme on a and lets an admin operation run only for
// a request that carries the token. Tokens are compared in constant time, as digests, so neither
// their content nor their length leaks through timing; they are never logged.
func RequireAdmin(a huma.API, admin Admin) {
	oapi := a.OpenAPI()
	if oapi.Components.SecuritySchemes == nil {
		oapi.Components.SecuritySchemes = map[string]*huma.SecurityScheme{}
	}
	oapi.Components.SecuritySchemes[AdminScheme] = &huma.SecurityScheme{
		Type: "http", Scheme: "bearer",
		Description: "The admin token (POSTS_ADMIN_TOKEN), sent as `Authorization: Bearer <token>`.",
	}
	want := sha256.Sum256([]byte(admin.Token))
	a.UseMiddleware(func(ctx huma.Context, next func(huma.Context)) {
		if !isAdmin(ctx.Operation()) {
			next(ctx)
			return
		}
		if admin.Token == "" {
			_ = huma.WriteErr(a, ctx, http.StatusForbidden, "admin operations are disabled: "+admin.HowToEnable)
			return
		}
		got, ok := strings.CutPrefix(ctx.Header("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
		if !ok || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			ctx.SetHeader("WWW-Authenticate", `Bearer realm="hexapost admin"`)
			_ = huma.WriteErr(a, ctx, http.StatusUnauthorized,
				"missing or wrong admin token: send Authorization: Bearer <token>")
			return
		}
		next(ctx)
	})
}

func isAdmin(op *huma.Operation) bool {
	for _, req := range op.Security {
		if _, ok := req[AdminScheme]; ok {
			return true
		}
	}
	return false
}
