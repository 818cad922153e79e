// Package queryapi is the query server's HTTP operations: read one post (optionally waiting for a
// version), list posts a page at a time, read a post's history, and resolve dead letters.
// It answers from the read model only.
package queryapi

import (
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"hexapost/api"
	"hexapost/core/query"
	"hexapost/ports"
)

// Handler serves the query operations.
type Handler struct {
	reader *query.Reader
	views  ports.ViewReader
	dead   ports.DeadLetters
	feed   Feed
	log    *slog.Logger
}

// NewHandler returns a Handler.
func NewHandler(reader *query.Reader, views ports.ViewReader, dead ports.DeadLetters, feed Feed, log *slog.Logger) *Handler {
	return &Handler{reader: reader, views: views, dead: dead, feed: feed, log: log}
}

// GetInput is the request of get-post.
type GetInput struct {
	ID          string `path:"id" format:"uuid"`
	MinVersion  int64  `query:"min_version" minimum:"0" doc:"Wait (bounded by the server's read wait) until the read model has at least this version; 503 if it does not in time."`
	IfNoneMatch string `header:"If-None-Match" maxLength:"1024" doc:"ETags the client has, e.g. \"3\" or W/\"3\", or *: when the current version is among them, the answer is 304 with no body."`
}

// PostOutput is the response of get-post.
type PostOutput struct {
	ETag string `header:"ETag"`
	Body api.Post
}

// ListInput is the request of list-posts.
type ListInput struct {
	AuthorName string `query:"author_name" maxLength:"100" doc:"Only this author's posts."`
	Limit      int    `query:"limit" minimum:"1" maximum:"100" default:"20"`
	Cursor     string `query:"cursor" maxLength:"512" doc:"The next_cursor of the previous page."`
}

// ListOutput is the response of list-posts.
type ListOutput struct {
	Body struct {
		Items      []api.Post `json:"items" nullable:"false"`
		NextCursor string     `json:"next_cursor,omitempty" doc:"Absent on the last page."`
	}
}

// HistoryInput is the request of get-post-history.
type HistoryInput struct {
	ID     string `path:"id" format:"uuid"`
	Limit  int    `query:"limit" minimum:"1" maximum:"100" default:"20"`
	Cursor string `query:"cursor" maxLength:"512" doc:"The next_cursor of the previous page."`
}

// HistoryEntry is one version of a post.
type HistoryEntry struct {
	Version    int64     `json:"version"`
	EventType  string    `json:"event_type" enum:"post.created,post.updated,post.deleted,post.erased"`
	EventID    string    `json:"event_id"`
	OccurredAt time.Time `json:"occurred_at"`
	Post       api.Post  `json:"post" doc:"The post's state after the event."`
}

// HistoryOutput is the response of get-post-history.
type HistoryOutput struct {
	Body struct {
		Items      []HistoryEntry `json:"items" nullable:"false"`
		NextCursor string         `json:"next_cursor,omitempty" doc:"Absent on the last page."`
	}
}

// DeadLetter is a message the projector could not apply.
type DeadLetter struct {
	ID        string    `json:"id"`
	PostID    string    `json:"post_id,omitempty"`
	Version   int64     `json:"version,omitempty"`
	EventID   string    `json:"event_id,omitempty"`
	EventType string    `json:"event_type,omitempty"`
	Reason    string    `json:"reason"`
	Attempts  int       `json:"attempts"`
	FailedAt  time.Time `json:"failed_at"`
	Payload   string    `json:"payload" doc:"The message as it was on the bus."`
}

// DeadLettersOutput is the response of list-dead-letters.
type DeadLettersOutput struct {
	Body struct {
		Items []DeadLetter `json:"items" nullable:"false"`
	}
}

// DeadLetterInput names one dead letter.
type DeadLetterInput struct {
	ID string `path:"id" maxLength:"200"`
}

// Register adds the operations to a.
func (h *Handler) Register(a huma.API) {
	tags := []string{api.TagQueries}
	huma.Register(a, huma.Operation{
		OperationID: "get-post", Method: http.MethodGet, Path: "/posts/{id}", Tags: tags,
		Summary:   "Get a post",
		Responses: api.ReadResponses(),
		Errors: []int{http.StatusNotFound, http.StatusGone, http.StatusUnprocessableEntity,
			http.StatusServiceUnavailable},
	}, h.get)
	huma.Register(a, huma.Operation{
		OperationID: "list-posts", Method: http.MethodGet, Path: "/posts", Tags: tags,
		Summary:     "List posts",
		Description: "Newest first; deleted posts are excluded. Follow next_cursor for the next page.",
		Errors:      []int{http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
	}, h.list)
	huma.Register(a, huma.Operation{
		OperationID: "get-post-history", Method: http.MethodGet, Path: "/posts/{id}/history", Tags: tags,
		Summary: "Get a post's history",
		Description: "One entry per version from the first, oldest first, each with the state after it; deleted " +
			"posts too. Follow next_cursor for the next page. Never with a gap: a version still being projected " +
			"while a later one is stored is waited for (up to the server's read wait), after which the entries " +
			"before it are returned, or 503 if the page's first version itself is missing.",
		Errors: []int{http.StatusNotFound, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
	}, h.history)
	h.registerChanges(a, tags)

	admin := []string{api.TagAdmin}
	// 401 for a missing or wrong token, 403 while the server has none (see api.RequireAdmin).
	adminErrors := []int{http.StatusUnauthorized, http.StatusForbidden}
	huma.Register(a, huma.Operation{
		OperationID: "list-dead-letters", Method: http.MethodGet, Path: "/admin/dead-letters", Tags: admin,
		Summary: "List dead letters", Security: api.AdminSecurity, Errors: adminErrors,
		Description: "Messages the projector could not apply after its attempts, or could not decode, " +
			"oldest first, with the reason.",
	}, h.listDead)
	huma.Register(a, huma.Operation{
		OperationID: "redrive-dead-letter", Method: http.MethodPost, Path: "/admin/dead-letters/{id}/redrive",
		Tags: admin, Summary: "Redrive a dead letter", Security: api.AdminSecurity,
		Description:   "Puts the message back on the bus with a fresh attempt count.",
		DefaultStatus: http.StatusAccepted, Errors: append([]int{http.StatusNotFound}, adminErrors...),
	}, h.redrive)
	huma.Register(a, huma.Operation{
		OperationID: "discard-dead-letter", Method: http.MethodDelete, Path: "/admin/dead-letters/{id}",
		Tags: admin, Summary: "Discard a dead letter", Security: api.AdminSecurity,
		DefaultStatus: http.StatusNoContent, Errors: append([]int{http.StatusNotFound}, adminErrors...),
	}, h.discard)
}

func (h *Handler) get(ctx context.Context, in *GetInput) (*PostOutput, error) {
	var have api.EntityTags
	if in.IfNoneMatch != "" {
		var err error
		if have, err = api.ParseEntityTags(in.IfNoneMatch); err != nil {
			return nil, api.BadRequest("header.If-None-Match", err.Error())
		}
	}
	s, err := h.reader.Get(ctx, in.ID, in.MinVersion)
	if err != nil {
		return nil, api.Problem(ctx, h.log, "get-post", err)
	}
	if have.MatchesWeakly(s.Version) {
		return nil, api.NotModified(s.Version)
	}
	return &PostOutput{ETag: api.ETag(s.Version), Body: api.FromState(s)}, nil
}

func (h *Handler) list(ctx context.Context, in *ListInput) (*ListOutput, error) {
	q := ports.ListQuery{AuthorName: strings.TrimSpace(in.AuthorName), Limit: in.Limit + 1}
	if in.Cursor != "" {
		c, err := decodeCursor(in.Cursor)
		if err != nil {
			return nil, api.BadRequest("query.cursor", "invalid cursor; pass next_cursor of a previous page as it is")
		}
		q.After = &c
	}
	page, err := h.views.List(ctx, q)
	if err != nil {
		return nil, api.Problem(ctx, h.log, "list-posts", err)
	}
	out := &ListOutput{}
	if len(page) > in.Limit {
		page = page[:in.Limit]
		last := page[len(page)-1]
		out.Body.NextCursor = encodeCursor(ports.Cursor{CreatedAt: last.CreatedAt, ID: last.ID})
	}
	out.Body.Items = make([]api.Post, 0, len(page))
	for _, s := range page {
		out.Body.Items = append(out.Body.Items, api.FromState(s))
	}
	return out, nil
}

func (h *Handler) history(ctx context.Context, in *HistoryInput) (*HistoryOutput, error) {
	q := ports.HistoryQuery{Limit: in.Limit + 1}
	if in.Cursor != "" {
		after, err := decodeHistoryCursor(in.Cursor)
		if err != nil {
			return nil, api.BadRequest("query.cursor", "invalid cursor; pass next_cursor of a previous page as it is")
		}
		q.After = after
	}
	entries, err := h.reader.History(ctx, in.ID, q)
	if err != nil {
		return nil, api.Problem(ctx, h.log, "get-post-history", err)
	}
	out := &HistoryOutput{}
	if len(entries) > in.Limit {
		entries = entries[:in.Limit]
		out.Body.NextCursor = encodeHistoryCursor(entries[len(entries)-1].State.Version)
	}
	out.Body.Items = make([]HistoryEntry, 0, len(entries))
	for _, e := range entries {
		out.Body.Items = append(out.Body.Items, HistoryEntry{
			Version: e.State.Version, EventType: string(e.Type), EventID: e.EventID,
			OccurredAt: e.OccurredAt, Post: api.FromState(e.State),
		})
	}
	return out, nil
}

func (h *Handler) listDead(ctx context.Context, _ *struct{}) (*DeadLettersOutput, error) {
	dls, err := h.dead.List(ctx)
	if err != nil {
		return nil, api.Problem(ctx, h.log, "list-dead-letters", err)
	}
	out := &DeadLettersOutput{}
	out.Body.Items = make([]DeadLetter, 0, len(dls))
	for _, d := range dls {
		item := DeadLetter{
			ID: d.ID, Reason: d.Reason, Attempts: d.Attempts, FailedAt: d.FailedAt, Payload: string(d.Payload),
		}
		if c := d.Change; c != nil {
			item.PostID, item.Version, item.EventID, item.EventType = c.Event.PostID, c.Event.Version,
				c.Event.ID, string(c.Event.Type)
		}
		out.Body.Items = append(out.Body.Items, item)
	}
	return out, nil
}

func (h *Handler) redrive(ctx context.Context, in *DeadLetterInput) (*struct{}, error) {
	if err := h.dead.Redrive(ctx, in.ID); err != nil {
		return nil, deadLetterProblem(ctx, h.log, "redrive-dead-letter", err)
	}
	return nil, nil
}

func (h *Handler) discard(ctx context.Context, in *DeadLetterInput) (*struct{}, error) {
	if err := h.dead.Discard(ctx, in.ID); err != nil {
		return nil, deadLetterProblem(ctx, h.log, "discard-dead-letter", err)
	}
	return nil, nil
}

func deadLetterProblem(ctx context.Context, log *slog.Logger, op string, err error) error {
	if errors.Is(err, ports.ErrNotFound) {
		return huma.Error404NotFound("dead letter not found")
	}
	return api.Problem(ctx, log, op, err)
}

// A cursor is the list position of the last item of a page: "v1.<created_at µs>.<id>",
// base64url-encoded so clients treat it as opaque.
const cursorVersion = "v1"

func encodeCursor(c ports.Cursor) string {
	raw := cursorVersion + "." + strconv.FormatInt(c.CreatedAt.UnixMicro(), 10) + "." + c.ID
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

func decodeCursor(s string) (ports.Cursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return ports.Cursor{}, err
	}
	parts := strings.SplitN(string(raw), ".", 3)
	if len(parts) != 3 || parts[0] != cursorVersion || parts[2] == "" {
		return ports.Cursor{}, errors.New("malformed cursor")
	}
	us, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return ports.Cursor{}, err
	}
	return ports.Cursor{CreatedAt: time.UnixMicro(us).UTC(), ID: parts[2]}, nil
}

// A history cursor is the version of the last entry of a page: "h1.<version>", base64url-encoded
// like the list's, and told apart from it so that one is never taken for the other.
const historyCursorPrefix = "h1."

func encodeHistoryCursor(version int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(historyCursorPrefix + strconv.FormatInt(version, 10)))
}

// decodeHistoryCursor accepts only what encodeHistoryCursor writes: a positive version in its
// plain decimal form.
func decodeHistoryCursor(s string) (int64, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return 0, err
	}
	digits, ok := strings.CutPrefix(string(raw), historyCursorPrefix)
	if !ok {
		return 0, errors.New("malformed cursor")
	}
	v, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || v < 1 || strconv.FormatInt(v, 10) != digits {
		return 0, errors.New("malformed cursor")
	}
	return v, nil
}
