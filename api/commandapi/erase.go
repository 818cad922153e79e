package commandapi

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"hexapost/api"
	"hexapost/core/command"
)

// Erasures serves the admin operations that erase posts for good. They run on the command
// server, which writes the event store, behind the admin credential.
type Erasures struct {
	eraser *command.Eraser
	// by names the credential that erasures are audited as asked by.
	by  string
	log *slog.Logger
}

// NewErasures returns the erase operations over eraser; by names the admin credential in the
// audit lines.
func NewErasures(eraser *command.Eraser, by string, log *slog.Logger) *Erasures {
	return &Erasures{eraser: eraser, by: by, log: log}
}

// ErasePostInput is the request of erase-post.
type ErasePostInput struct {
	ID        string `path:"id" format:"uuid"`
	RequestID string `header:"X-Request-Id" maxLength:"128" doc:"Names the request in the logs, the audit line of the erasure included."`
}

// EraseAuthorInput is the request of erase-author.
type EraseAuthorInput struct {
	AuthorName string `path:"author_name" minLength:"1" maxLength:"100" doc:"The author's name as the posts carry it (surrounding white space is ignored)."`
	RequestID  string `header:"X-Request-Id" maxLength:"128" doc:"Names the request in the logs, the audit line of the erasure included."`
}

// Erasure is what an erasure of one post did.
type Erasure struct {
	PostID       string    `json:"post_id" format:"uuid"`
	Version      int64     `json:"version" doc:"The version of the post's post.erased event."`
	ErasedAt     time.Time `json:"erased_at"`
	ErasedBefore bool      `json:"erased_before" doc:"The post was erased by an earlier request; this one removed its copies again."`
}

// ErasePostOutput is the response of erase-post.
type ErasePostOutput struct {
	Body struct {
		Erasure
		BusMessagesRemoved int `json:"bus_messages_removed" doc:"Messages of the post removed from the bus and its dead letters."`
	}
}

// EraseAuthorOutput is the response of erase-author.
type EraseAuthorOutput struct {
	Body struct {
		Posts              []Erasure `json:"posts" nullable:"false" doc:"Every post whose events named the author, in id order."`
		BusMessagesRemoved int       `json:"bus_messages_removed" doc:"Messages of these posts removed from the bus and its dead letters."`
	}
}

// eraseDone says what the 202 of an erasure means.
const eraseDone = " When it answers, the event store and the bus hold none of the post's personal data any more; " +
	"the read model follows as soon as the query server's projector applies the erasure: then GET /posts/{id} " +
	"answers 410 with erased: true (pass min_version=<version> to wait for it). Repeating the request is harmless."

// Register adds the operations to a, behind the admin credential (api.RequireAdmin).
func (e *Erasures) Register(a huma.API) {
	tags := []string{api.TagAdmin}
	errs := []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusUnprocessableEntity,
		http.StatusServiceUnavailable}
	huma.Register(a, huma.Operation{
		OperationID: "erase-post", Method: http.MethodPost, Path: "/admin/posts/{id}/erase", Tags: tags,
		Summary: "Erase a post for good", Security: api.AdminSecurity, DefaultStatus: http.StatusAccepted,
		Description: "Appends a post.erased event and removes the post's title, content and author name from " +
			"every earlier event, outbox row and idempotency record, then from the bus (streams and dead letters)." +
			eraseDone,
		Errors: append([]int{http.StatusNotFound}, errs...),
	}, e.erasePost)
	huma.Register(a, huma.Operation{
		OperationID: "erase-author", Method: http.MethodPost, Path: "/admin/authors/{author_name}/erase",
		Tags: tags, Summary: "Erase every post of an author", Security: api.AdminSecurity,
		DefaultStatus: http.StatusAccepted,
		Description: "Erases, as erase-post does, every post whose events name the author in any version. " +
			"An author of no post (any more) answers with no posts." + eraseDone,
		Errors: errs,
	}, e.eraseAuthor)
}

func (e *Erasures) erasePost(ctx context.Context, in *ErasePostInput) (*ErasePostOutput, error) {
	er, err := e.eraser.ErasePost(ctx, in.ID, e.by, in.RequestID)
	if err != nil {
		return nil, api.Problem(ctx, e.log, "erase-post", err)
	}
	out := &ErasePostOutput{}
	out.Body.Erasure = erasureOf(er)
	out.Body.BusMessagesRemoved = er.BusMessages
	return out, nil
}

func (e *Erasures) eraseAuthor(ctx context.Context, in *EraseAuthorInput) (*EraseAuthorOutput, error) {
	name := strings.TrimSpace(in.AuthorName)
	if name == "" {
		return nil, api.BadRequest("path.author_name", "must not be blank")
	}
	r, err := e.eraser.EraseAuthor(ctx, name, e.by, in.RequestID)
	if err != nil {
		return nil, api.Problem(ctx, e.log, "erase-author", err)
	}
	out := &EraseAuthorOutput{}
	out.Body.Posts = make([]Erasure, 0, len(r.Posts))
	for _, er := range r.Posts {
		out.Body.Posts = append(out.Body.Posts, erasureOf(er))
	}
	out.Body.BusMessagesRemoved = r.BusMessages
	return out, nil
}

func erasureOf(er command.Erasure) Erasure {
	return Erasure{PostID: er.PostID, Version: er.Version, ErasedAt: er.ErasedAt, ErasedBefore: er.Before}
}
