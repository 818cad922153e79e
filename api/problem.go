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
	"hexapost/core/query"
	"hexapost/ports"
)

// RetryAfter is what a 503 tells a client to wait before trying again.
const RetryAfter = time.Second

// Outcome is the class of a request's result: a small, fixed set, so it can label metrics.
type Outcome string

// The outcomes, each matching one kind of answer Problem gives.
const (
	OutcomeOK                 Outcome = "ok"                  // 2xx
	OutcomeInvalid            Outcome = "invalid"             // 422: the request breaks a rule
	OutcomeConflict           Outcome = "conflict"            // 409: changed concurrently, more often than retried
	OutcomePreconditionFailed Outcome = "precondition_failed" // 412: If-Match names another version
	OutcomeNotFound           Outcome = "not_found"           // 404
	OutcomeGone               Outcome = "gone"                // 410: the post was deleted or erased
	OutcomeUnavailable        Outcome = "unavailable"         // 503: a backend is down or too slow
	OutcomeCanceled           Outcome = "canceled"            // 499: the client went away
	OutcomeError              Outcome = "error"               // 500: anything not recognised
)

// Classify returns the outcome of a request that ended with err (nil is OutcomeOK). It is the
// one place where errors are sorted; Problem turns each class into its HTTP answer.
func Classify(err error) Outcome {
	var (
		verrs    post.ValidationErrors
		verr     *post.ValidationError
		conflict *command.ConflictError
	)
	switch {
	case err == nil:
		return OutcomeOK
	case errors.As(err, &verrs), errors.As(err, &verr):
		return OutcomeInvalid
	case errors.As(err, &conflict):
		return OutcomePreconditionFailed
	case errors.Is(err, ports.ErrConflict), errors.Is(err, post.ErrExists):
		return OutcomeConflict
	case errors.Is(err, command.ErrKeyReused):
		return OutcomeInvalid
	case errors.Is(err, post.ErrNotFound), errors.Is(err, ports.ErrNotFound):
		return OutcomeNotFound
	case errors.Is(err, post.ErrDeleted), errors.Is(err, post.ErrErased):
		return OutcomeGone
	case errors.Is(err, query.ErrNotCaughtUp), errors.Is(err, ports.ErrUnavailable),
		errors.Is(err, context.DeadlineExceeded):
		return OutcomeUnavailable
	case errors.Is(err, context.Canceled):
		return OutcomeCanceled
	}
	return OutcomeError
}

// Problem turns an error from the core or a port into the RFC 9457 problem a client receives.
// It is the one place where errors meet HTTP status codes. Anything it does not recognise is a
// 500 whose detail hides the internals; it is logged here, once, with the request's operation.
func Problem(ctx context.Context, log *slog.Logger, op string, err error) error {
	var (
		verrs    post.ValidationErrors
		verr     *post.ValidationError
		conflict *command.ConflictError
	)
	switch Classify(err) {
	case OutcomeInvalid:
		switch {
		case errors.As(err, &verrs):
			return validation(verrs...)
		case errors.As(err, &verr):
			return validation(verr)
		}
		return problem(http.StatusUnprocessableEntity, err.Error(), &huma.ErrorDetail{
			Location: "header.Idempotency-Key", Message: err.Error(),
		})
	case OutcomePreconditionFailed:
		errors.As(err, &conflict)
		return preconditionFailed(conflict.Current)
	case OutcomeConflict:
		return problem(http.StatusConflict, detailConflict)
	case OutcomeNotFound:
		return problem(http.StatusNotFound, detailNotFound)
	case OutcomeGone:
		if errors.Is(err, post.ErrErased) {
			return erasedProblem()
		}
		return problem(http.StatusGone, detailGone)
	case OutcomeUnavailable:
		if errors.Is(err, query.ErrNotCaughtUp) {
			return unavailable(err.Error())
		}
		log.WarnContext(ctx, "backend unavailable", "operation", op, "error", err)
		return unavailable(detailUnavailable)
	case OutcomeCanceled:
		// The client went away; nobody reads the answer.
		return problem(499, "request canceled")
	}
	log.ErrorContext(ctx, "request failed", "operation", op, "error", err)
	return problem(http.StatusInternalServerError, "internal error; see the server log")
}

// The details of the problems that name no particular input.
const (
	detailConflict    = "the post was changed concurrently; retry"
	detailNotFound    = "post not found"
	detailGone        = "post was deleted"
	detailUnavailable = "a backend is unavailable; retry later"
)

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

// preconditionFailed is the 412 of a change whose If-Match does not name the post's current
// version, with that version's ETag to retry with (none when it is unknown, below 1).
func preconditionFailed(current int64) error {
	detail := "If-Match does not name the current version of the post"
	h := http.Header{}
	if current >= 1 {
		detail += "; its ETag is " + ETag(current)
		h.Set("ETag", ETag(current))
	}
	return huma.ErrorWithHeaders(problem(http.StatusPreconditionFailed, detail,
		&huma.ErrorDetail{Location: "header.If-Match", Message: detail}), h)
}

// PreconditionRequired returns the 428 of a change sent without the header the server requires
// of it (RFC 6585 §3); message says what to send.
func PreconditionRequired(header, message string) error {
	return problem(http.StatusPreconditionRequired, message,
		&huma.ErrorDetail{Location: "header." + header, Message: message})
}
