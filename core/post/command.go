package post

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// The limits of a post's fields, in characters (Unicode code points). Title and author name
// are trimmed of surrounding white space before they are measured and stored.
const (
	MaxTitle      = 200
	MaxContent    = 100_000
	MaxAuthorName = 100
)

// Create asks for a new post.
type Create struct {
	Title      string
	Content    string
	AuthorName string
}

// Update asks to change some fields of a post; a nil field is left as it is. At least one
// field must be given.
type Update struct {
	Title      *string
	Content    *string
	AuthorName *string
}

// Delete asks to delete a post. It has no fields; it exists so that every command has a type.
type Delete struct{}

// Erase asks to erase a post's personal data (title, content, author name) for good.
type Erase struct{}

// Normalize returns the command with its fields in stored form (trimmed) and every broken rule.
func (c Create) Normalize() (Create, error) {
	var errs ValidationErrors
	c.Title = trimmed(&errs, "title", c.Title, MaxTitle)
	c.Content = untrimmed(&errs, "content", c.Content, MaxContent)
	c.AuthorName = trimmed(&errs, "author_name", c.AuthorName, MaxAuthorName)
	return c, errs.orNil()
}

// Normalize returns the command with its given fields in stored form and every broken rule.
func (c Update) Normalize() (Update, error) {
	var errs ValidationErrors
	if c.Title == nil && c.Content == nil && c.AuthorName == nil {
		errs = append(errs, &ValidationError{
			Field:  "body",
			Reason: "at least one of title, content, author_name is required",
		})
	}
	if c.Title != nil {
		v := trimmed(&errs, "title", *c.Title, MaxTitle)
		c.Title = &v
	}
	if c.Content != nil {
		v := untrimmed(&errs, "content", *c.Content, MaxContent)
		c.Content = &v
	}
	if c.AuthorName != nil {
		v := trimmed(&errs, "author_name", *c.AuthorName, MaxAuthorName)
		c.AuthorName = &v
	}
	return c, errs.orNil()
}

func trimmed(errs *ValidationErrors, field, v string, maxLen int) string {
	v = strings.TrimSpace(v)
	checkLength(errs, field, v, maxLen)
	return v
}

func untrimmed(errs *ValidationErrors, field, v string, maxLen int) string {
	if strings.TrimSpace(v) == "" {
		*errs = append(*errs, &ValidationError{Field: field, Reason: "must not be empty or blank"})
		return v
	}
	checkLength(errs, field, v, maxLen)
	return v
}

func checkLength(errs *ValidationErrors, field, v string, maxLen int) {
	switch n := utf8.RuneCountInString(v); {
	case !utf8.ValidString(v):
		*errs = append(*errs, &ValidationError{Field: field, Reason: "must be valid UTF-8"})
	case n == 0:
		*errs = append(*errs, &ValidationError{Field: field, Reason: "must not be empty or blank"})
	case n > maxLen:
		*errs = append(*errs, &ValidationError{
			Field:  field,
			Reason: fmt.Sprintf("must be at most %d characters, got %d", maxLen, n),
		})
	}
}
