// Package commandapi is the command server's HTTP operations: create, update and delete a post.
// Each maps a request to a core command, passes If-Match and Idempotency-Key through as
// options, and answers with the post's state after the change and where the query server
// serves it.
package commandapi

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
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
	cfg     Config
}

// Config is what the command server says beyond what the core decides.
type Config struct {
	// RequireIfMatch refuses a change without If-Match (428 Precondition Required), so that no
	// client overwrites a version it has not seen.
	RequireIfMatch bool
	// QueryURL returns the public base URL of the query server, e.g. https://query.example.com,
	// where the Location of a created post and the Content-Location of a changed one lead. It
	// is asked on each answer: in one process the query server's address is known only once
	// it listens. Nil or "" gives paths, which a client resolves against the query server.
	QueryURL func() string
}

// Observer hears how every command that reached the core ended and how long the core took:
// command is "create", "update" or "delete". It is called on the request's goroutine after the
// core returned, so it must be quick; metrics are its use. A request refused before the core
// (a malformed body, a bad header) is not a command and is not observed.
type Observer func(command string, outcome api.Outcome, took time.Duration)

// NewHandler returns a Handler over svc. observe may be nil.
func NewHandler(svc *command.Service, log *slog.Logger, observe Observer, cfg Config) *Handler {
	if observe == nil {
		observe = func(string, api.Outcome, time.Duration) {}
	}
	return &Handler{svc: svc, log: log, observe: observe, cfg: cfg}
}

// done observes a command that began at begin and ended with err.
func (h *Handler) done(command string, begin time.Time, err error) {
	h.observe(command, api.Classify(err), time.Since(begin))
}

// Conditions are the headers every command accepts.
type Conditions struct {
	IdempotencyKey string `header:"Idempotency-Key" maxLength:"255" doc:"Makes a retry safe: a repeat with the same key and body returns the first response and records nothing new. Kept at least 24 h."`
	RequestID      string `header:"X-Request-Id" maxLength:"128" doc:"Names the request in the logs of both servers, those of the change it makes included. Kept when it is 1–128 visible ASCII characters, else replaced by a new id; every response returns the id used."`
}

// IfMatch makes a change conditional on the current version.
type IfMatch struct {
	IfMatch string `header:"If-Match" maxLength:"1024" doc:"The version (ETag) the change applies to, e.g. \"3\"; any other current version is 412 Precondition Failed with the current ETag. * matches any existing post; a weak tag (W/\"3\") never matches. Required when the server is configured so (428 without it)."`
}

// options returns the core's options of a change with the If-Match field ifMatch ("" when
// absent), or the problem of a field the server cannot act on.
func (h *Handler) options(c Conditions, ifMatch string) (command.Options, error) {
	o := command.Options{IdempotencyKey: c.IdempotencyKey, RequestID: c.RequestID}
	if ifMatch == "" {
		if h.cfg.RequireIfMatch {
			return o, api.PreconditionRequired("If-Match", "this server requires If-Match on every change: "+
				"send the ETag of the version the change applies to, or * for any version")
		}
		return o, nil
	}
	tags, err := api.ParseEntityTags(ifMatch)
	if err != nil {
		return o, api.BadRequest("header.If-Match", err.Error())
	}
	if tags.Any {
		// Any version will do: the change is made as without the header, once the post exists.
		return o, nil
	}
	switch vs := tags.Versions(); len(vs) {
	case 0:
		// Only weak or foreign tags, which never match: a condition that fails on every post
		// that exists, and answers with its current ETag.
		o.IfMatch = new(int64(0))
	case 1:
		o.IfMatch = &vs[0]
	default:
		return o, api.BadRequest("header.If-Match", "a post has one current version: name one")
	}
	return o, nil
}

// postURL returns where the query server serves the post at version or later.
func (h *Handler) postURL(s post.State) string {
	base := ""
	if h.cfg.QueryURL != nil {
		base = h.cfg.QueryURL()
	}
	return base + "/posts/" + url.PathEscape(s.ID) + "?min_version=" + strconv.FormatInt(s.Version, 10)
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
	Location string `header:"Location" doc:"The post on the query server at this version: following it waits until the query server has it."`
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
	ContentLocation string `header:"Content-Location" doc:"The post on the query server at this version: following it waits until the query server has it."`
	ETag            string `header:"ETag"`
	Body            api.Post
}

// Register adds the operations to a.
func (h *Handler) Register(a huma.API) {
	tags := []string{api.TagCommands}
	huma.Register(a, huma.Operation{
		OperationID: "create-post", Method: http.MethodPost, Path: "/posts", Tags: tags,
		Summary: "Create a post",
		Description: "Appends a post.created event. The post reaches the query server asynchronously; " +
			"the Location leads to it there and waits until it has arrived.",
		DefaultStatus: http.StatusCreated, MaxBodyBytes: api.MaxBodyBytes,
		RequestBody: example(CreateInputBody{
			Title:      "Why event sourcing",
			Content:    "Every change is an event, and the current state is what the events add up to.",
			AuthorName: "Ada",
		}),
		Errors: []int{http.StatusUnprocessableEntity, http.StatusRequestEntityTooLarge, http.StatusServiceUnavailable},
	}, h.create)
	huma.Register(a, huma.Operation{
		OperationID: "update-post", Method: http.MethodPatch, Path: "/posts/{id}", Tags: tags,
		Summary: "Update a post",
		Description: "Changes the given fields (at least one). A change that changes nothing records no event " +
			"and returns the current version. Without If-Match, concurrent changes are retried on the latest " +
			"state; 409 only when they keep colliding.",
		MaxBodyBytes: api.MaxBodyBytes,
		RequestBody:  example(UpdateInputBody{Title: new("Why event sourcing pays off")}),
		Responses:    api.ChangeResponses(a),
		Errors: []int{http.StatusNotFound, http.StatusConflict, http.StatusGone,
			http.StatusUnprocessableEntity, http.StatusRequestEntityTooLarge, http.StatusServiceUnavailable},
	}, h.update)
	huma.Register(a, huma.Operation{
		OperationID: "delete-post", Method: http.MethodDelete, Path: "/posts/{id}", Tags: tags,
		Summary:     "Delete a post",
		Description: "Appends a post.deleted event. The post keeps its history and accepts no further change.",
		Responses:   api.ChangeResponses(a),
		Errors: []int{http.StatusNotFound, http.StatusConflict, http.StatusGone,
			http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
	}, h.delete)
}

// example declares the JSON request body of an operation with an example that Swagger UI's
// "Try it out" sends as it is.
func example(body any) *huma.RequestBody {
	return &huma.RequestBody{Content: map[string]*huma.MediaType{"application/json": {Example: body}}}
}

func (h *Handler) create(ctx context.Context, in *CreateInput) (*CreateOutput, error) {
	begin := time.Now()
	r, err := h.svc.Create(ctx, post.Create{
		Title: in.Body.Title, Content: in.Body.Content, AuthorName: in.Body.AuthorName,
	}, command.Options{IdempotencyKey: in.IdempotencyKey, RequestID: in.RequestID})
	h.done("create", begin, err)
	if err != nil {
		return nil, api.Problem(ctx, h.log, "create-post", err)
	}
	return &CreateOutput{
		Location: h.postURL(r.State), ETag: api.ETag(r.State.Version), Body: api.FromState(r.State),
	}, nil
}

func (h *Handler) update(ctx context.Context, in *UpdateInput) (*PostOutput, error) {
	o, err := h.options(in.Conditions, in.IfMatch.IfMatch)
	if err != nil {
		return nil, err
	}
	begin := time.Now()
	r, err := h.svc.Update(ctx, in.ID, post.Update{
		Title: in.Body.Title, Content: in.Body.Content, AuthorName: in.Body.AuthorName,
	}, o)
	h.done("update", begin, err)
	if err != nil {
		return nil, api.Problem(ctx, h.log, "update-post", err)
	}
	return h.changed(r.State), nil
}

func (h *Handler) delete(ctx context.Context, in *DeleteInput) (*PostOutput, error) {
	o, err := h.options(in.Conditions, in.IfMatch.IfMatch)
	if err != nil {
		return nil, err
	}
	begin := time.Now()
	r, err := h.svc.Delete(ctx, in.ID, o)
	h.done("delete", begin, err)
	if err != nil {
		return nil, api.Problem(ctx, h.log, "delete-post", err)
	}
	return h.changed(r.State), nil
}

func (h *Handler) changed(s post.State) *PostOutput {
	return &PostOutput{ContentLocation: h.postURL(s), ETag: api.ETag(s.Version), Body: api.FromState(s)}
}
