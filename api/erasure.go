package api

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"net/http"
	"strconv"
	"strings"

	"github.com/danielgtaylor/huma/v2"
)

// ErasedProblem is the 410 of a post whose personal data was erased: the problem of a deleted
// post with the extension member erased (RFC 9457 §3.2), so that a client can tell the two
// apart without parsing the detail.
type ErasedProblem struct {
	*huma.ErrorModel
	Erased bool `json:"erased,omitempty" doc:"The post's personal data was erased; absent for a post that was only deleted."`
}

const detailErased = "post was erased"

func erasedProblem() *ErasedProblem {
	return &ErasedProblem{ErrorModel: problem(http.StatusGone, detailErased), Erased: true}
}

// Name names the admin credential in audit records without revealing it: "admin-token:" and the
// first 8 hex digits of the token's SHA-256, which tell tokens apart across a rotation.
func (a Admin) Name() string {
	sum := sha256.Sum256([]byte(a.Token))
	return "admin-token:" + hex.EncodeToString(sum[:4])
}

// tracedPath is the path a span records. An author's erasure names the author in its path, so
// its span records the route instead: no copy of the name goes to the traces.
func tracedPath(p string) string {
	if strings.HasPrefix(p, "/admin/authors/") {
		return "/admin/authors/{author_name}/erase"
	}
	return p
}

// describeErased declares, in doc, the problem of every 410 answer as an ErasedProblem (which
// NewAPI registers), whose erased member an erased post's answer has.
func describeErased(doc *huma.OpenAPI) {
	ref := &huma.Schema{Ref: "#/components/schemas/ErasedProblem"}
	for _, item := range doc.Paths {
		for _, m := range methods {
			op := *m.of(item)
			if op == nil {
				continue
			}
			r := op.Responses[strconv.Itoa(http.StatusGone)]
			if r == nil || r.Content["application/problem+json"] == nil {
				continue
			}
			mt := *r.Content["application/problem+json"]
			mt.Schema = ref
			gone := *r
			gone.Content = maps.Clone(r.Content)
			gone.Content["application/problem+json"] = &mt
			op.Responses = maps.Clone(op.Responses)
			op.Responses[strconv.Itoa(http.StatusGone)] = &gone
		}
	}
}
