package post_test

import (
	"fmt"
	"testing"
	"time"

	"hexapost/core/post"
)

// BenchmarkDecideUpdate measures deciding an update on a post and folding the event into it:
// what the command service does per command once the post's state is known.
func BenchmarkDecideUpdate(b *testing.B) {
	at := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	p, err := post.FromHistory("p1", nil)
	if err != nil {
		b.Fatal(err)
	}
	created, err := p.Create(post.Create{Title: "Hello", Content: "Body", AuthorName: "Ann"}, post.Stamp{EventID: "e0", At: at})
	if err != nil {
		b.Fatal(err)
	}
	if err := p.Apply(created); err != nil {
		b.Fatal(err)
	}
	titles := make([]string, 64)
	for i := range titles {
		titles[i] = fmt.Sprintf("title %d", i)
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		events, err := p.Update(post.Update{Title: &titles[i%len(titles)]}, post.Stamp{EventID: "e", At: at})
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Apply(events...); err != nil {
			b.Fatal(err)
		}
	}
}
