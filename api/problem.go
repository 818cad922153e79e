package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"hexapost/core/command"
	"hexapost/core/post"
	"hexapost/core/projection"
	"hexapost/ports"
)

// RetryAfter is what a 503 tells a client to wait before trying again.
const RetryAfter = time.Second

// Problem turns an error from the core or a port into the RFC 9457 problem a client receives.
// It is the one place where errors meet HTTP status codes. Anything it does not recognise is a
// 500 whose detail hides the internals; it is logged here, once, with the request's operation.
func Problem(ctx context.Context, log *slog.Logger, op string, err error) error {
	var (
		verrs    post.ValidationErrors
		verr     *post.ValidationError
		conflict *command.ConflictError
	)
	switch {
	case errors.As(err, &verrs):
		return validation(verrs...)
	case errors.As(err, &verr):
		return validation(verr)
	case errors.As(err, &conflict):
		return problem(http.StatusConflict, conflict.Error(), &huma.ErrorDetail{
			Location: "header.If-Match", Message: conflict.Error(), Value: ETag(conflict.Expected),
		})
	case errors.Is(err, ports.ErrConflict), errors.Is(err, post.ErrExists):
		return problem(http.StatusConflict, "the post was changed concurrently; retry")
	case errors.Is(err, command.ErrKeyReused):
		return problem(http.StatusUnprocessableEntity, err.Error(), &huma.ErrorDetail{
			Location: "header.Idempotency-Key", Message: err.Error(),
		})
	case errors.Is(err, post.ErrNotFound), errors.Is(err, ports.ErrNotFound):
		return problem(http.StatusNotFound, "post not found")
	case errors.Is(err, post.ErrDeleted):
		return problem(http.StatusGone, "post was deleted")
	case errors.Is(err, projection.ErrNotCaughtUp):
		return unavailable(err.Error())
	case errors.Is(err, ports.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		log.WarnContext(ctx, "backend unavailable", "operation", op, "error", err)
		return unavailable("a backend is unavailable; retry later")
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads the answer.
		return problem(499, "request canceled")
	}
	log.ErrorContext(ctx, "request failed", "operation", op, "error", err)
	return problem(http.StatusInternalServerError, "internal error; see the server log")
}

func validation(errs ...*post.ValidationError) error {
	details := make([]*huma.ErrorDetail, 0, len(errs))
	for _, e := range errs {
		loc := "body." + e.Field
		if e.Field == "body" {
			loc = "body"
		}
		details = append(details, &huma.ErrorDetail{Location: loc, Message: e.Reason})
	}
	return problem(http.StatusUnprocessableEntity, "validation failed", details...)
}

func problem(status int, detail string, errs ...*huma.ErrorDetail) *huma.ErrorModel {
	return &huma.ErrorModel{Status: status, Title: http.StatusText(status), Detail: detail, Errors: errs}
}

func unavailable(detail string) error {
	h := http.Header{}
	h.Set("Retry-After", strconv.Itoa(int(RetryAfter.Seconds())))
	return huma.ErrorWithHeaders(problem(http.StatusServiceUnavailable, detail), h)
}

// BadRequest returns a 422 problem for one input the core never sees (a cursor, a header).
func BadRequest(location, message string) error {
	return problem(http.StatusUnprocessableEntity, "validation failed",
		&huma.ErrorDetail{Location: location, Message: message})
}
