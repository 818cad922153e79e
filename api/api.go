package api

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"hexapost/core/post"
)

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
// links in bodies, and problems that do not echo large values. Its own document is only a part
// of the combined one, which carries the version.
func NewAPI(mux *http.ServeMux, title string) huma.API {
	cfg := huma.DefaultConfig(title, "")
	cfg.OpenAPIPath = ""
	cfg.DocsPath = ""
	cfg.SchemasPath = ""
	cfg.CreateHooks = nil
	cfg.Transformers = []huma.Transformer{boundEcho}
	a := humago.New(mux, cfg)
	a.OpenAPI().Components.Schemas.Schema(reflect.TypeFor[ErasedProblem](), true, "")
	return a
}

// The bounds of a problem's error details: how many it lists, and how long (as JSON, about)
// a value it repeats may be.
const (
	maxDetails = 20
	maxEcho    = 1 << 10
)

// boundEcho keeps a problem small whatever the request was. huma lists every error it finds,
// each with the offending value, which can be a field over its limit or the whole body; a body
// of many unknown members would give as many errors, each repeating the body.
func boundEcho(_ huma.Context, _ string, v any) (any, error) {
	m, ok := v.(*huma.ErrorModel)
	if !ok {
		return v, nil
	}
	if len(m.Errors) > maxDetails {
		m.Errors = m.Errors[:maxDetails]
	}
	for _, d := range m.Errors {
		if d != nil && jsonSize(d.Value, maxEcho) > maxEcho {
			d.Value = nil
		}
	}
	return v, nil
}

// jsonSize returns about how long v is as JSON, looking no further than limit: a value huma
// repeats is decoded JSON, and can be a whole body.
func jsonSize(v any, limit int) int {
	n := 2 // the quotes or brackets
	switch v := v.(type) {
	case string:
		return n + len(v)
	case []any:
		for _, e := range v {
			if n > limit {
				break
			}
			n += 1 + jsonSize(e, limit-n)
		}
	case map[string]any:
		for k, e := range v {
			if n > limit {
				break
			}
			n += len(k) + 4 + jsonSize(e, limit-n)
		}
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return limit + 1
		}
		return len(b)
	}
	return n
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
	Erased     bool      `json:"erased,omitempty" doc:"The post's personal data was erased: title, content and author_name are empty."`
}

// FromState converts a post's state to its body.
func FromState(s post.State) Post {
	return Post{
		ID: s.ID, Version: s.Version, Title: s.Title, Content: s.Content, AuthorName: s.AuthorName,
		CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt, Deleted: s.Deleted, Erased: s.Erased,
	}
}

// ETag returns the entity tag of a version, as sent in ETag and expected in If-Match.
func ETag(version int64) string {
	return `"` + strconv.FormatInt(version, 10) + `"`
}
