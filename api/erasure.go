package api

import (
	"net/http"

	"github.com/danielgtaylor/huma/v2"
)

// ErasedProblem is the 410 of a post whose personal data was erased: the problem of a deleted
// post with the extension member erased (RFC 9457 §3.2), so that a client can tell the two
// apart without parsing the detail.
type ErasedProblem struct {
	*huma.ErrorModel
	Erased bool `json:"erased"`
}

const detailErased = "post was erased"

func erasedProblem() *ErasedProblem {
	return &ErasedProblem{ErrorModel: problem(http.StatusGone, detailErased), Erased: true}
}
