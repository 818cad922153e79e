package e2e_test

import (
	"errors"
	"net/http"
	"testing"

	"hexapost/api/client"
)

// TestClient drives a running hexapost through the typed client: every command and read
// answers typed values, and every error answer is a *client.Problem with its status.
func TestClient(t *testing.T) {
	t.Parallel()
	p := start(t, nil)
	c, err := client.New(client.Config{CommandURL: p.CommandURL, QueryURL: p.QueryURL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()

	created, err := c.Create(ctx, client.NewPost{Title: "typed", Content: "by the client", AuthorName: "client-test"})
	if err != nil || created.ID == "" || created.Version != 1 || created.Title != "typed" {
		t.Fatalf("Create = %+v, %v; want version 1 of the post", created, err)
	}
	content := "changed"
	updated, err := c.Update(ctx, created.ID, client.Changes{Content: &content})
	if err != nil || updated.Version != 2 || updated.Content != content || updated.Title != "typed" {
		t.Fatalf("Update = %+v, %v; want version 2 with the new content and the old title", updated, err)
	}
	got, err := c.Get(ctx, created.ID, 2)
	if err != nil || got != updated {
		t.Fatalf("Get(min_version 2) = %+v, %v; want %+v", got, err, updated)
	}
	page, err := c.List(ctx, client.ListQuery{AuthorName: "client-test", Limit: 10})
	if err != nil || len(page.Items) != 1 || page.Items[0].ID != created.ID || page.NextCursor != "" {
		t.Fatalf("List = %+v, %v; want the one post of the author and no next page", page, err)
	}
	first, err := c.History(ctx, created.ID, client.HistoryQuery{Limit: 1})
	if err != nil || len(first.Items) != 1 || first.Items[0].EventType != "post.created" || first.NextCursor == "" {
		t.Fatalf("History(limit 1) = %+v, %v; want the create and a next page", first, err)
	}
	second, err := c.History(ctx, created.ID, client.HistoryQuery{Limit: 1, Cursor: first.NextCursor})
	if err != nil || len(second.Items) != 1 || second.Items[0].Post != updated || second.NextCursor != "" {
		t.Fatalf("History(next page) = %+v, %v; want the update with the state it answered, and no next page", second, err)
	}
	deleted, err := c.Delete(ctx, created.ID)
	if err != nil || !deleted.Deleted || deleted.Version != 3 {
		t.Fatalf("Delete = %+v, %v; want version 3, deleted", deleted, err)
	}

	tests := []struct {
		name         string
		call         func() error
		wantStatus   int
		wantLocation string
	}{
		{"a deleted post", func() error { _, err := c.Get(ctx, created.ID, 3); return err }, http.StatusGone, ""},
		{"an unknown post", func() error {
			_, err := c.Update(ctx, "0190b6c4-3c3a-7d6e-8a4b-9f1e2d3c4b5a", client.Changes{Content: &content})
			return err
		}, http.StatusNotFound, ""},
		{"a blank title", func() error {
			_, err := c.Create(ctx, client.NewPost{Title: " ", Content: "c", AuthorName: "a"})
			return err
		}, http.StatusUnprocessableEntity, "body.title"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var problem *client.Problem
			err := tt.call()
			if !errors.As(err, &problem) || problem.Status != tt.wantStatus || client.StatusOf(err) != tt.wantStatus {
				t.Fatalf("error %v, want a problem with status %d", err, tt.wantStatus)
			}
			if tt.wantLocation != "" && (len(problem.Errors) == 0 || problem.Errors[0].Location != tt.wantLocation) {
				t.Errorf("problem %+v, want an error at %s", problem, tt.wantLocation)
			}
		})
	}
}
