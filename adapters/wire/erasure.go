package wire

import (
	"bytes"

	"hexapost/core/post"
)

// postIDField is how the event's post id begins in an encoded message; the event comes before
// the state, which names the post "id".
var postIDField = []byte(`"post_id":"`)

// PostSet is the set of the posts ids, as Erasable takes them.
func PostSet(ids []string) map[string]bool {
	set := make(map[string]bool, len(ids))
	for _, id := range ids {
		set[id] = true
	}
	return set
}

// Erasable reports whether payload is a message of one of the posts in erased that still
// carries personal data: any change of theirs but their erasure. A payload that names one of
// them and cannot be decoded counts, as it may hold anything. Most messages are told apart by
// the post id alone, without decoding, so a bus can be searched quickly.
func Erasable(payload []byte, erased map[string]bool) bool {
	_, rest, ok := bytes.Cut(payload, postIDField)
	if !ok {
		return false
	}
	id, _, ok := bytes.Cut(rest, []byte{'"'})
	if !ok || !erased[string(id)] {
		return false
	}
	c, err := Decode(payload)
	return err != nil || c.Event.Type != post.EventErased
}
