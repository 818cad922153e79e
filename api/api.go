package api

import (
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
// routes (the combined spec and the embedded Swagger UI are served instead) and no `$schema`
// links in bodies.
func NewAPI(mux *http.ServeMux, title string) huma.API {
	cfg := huma.DefaultConfig(title, Version)
	cfg.OpenAPIPath = ""
	cfg.DocsPath = ""
	cfg.SchemasPath = ""
	cfg.CreateHooks = nil
	return humago.New(mux, cfg)
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
