package api_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/danielgtaylor/huma/v2"

	"hexapost/api"
	"hexapost/core/command"
	"hexapost/core/post"
	"hexapost/core/query"
	"hexapost/ports"
)

// TestClassify holds Classify and Problem to one sorting of errors: the outcome that labels a
// metric always names the status the client got.
func TestClassify(t *testing.T) {
	t.Parallel()
	wrapped := func(err error) error { return fmt.Errorf("layer: %w", err) }
	tests := []struct {
		name       string
		giveErr    error
		wantOut    api.Outcome
		wantStatus int
	}{
		{"validation errors", wrapped(post.ValidationErrors{{Field: "title", Reason: "empty"}}), api.OutcomeInvalid, 422},
		{"one validation error", &post.ValidationError{Field: "title", Reason: "empty"}, api.OutcomeInvalid, 422},
		{"reused idempotency key", wrapped(command.ErrKeyReused), api.OutcomeInvalid, 422},
		{"If-Match mismatch", &command.ConflictError{Expected: 1, Current: 2}, api.OutcomePreconditionFailed, 412},
		{"If-Match lost to a concurrent change", wrapped(&command.ConflictError{Expected: 1, Current: -1}),
			api.OutcomePreconditionFailed, 412},
		{"version conflict after the retries", wrapped(fmt.Errorf("append: %w", ports.ErrConflict)), api.OutcomeConflict, 409},
		{"version conflict", wrapped(ports.ErrConflict), api.OutcomeConflict, 409},
		{"create of an existing id", post.ErrExists, api.OutcomeConflict, 409},
		{"unknown post", wrapped(post.ErrNotFound), api.OutcomeNotFound, 404},
		{"unknown dead letter", wrapped(ports.ErrNotFound), api.OutcomeNotFound, 404},
		{"deleted post", wrapped(post.ErrDeleted), api.OutcomeGone, 410},
		{"backend down", wrapped(ports.ErrUnavailable), api.OutcomeUnavailable, 503},
		{"backend too slow", wrapped(context.DeadlineExceeded), api.OutcomeUnavailable, 503},
		{"projection behind", wrapped(query.ErrNotCaughtUp), api.OutcomeUnavailable, 503},
		{"client gone", wrapped(context.Canceled), api.OutcomeCanceled, 499},
		{"anything else", errors.New("disk on fire"), api.OutcomeError, 500},
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			got := api.Classify(tt.giveErr)
			var status huma.StatusError
			errors.As(api.Problem(t.Context(), log, "test", tt.giveErr), &status)

			if got != tt.wantOut || status.GetStatus() != tt.wantStatus {
				t.Errorf("Classify = %q and Problem status %d, want %q and %d",
					got, status.GetStatus(), tt.wantOut, tt.wantStatus)
			}
		})
	}
}

func TestClassifyNil(t *testing.T) {
	t.Parallel()
	if got := api.Classify(nil); got != api.OutcomeOK {
		t.Errorf("Classify(nil) = %q, want %q", got, api.OutcomeOK)
	}
}

// TestPreconditionFailedNamesTheCurrentETag: a 412 carries the ETag to retry with, in its
// header, when the current version is known.
func TestPreconditionFailedNamesTheCurrentETag(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		giveErr  error
		wantETag string
	}{
		{"current version known", &command.ConflictError{Expected: 1, Current: 7}, `"7"`},
		{"current version unknown", &command.ConflictError{Expected: 1, Current: -1}, ""},
	}
	log := slog.New(slog.DiscardHandler)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			err := api.Problem(t.Context(), log, "test", tt.giveErr)

			var headers huma.HeadersError
			got := ""
			if errors.As(err, &headers) {
				got = headers.GetHeaders().Get("ETag")
			}
			if got != tt.wantETag {
				t.Errorf("ETag %q, want %q", got, tt.wantETag)
			}
		})
	}
}
