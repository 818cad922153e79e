package command

import (
	"encoding/json"
	"testing"
)

// FuzzDecodeCreate checks that decodeCreate accepts only what huma accepts without a complaint
// and decodes it to the same input: an object whose members are exactly title, content and
// author_name, all strings, with the values encoding/json gives them. Its seeds run with every
// go test; `go test ./api/command -fuzz DecodeCreate` searches further.
func FuzzDecodeCreate(f *testing.F) {
	for _, s := range []string{
		`{"title":"t","content":"c","author_name":"a"}`,
		` { "author_name" : "a" , "content" : "c" , "title" : "t" } `,
		`{"title":"t\u00e9\"\\\/\b\f\n\r\t","content":"c","author_name":"a"}`,
		`{"title":"\ud83d\ude00 \ud800","content":"c","author_name":"a"}`,
		"{\"title\":\"\xff\xfe\",\"content\":\"c\",\"author_name\":\"a\"}",
		"{\"title\":\"a\x01\",\"content\":\"c\",\"author_name\":\"a\"}",
		`{"title":"t","content":"c"}`,
		`{"title":"t","content":"c","author_name":"a","x":1}`,
		`{"title":"t","title":"u","content":"c","author_name":"a"}`,
		`{"title":"t","content":"c","author_name":"a",}`,
		`{"title":"t","content":"c","author_name":"a"} {}`,
		`{"title":1,"content":"c","author_name":"a"}`,
		`{"title":null,"content":"c","author_name":"a"}`,
		`{"tit\u006ce":"t","content":"c","author_name":"a"}`,
		`{"Title":"t","content":"c","author_name":"a"}`,
		`{"title":"t\","content":"c","author_name":"a"}`,
		`{"title":"t\x","content":"c","author_name":"a"}`,
		`["t","c","a"]`, `""`, `{}`, ``, `{`, `{"title"`, `{"title":`, `{"title":"t"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		title, content, authorName, ok := decodeCreate(b)
		if !ok {
			return
		}
		var members map[string]any
		if err := json.Unmarshal(b, &members); err != nil {
			t.Fatalf("decodeCreate accepted %q, which is not JSON: %v", b, err)
		}
		want := map[string]any{"title": title, "content": content, "author_name": authorName}
		if len(members) != len(want) {
			t.Fatalf("decodeCreate accepted %q, whose members are %v", b, members)
		}
		for k, v := range want {
			if members[k] != v {
				t.Fatalf("decodeCreate(%q): %s = %q, encoding/json decodes %#v", b, k, v, members[k])
			}
		}
		var in CreateInput
		if err := json.Unmarshal(b, &in.Body); err != nil || in.Body.Title != title ||
			in.Body.Content != content || in.Body.AuthorName != authorName {
			t.Fatalf("decodeCreate(%q) = %q, %q, %q; into the input: %+v, %v", b, title, content, authorName, in.Body, err)
		}
	})
}

// TestDecodeCreateAcceptsPlainBodies checks that the bodies clients send take the fast path.
func TestDecodeCreateAcceptsPlainBodies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		give                         string
		wantTitle, wantContent, want string
	}{
		{`{"title":"t","content":"c","author_name":"a"}`, "t", "c", "a"},
		{"{\n  \"content\": \"line 1\\nline 2\",\n  \"author_name\": \"Zoë\",\n  \"title\": \"\\\"Q\\\"\"\n}\n", `"Q"`, "line 1\nline 2", "Zoë"},
	}
	for _, tt := range tests {
		title, content, authorName, ok := decodeCreate([]byte(tt.give))
		if !ok || title != tt.wantTitle || content != tt.wantContent || authorName != tt.want {
			t.Errorf("decodeCreate(%q) = %q, %q, %q, %v; want %q, %q, %q, true",
				tt.give, title, content, authorName, ok, tt.wantTitle, tt.wantContent, tt.want)
		}
	}
}
