package post_test

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"hexapost/core/post"
)

// FuzzCreate holds Normalize to its promises for any input: it never panics, it reports broken
// rules as ValidationErrors of known fields, and what it accepts is stored trimmed and within
// the limits.
func FuzzCreate(f *testing.F) {
	seeds := []post.Create{
		{Title: "Hello", Content: "Body", AuthorName: "Ann"},
		{Title: "  Hello  ", Content: "  Body  ", AuthorName: "\tAnn\n"},
		{},
		{Title: " ", Content: " ", AuthorName: " "},
		{Title: chars(post.MaxTitle), Content: chars(1000), AuthorName: chars(post.MaxAuthorName)},
		{Title: chars(post.MaxTitle + 1), Content: "x", AuthorName: chars(post.MaxAuthorName + 1)},
		{Title: "\xff", Content: "\xc3\x28", AuthorName: "\u00a0Ann\u2003"},
		{Title: "\u200b", Content: "\x00", AuthorName: "A\xe2\x80"},
	}
	for _, s := range seeds {
		f.Add(s.Title, s.Content, s.AuthorName)
	}

	f.Fuzz(func(t *testing.T, title, content, author string) {
		c, err := post.Create{Title: title, Content: content, AuthorName: author}.Normalize()

		if err != nil {
			var errs post.ValidationErrors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("error = %v (%T), want non-empty post.ValidationErrors", err, err)
			}
			for _, e := range errs {
				if e.Field != "title" && e.Field != "content" && e.Field != "author_name" {
					t.Errorf("error names unknown field %q", e.Field)
				}
			}
			return
		}
		accepted(t, "title", c.Title, strings.TrimSpace(title), post.MaxTitle)
		accepted(t, "author_name", c.AuthorName, strings.TrimSpace(author), post.MaxAuthorName)
		accepted(t, "content", c.Content, content, post.MaxContent)
		if strings.TrimSpace(c.Content) == "" {
			t.Errorf("content %q is blank", c.Content)
		}

		p, err := post.FromHistory(postID, nil)
		if err != nil {
			t.Fatal(err)
		}
		e, err := p.Create(post.Create{Title: title, Content: content, AuthorName: author}, stamp)
		if err != nil {
			t.Fatalf("Create refused what Normalize accepted: %v", err)
		}
		if *e.Title != c.Title || *e.Content != c.Content || *e.AuthorName != c.AuthorName {
			t.Errorf("Created event %q/%q/%q differs from the normalized command %q/%q/%q",
				*e.Title, *e.Content, *e.AuthorName, c.Title, c.Content, c.AuthorName)
		}
	})
}

func accepted(t *testing.T, field, got, want string, maxLen int) {
	t.Helper()
	n := utf8.RuneCountInString(got)
	switch {
	case got != want:
		t.Errorf("%s = %q, want %q", field, got, want)
	case !utf8.ValidString(got):
		t.Errorf("%s %q is not valid UTF-8", field, got)
	case n < 1 || n > maxLen:
		t.Errorf("%s has %d characters, want 1..%d", field, n, maxLen)
	}
}
