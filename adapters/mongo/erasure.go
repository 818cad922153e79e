package mongo

import (
	"context"
	"errors"
	"regexp"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"hexapost/core/post"
)

// generationCollection matches the names of the read model's collections of every generation,
// the live one, an unfinished rebuild's and one a failed rebuild left behind.
var generationCollection = regexp.MustCompile(`^(posts|history)(_g[0-9]+)?$`)

// EraseHistory redacts the post's history entries, and its view, if its history holds its
// erasure. The erasure is the post's last version, so its last entry tells. It redacts the post
// in every generation of the read model, not only the live one: a rebuild in progress, or one
// that failed, may hold copies made before the erasure.
func (v *Views) EraseHistory(ctx context.Context, postID string) (bool, error) {
	_, history, err := v.cols(ctx)
	if err != nil {
		return false, err
	}
	var last historyDoc
	err = history.FindOne(ctx, bson.D{{Key: "post_id", Value: postID}},
		options.FindOne().SetSort(bson.D{{Key: "version", Value: -1}}).SetProjection(bson.D{{Key: "type", Value: 1}})).
		Decode(&last)
	if errors.Is(err, mongo.ErrNoDocuments) || err == nil && last.Type != string(post.EventErased) {
		return false, nil
	}
	if err != nil {
		return false, wrap("erase history of "+postID, err)
	}
	names, err := v.db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return false, wrap("erase history of "+postID, err)
	}
	redact := func(prefix string) bson.D {
		return bson.D{{Key: "$set", Value: bson.D{
			{Key: prefix + "title", Value: ""}, {Key: prefix + "content", Value: ""},
			{Key: prefix + "author_name", Value: ""}, {Key: prefix + "erased", Value: true},
		}}}
	}
	for _, name := range names {
		m := generationCollection.FindStringSubmatch(name)
		if m == nil {
			continue
		}
		c := v.db.Collection(name)
		if m[1] == "history" {
			_, err = c.UpdateMany(ctx, bson.D{{Key: "post_id", Value: postID}}, redact("state."))
		} else {
			// A view of the post in another generation may be of any version; it leaves the
			// lists as the live tombstone does.
			update := redact("")
			update[0].Value = append(update[0].Value.(bson.D), bson.E{Key: "deleted", Value: true})
			_, err = c.UpdateOne(ctx, bson.D{{Key: "_id", Value: postID}}, update)
		}
		if err != nil {
			return false, wrap("erase "+name+" of "+postID, err)
		}
	}
	return true, nil
}
