package api

import (
	"errors"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/danielgtaylor/huma/v2"
)

// EntityTags is the value of an If-Match or If-None-Match field (RFC 9110 §13.1.1, §13.1.2):
// "*" or a list of entity tags.
type EntityTags struct {
	// Any is true for "*".
	Any  bool
	Tags []EntityTag
}

// EntityTag is one entity tag as a client sent it.
type EntityTag struct {
	Weak bool
	// Opaque is the tag without its quotes and W/ prefix.
	Opaque string
}

// ErrEntityTags says that a field is no "*" and no list of quoted entity tags.
var ErrEntityTags = errors.New(`want * or a list of entity tags such as "3" (quoted) or W/"3"`)

// ParseEntityTags parses the value of an If-Match or If-None-Match field. A value that is not
// in the field's syntax is ErrEntityTags.
func ParseEntityTags(field string) (EntityTags, error) {
	field = strings.Trim(field, " \t")
	if field == "*" {
		return EntityTags{Any: true}, nil
	}
	var ts EntityTags
	for rest := field; ; {
		rest = strings.TrimLeft(rest, " \t,")
		if rest == "" {
			break
		}
		var t EntityTag
		if r, ok := strings.CutPrefix(rest, "W/"); ok {
			t.Weak, rest = true, r
		}
		end := closingQuote(rest)
		if end < 0 {
			return EntityTags{}, ErrEntityTags
		}
		t.Opaque, rest = rest[1:end], strings.TrimLeft(rest[end+1:], " \t")
		if rest != "" && rest[0] != ',' {
			return EntityTags{}, ErrEntityTags
		}
		ts.Tags = append(ts.Tags, t)
	}
	if len(ts.Tags) == 0 {
		return EntityTags{}, ErrEntityTags
	}
	return ts, nil
}

// closingQuote returns the index of the quote that ends the quoted opaque tag s begins with,
// or -1 when s begins with none. An opaque tag holds visible characters other than the quote,
// and bytes from 0x80 (RFC 9110 §8.8.3).
func closingQuote(s string) int {
	if s == "" || s[0] != '"' {
		return -1
	}
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			return i
		case c < 0x21 || c == 0x7f:
			return -1
		}
	}
	return -1
}

// Versions returns the versions the strong tags name, without repeats. A weak tag names none,
// since a change may only rest on a strong comparison, and nor does a tag that is not an ETag
// of this API.
func (ts EntityTags) Versions() []int64 {
	var vs []int64
	for _, t := range ts.Tags {
		if v, ok := t.version(); ok && !t.Weak && !slices.Contains(vs, v) {
			vs = append(vs, v)
		}
	}
	return vs
}

// MatchesWeakly reports whether the version's ETag is among the tags by the weak comparison
// that If-None-Match uses, where W/"3" matches "3"; "*" matches any version.
func (ts EntityTags) MatchesWeakly(version int64) bool {
	if ts.Any {
		return true
	}
	for _, t := range ts.Tags {
		if v, ok := t.version(); ok && v == version {
			return true
		}
	}
	return false
}

// version returns the version the tag names, as ETag writes it.
func (t EntityTag) version() (int64, bool) {
	v, err := strconv.ParseInt(t.Opaque, 10, 64)
	if err != nil || v < 1 || strconv.FormatInt(v, 10) != t.Opaque {
		return 0, false
	}
	return v, true
}

// NotModified is the answer to a read whose If-None-Match holds the current version: 304 with
// the version's ETag and no body.
func NotModified(version int64) error {
	h := http.Header{}
	h.Set("ETag", ETag(version))
	return huma.ErrorWithHeaders(huma.Status304NotModified(), h)
}

// ChangeResponses documents the answers of a conditional change that its types do not show:
// 412 with the current ETag, and 428.
func ChangeResponses(a huma.API) map[string]*huma.Response {
	problem := map[string]*huma.MediaType{"application/problem+json": {
		Schema: a.OpenAPI().Components.Schemas.Schema(reflect.TypeFor[huma.ErrorModel](), true, "Error"),
	}}
	return map[string]*huma.Response{
		"412": {
			Description: "Precondition Failed: If-Match does not name the current version.",
			Headers:     map[string]*huma.Header{"ETag": etagHeader("The current version's ETag, to retry with.")},
			Content:     problem,
		},
		"428": {
			Description: "Precondition Required: the server requires If-Match on every change.",
			Content:     problem,
		},
	}
}

// ReadResponses documents the answer of a conditional read that its types do not show: 304.
func ReadResponses() map[string]*huma.Response {
	return map[string]*huma.Response{"304": {
		Description: "Not Modified: If-None-Match holds the current version. No body.",
		Headers:     map[string]*huma.Header{"ETag": etagHeader("The current version's ETag.")},
	}}
}

func etagHeader(doc string) *huma.Header {
	return &huma.Header{Description: doc, Schema: &huma.Schema{Type: huma.TypeString}}
}
