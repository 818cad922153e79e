package api

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"testing"

	"github.com/danielgtaylor/huma/v2"

	"hexapost/core/command"
	"hexapost/core/post"
	"hexapost/ports"
)

// TestProblemExamplesAreTheProblemsAnswered: the OpenAPI document's example of each error
// status is the problem Problem makes of the error that leads to that status.
func TestProblemExamplesAreTheProblemsAnswered(t *testing.T) {
	t.Parallel()
	causes := map[string]error{
		"404": post.ErrNotFound,
		"409": ports.ErrConflict,
		"410": post.ErrDeleted,
		"412": &command.ConflictError{Expected: 1, Current: 2},
		"422": post.ValidationErrors{{Field: "title", Reason: "must not be empty or blank"}},
		"503": ports.ErrUnavailable,
	}
	examples := problemExamples()
	if len(examples) != len(causes) {
		t.Fatalf("%d examples, %d causes: give each example its cause", len(examples), len(causes))
	}
	for status, cause := range causes {
		var answered *huma.ErrorModel
		if !errors.As(Problem(context.Background(), slog.New(slog.DiscardHandler), "test", cause), &answered) {
			t.Fatalf("%s: Problem made no problem of %v", status, cause)
		}
		if !reflect.DeepEqual(examples[status], answered) {
			t.Errorf("%s: example %+v, answered %+v", status, examples[status], answered)
		}
	}
}
