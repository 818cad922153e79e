package command

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"hexapost/api"
)

// createFast answers create-post without huma's request processing when the request is a plain
// one: a JSON body that is an object of exactly title, content and author_name, each a string,
// no Content-Type other than application/json, an Idempotency-Key huma would accept, and an
// Accept that huma answers with JSON. huma validates a body by decoding it into a generic value
// and checking that against the schema, then decodes it again into the input; for the body of
// every create that is most of what the request costs besides the command itself.
//
// Any other request — every invalid one among them — is handed to huma unchanged (its body
// restored), so huma alone answers it, with the same problems as without this path. A plain
// request is exactly what huma accepts without a complaint and decodes to the same input, and
// its answer is written the way huma writes one.
func (h *Handler) createFast(a huma.API, ctx huma.Context, next func(huma.Context)) {
	r, _ := humago.Unwrap(ctx)
	key := r.Header.Get("Idempotency-Key")
	if ct := r.Header.Get("Content-Type"); (ct != "" && ct != "application/json") || len(key) > 255 {
		next(ctx)
		return
	}
	if ct, err := a.Negotiate(r.Header.Get("Accept")); err != nil || ct != jsonType {
		next(ctx)
		return
	}
	if t := ctx.Operation().BodyReadTimeout; t > 0 {
		_ = ctx.SetReadDeadline(time.Now().Add(t)) // as huma does before it reads a body; huma ignores a failure too
	}
	buf := bodies.Get().(*bytes.Buffer)
	buf.Reset()
	_, err := buf.ReadFrom(io.LimitReader(r.Body, api.MaxBodyBytes))
	body := buf.Bytes()
	in := &CreateInput{Conditions: Conditions{IdempotencyKey: key}}
	var ok bool
	if err == nil && len(body) < api.MaxBodyBytes {
		in.Body.Title, in.Body.Content, in.Body.AuthorName, ok = decodeCreate(body) // copies what it keeps
	}
	if !ok {
		// huma reads the body after this returns: it keeps the buffer.
		r.Body = restored{Reader: io.MultiReader(bytes.NewReader(body), r.Body), Closer: r.Body}
		next(ctx)
		return
	}
	if buf.Cap() <= maxPooledBody {
		bodies.Put(buf)
	}
	out, err := h.create(ctx.Context(), in)
	if err != nil {
		writeError(a, ctx, err)
		return
	}
	ctx.SetHeader("Location", out.Location)
	ctx.SetHeader("ETag", out.ETag)
	write(a, ctx, http.StatusCreated, out.Body)
}

// bodies holds the buffers plain creates' bodies are read into, for the next ones: a body is
// decoded into strings of its own, so its buffer is free again once it has been decoded.
var bodies = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBody is the largest buffer kept for another body: a rare big post does not leave
// its buffer in the pool.
const maxPooledBody = 64 << 10

// restored is a request body put back together from what was read of it and the rest.
type restored struct {
	io.Reader
	io.Closer
}

// writeError answers err as huma answers an error that a handler returns.
func writeError(a huma.API, ctx huma.Context, err error) {
	var he huma.HeadersError
	if errors.As(err, &he) {
		for k, values := range he.GetHeaders() {
			for _, v := range values {
				ctx.AppendHeader(k, v)
			}
		}
	}
	var se huma.StatusError
	if !errors.As(err, &se) {
		se = huma.NewErrorWithContext(ctx, http.StatusInternalServerError, "unexpected error occurred", err)
	}
	write(a, ctx, se.GetStatus(), se)
}

// jsonType is the content type createFast answers with: it takes only requests for which huma
// negotiates it.
const jsonType = "application/json"

// write answers with status and body as huma writes a response: the negotiated content type
// (jsonType), narrowed by the body (problems are application/problem+json), transformed,
// marshalled.
func write(a huma.API, ctx huma.Context, status int, body any) {
	ct := jsonType
	if f, ok := body.(huma.ContentTypeFilter); ok {
		ct = f.ContentType(ct)
	}
	ctx.SetHeader("Content-Type", ct)
	v, err := a.Transform(ctx, strconv.Itoa(status), body)
	if err != nil {
		v = body // hexapost's API has no transformers; not reached
	}
	ctx.SetStatus(status)
	_ = a.Marshal(ctx.BodyWriter(), ct, v) // the status is sent: a failed write has no one to tell
}

// decodeCreate decodes b when it is a JSON object of exactly the members title, content and
// author_name, each once and each a string, with nothing else; ok is false for anything else,
// including valid JSON it does not need to understand (escaped member names, repeated
// members), which huma then decodes. Strings are decoded as encoding/json decodes them.
func decodeCreate(b []byte) (title, content, authorName string, ok bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return "", "", "", false
	}
	var seen [3]bool
	for {
		i = skipSpace(b, i+1)
		name, end, ok := scanString(b, i)
		if !ok || bytes.IndexByte(name, '\\') >= 0 {
			return "", "", "", false
		}
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return "", "", "", false
		}
		i = skipSpace(b, i+1)
		raw, end, ok := scanString(b, i)
		if !ok {
			return "", "", "", false
		}
		value, ok := decodeString(raw, b[i:end])
		if !ok {
			return "", "", "", false
		}
		var field int
		switch string(name) {
		case "title":
			field, title = 0, value
		case "content":
			field, content = 1, value
		case "author_name":
			field, authorName = 2, value
		default:
			return "", "", "", false
		}
		if seen[field] {
			return "", "", "", false
		}
		seen[field] = true
		i = skipSpace(b, end)
		if i >= len(b) {
			return "", "", "", false
		}
		if b[i] == '}' {
			break
		}
		if b[i] != ',' {
			return "", "", "", false
		}
	}
	if skipSpace(b, i+1) != len(b) || !seen[0] || !seen[1] || !seen[2] {
		return "", "", "", false
	}
	return title, content, authorName, true
}

// skipSpace returns the index of the first byte at or after i that is not JSON white space.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanString finds the JSON string that starts at b[i]: its contents between the quotes and
// the index after the closing quote.
func scanString(b []byte, i int) (raw []byte, end int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '"':
			return b[i+1 : j], j + 1, true
		case '\\':
			j++ // the escaped byte cannot end the string
		}
	}
	return nil, 0, false
}

// decodeString returns the value of the JSON string quoted (raw is its contents): plain text
// as it is, anything with escapes, control characters or invalid UTF-8 through encoding/json.
func decodeString(raw, quoted []byte) (string, bool) {
	plain := utf8.Valid(raw)
	for _, c := range raw {
		if c < 0x20 || c == '\\' {
			plain = false
			break
		}
	}
	if plain {
		return string(raw), true
	}
	var s string
	if err := json.Unmarshal(quoted, &s); err != nil {
		return "", false
	}
	return s, true
}
