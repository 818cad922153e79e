package mongo

import (
	"context"
	"errors"
	"regexp"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// generationCollection matches the names of the read model's collections of every generation,
// the live one, an unfinished rebuild's and one a failed rebuild left behind.
var generationCollection = regexp.MustCompile(`^(posts|history)(_g[0-9]+)?$`)

// EraseHistory redacts the post's history entries, and its view, in every generation of the
// read model, not only the live one: a rebuild in progress, or one that failed, may hold copies
// made before the erasure. The live view is the erased one already or about to be; redacting
// it too changes nothing it keeps.
func (v *Views) EraseHistory(ctx context.Context, postID string) error {
	names, err := v.db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return wrap("erase history of "+postID, err)
	}
	// As post.State.Redacted does.
	redact := func(prefix string) bson.D {
		return bson.D{{Key: "$set", Value: bson.D{
			{Key: prefix + "title", Value: ""}, {Key: prefix + "content", Value: ""},
			{Key: prefix + "author_name", Value: ""}, {Key: prefix + "deleted", Value: true},
			{Key: prefix + "erased", Value: true},
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
			// A view of the post in another generation may be of any version.
			_, err = c.UpdateOne(ctx, bson.D{{Key: "_id", Value: postID}}, redact(""))
		}
		if err != nil {
			return wrap("erase "+name+" of "+postID, err)
		}
	}
	return nil
}

// redactIfErasedID is redactIfErased for the view of the post id that a write did not replace,
// read by its _id.
func (v *Views) redactIfErasedID(ctx context.Context, posts *mongo.Collection, id string) error {
	var found stateDoc
	err := posts.FindOne(ctx, bson.D{{Key: "_id", Value: id}},
		options.FindOne().SetProjection(bson.D{{Key: "erased", Value: 1}})).Decode(&found)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil
	}
	if err != nil {
		return wrap("look at the view of "+id, err)
	}
	found.ID = id
	return v.redactIfErased(ctx, found)
}

// redactIfErased redacts the history of the post whose stored view, found, kept a write out,
// if that view is erased: the writer stored its history entry just before (ports.ViewWriter).
func (v *Views) redactIfErased(ctx context.Context, found stateDoc) error {
	if !found.Erased {
		return nil
	}
	return v.EraseHistory(ctx, found.ID)
}
