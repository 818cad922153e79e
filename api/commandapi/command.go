// Package commandapi is the command server's HTTP operations: create, update and delete a post.
// Each maps a request to a core command, passes If-Match and Idempotency-Key through as
// options, and answers with the post's state after the change.
package commandapi

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"hexapost/api"
	"hexapost/core/command"
	"hexapost/core/post"
)

// Handler serves the command operations.
type Handler struct {
	svc     *command.Service
	log     *slog.Logger
	observe Observer
}

// Observer hears how every command that reached the core ended and how long the core took:
// command is "create", "update" or "delete". It is called on the request's goroutine after the
// core returned, so it must be quick; metrics are its use. A request refused before the core
// (a malformed body, a bad header) is not a command and is not observed.
type Observer func(command string, outcome api.Outcome, took time.Duration)

// NewHandler returns a Handler over svc. observe may be nil.
func NewHandler(svc *command.Service, log *slog.Logger, observe Observer) *Handler {
	if observe == nil {
		observe = func(string, api.Outcome, time.Duration) {}
	}
	return &Handler{svc: svc, log: log, observe: observe}
}

// done observes a command that began at begin and ended with err.
func (h *Handler) done(command string, begin time.Time, err error) {
	h.observe(command, api.Classify(err), time.Since(begin))
}

// Conditions are the headers every command accepts.
type Conditions struct {
	IdempotencyKey string `header:"Idempotency-Key" maxLength:"255" doc:"Makes a retry safe: a repeat with the same key and body returns the first response and records nothing new. Kept at least 24 h."`
}

// IfMatch makes a change conditional on the current version.
type IfMatch struct {
	IfMatch string `header:"If-Match" pattern:"^\"[0-9]{1,18}\"$" patternDescription:"a quoted version, e.g. \"3\"" doc:"The version (ETag) the change applies to; another current version is 409."`
}

func (c Conditions) options(ifMatch string) command.Options {
	o := command.Options{IdempotencyKey: c.IdempotencyKey}
	if ifMatch != "" {
		// The header pattern guarantees a quoted number of at most 18 digits.
		v, _ := strconv.ParseInt(strings.Trim(ifMatch, `"`), 10, 64)
		o.IfMatch = &v
	}
	return o
}

// CreateInput is the request of create-post.
type CreateInput struct {
	Conditions
	Body CreateInputBody
}

// CreateInputBody is the body of create-post. Its schema carries the limits of core/post.
type CreateInputBody struct {
	Title      string `json:"title"`
	Content    string `json:"content"`
	AuthorName string `json:"author_name"`
}

// TransformSchema states the fields' limits in the schema huma validates and publishes.
func (CreateInputBody) TransformSchema(_ huma.Registry, s *huma.Schema) *huma.Schema {
	return withLimits(s)
}

// CreateOutput is the response of create-post.
type CreateOutput struct {
	Location string `header:"Location"`
	ETag     string `header:"ETag"`
	Body     api.Post
}

// UpdateInput is the request of update-post.
type UpdateInput struct {
	ID string `path:"id" format:"uuid"`
	IfMatch
	Conditions
	Body UpdateInputBody
}

// UpdateInputBody is the body of update-post. Its schema carries the limits of core/post.
type UpdateInputBody struct {
	Title      *string `json:"title,omitempty"`
	Content    *string `json:"content,omitempty"`
	AuthorName *string `json:"author_name,omitempty"`
}

// TransformSchema states the fields' limits in the schema huma validates and publishes.
func (UpdateInputBody) TransformSchema(_ huma.Registry, s *huma.Schema) *huma.Schema {
	return withLimits(s)
}

// withLimits gives the fields of a post's body in s the length limits of core/post and says
// how they are applied, so that the schema a client validates against and the rules the core
// applies have one source. The schema bounds the value as sent; the core trims title and
// author_name and refuses what is blank, which a schema cannot express.
func withLimits(s *huma.Schema) *huma.Schema {
	fields := []struct {
		name, doc string
		maxLen    int
	}{
		{"title", "Surrounding white space is trimmed; a blank title is refused.", post.MaxTitle},
		{"content", "Stored as sent; blank content is refused.", post.MaxContent},
		{"author_name", "Surrounding white space is trimmed; a blank name is refused.", post.MaxAuthorName},
	}
	for _, f := range fields {
		p := s.Properties[f.name]
		p.MinLength, p.MaxLength = new(1), new(f.maxLen)
		p.Description = fmt.Sprintf("1–%d characters. %s", f.maxLen, f.doc)
	}
	return s
}

// DeleteInput is the request of delete-post.
type DeleteInput struct {
	ID string `path:"id" format:"uuid"`
	IfMatch
	Conditions
}

// PostOutput is the response of update-post and delete-post.
type PostOutput struct {
	ETag string `header:"ETag"`
	Body api.Post
}

// Register adds the operations to a.
func (h *Handler) Register(a huma.API) {
	tags := []string{api.TagCommands}
	huma.Register(a, huma.Operation{
		OperationID: "create-post", Method: http.MethodPost, Path: "/posts", Tags: tags,
		Summary:       "Create a post",
		Description:   "Appends a post.created event. The post reaches the query server asynchronously; read it with `min_version=1` to wait for it.",
		DefaultStatus: http.StatusCreated, MaxBodyBytes: api.MaxBodyBytes,
		Errors: []int{http.StatusUnprocessableEntity, http.StatusRequestEntityTooLarge, http.StatusServiceUnavailable},
	}, h.create)
	huma.Register(a, huma.Operation{
		OperationID: "update-post", Method: http.MethodPatch, Path: "/posts/{id}", Tags: tags,
		Summary:      "Update a post",
		Description:  "Changes the given fields (at least one). A change that changes nothing records no event and returns the current version. Without If-Match, concurrent changes are retried on the latest state.",
		MaxBodyBytes: api.MaxBodyBytes,
		Errors: []int{http.StatusNotFound, http.StatusConflict, http.StatusGone,
			http.StatusUnprocessableEntity, http.StatusRequestEntityTooLarge, http.StatusServiceUnavailable},
	}, h.update)
	huma.Register(a, huma.Operation{
		OperationID: "delete-post", Method: http.MethodDelete, Path: "/posts/{id}", Tags: tags,
		Summary:     "Delete a post",
		Description: "Appends a post.deleted event. The post keeps its history and accepts no further change.",
		Errors: []int{http.StatusNotFound, http.StatusConflict, http.StatusGone,
			http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
	}, h.delete)
}

func (h *Handler) create(ctx context.Context, in *CreateInput) (*CreateOutput, error) {
	begin := time.Now()
	r, err := h.svc.Create(ctx, post.Create{
		Title: in.Body.Title, Content: in.Body.Content, AuthorName: in.Body.AuthorName,
	}, in.options(""))
	h.done("create", begin, err)
	if err != nil {
		return nil, api.Problem(ctx, h.log, "create-post", err)
	}
	return &CreateOutput{
		Location: "/posts/" + r.State.ID, ETag: api.ETag(r.State.Version), Body: api.FromState(r.State),
	}, nil
}

func (h *Handler) update(ctx context.Context, in *UpdateInput) (*PostOutput, error) {
	begin := time.Now()
	r, err := h.svc.Update(ctx, in.ID, post.Update{
		Title: in.Body.Title, Content: in.Body.Content, AuthorName: in.Body.AuthorName,
	}, in.options(in.IfMatch.IfMatch))
	h.done("update", begin, err)
	if err != nil {
		return nil, api.Problem(ctx, h.log, "update-post", err)
	}
	return &PostOutput{ETag: api.ETag(r.State.Version), Body: api.FromState(r.State)}, nil
}

func (h *Handler) delete(ctx context.Context, in *DeleteInput) (*PostOutput, error) {
	begin := time.Now()
	r, err := h.svc.Delete(ctx, in.ID, in.options(in.IfMatch.IfMatch))
	h.done("delete", begin, err)
	if err != nil {
		return nil, api.Problem(ctx, h.log, "delete-post", err)
	}
	return &PostOutput{ETag: api.ETag(r.State.Version), Body: api.FromState(r.State)}, nil
}
