package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"hexapost/core/post"
)

// Version is the API version shown in the OpenAPI documents.
const Version = "1.0.0"

// The tags that group operations in the OpenAPI document.
const (
	TagCommands   = "Commands"
	TagQueries    = "Queries"
	TagOperations = "Operations"
	TagAdmin      = "Admin"
)

// MaxBodyBytes is the largest request body a server reads.
const MaxBodyBytes = 1 << 20

// NewAPI returns a huma API on mux with hexapost's configuration: no generated docs or schema
// routes (the combined spec and the embedded Swagger UI are served instead), no `$schema`
// links in bodies, and problems that do not echo large values.
func NewAPI(mux *http.ServeMux, title string) huma.API {
	cfg := huma.DefaultConfig(title, Version)
	cfg.OpenAPIPath = ""
	cfg.DocsPath = ""
	cfg.SchemasPath = ""
	cfg.CreateHooks = nil
	cfg.Transformers = []huma.Transformer{boundEcho}
	return humago.New(mux, cfg)
}

// maxEcho is the largest value, as JSON, that a problem's error detail repeats back.
const maxEcho = 1 << 10

// boundEcho drops the value of every error detail of a problem whose JSON is longer than
// maxEcho. huma puts the offending value in each detail it reports, and that value can be a
// field over its limit or the whole body; an answer stays small whatever the request was.
func boundEcho(_ huma.Context, _ string, v any) (any, error) {
	m, ok := v.(*huma.ErrorModel)
	if !ok {
		return v, nil
	}
	for _, d := range m.Errors {
		if d == nil || d.Value == nil {
			continue
		}
		if b, err := json.Marshal(d.Value); err != nil || len(b) > maxEcho {
			d.Value = nil
		}
	}
	return v, nil
}

// Post is a post as both servers return it.
type Post struct {
	ID         string    `json:"id" format:"uuid" doc:"Server-generated UUIDv7."`
	Version    int64     `json:"version" minimum:"1" doc:"Number of changes so far; the ETag."`
	Title      string    `json:"title"`
	Content    string    `json:"content"`
	AuthorName string    `json:"author_name"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	Deleted    bool      `json:"deleted"`
}

// FromState converts a post's state to its body.
func FromState(s post.State) Post {
	return Post{
		ID: s.ID, Version: s.Version, Title: s.Title, Content: s.Content, AuthorName: s.AuthorName,
		CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt, Deleted: s.Deleted,
	}
}

// ETag returns the entity tag of a version, as sent in ETag and expected in If-Match.
func ETag(version int64) string {
	return `"` + strconv.FormatInt(version, 10) + `"`
}
