package command

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"hexapost/core/post"
	"hexapost/ports"
)

// Erasure is the outcome of erasing one post.
type Erasure struct {
	PostID string
	// Version is the version of the post's erasure.
	Version int64
	// ErasedAt is when the erasure was recorded.
	ErasedAt time.Time
	// Before tells that the post was erased by an earlier request; this one only purged the
	// copies again.
	Before bool
	// BusMessages is how many of the post's messages were removed from the bus; of an author's
	// erasure, AuthorErasure counts them.
	BusMessages int
}

// AuthorErasure is the outcome of erasing every post of an author.
type AuthorErasure struct {
	Posts []Erasure
	// BusMessages is how many messages were removed from the bus.
	BusMessages int
}

// Eraser erases posts for good: it records each erasure as the post's last event, which makes
// the event store redact the post's personal data in the same write (ports.EventAppender), then
// removes the copies the bus keeps. The read model follows when the projector applies the
// erasure. Every erasure is audited, naming who asked and never the data: the erasure event's
// metadata holds the credential's name (ports.Metadata.Actor), and one log line tells it too.
type Eraser struct {
	svc     *Service
	authors ports.AuthorPosts
	bus     ports.BusEraser
	log     *slog.Logger
}

// NewEraser returns an Eraser that records erasures through svc.
func NewEraser(svc *Service, authors ports.AuthorPosts, bus ports.BusEraser, log *slog.Logger) *Eraser {
	return &Eraser{svc: svc, authors: authors, bus: bus, log: log}
}

// authorPage is how many of an author's posts are looked up at a time.
const authorPage = 100

// ErasePost erases the post id on behalf of by, the name of the credential that asked. A post
// erased already is not an error: its copies on the bus are removed again, so a request that
// failed half way can be repeated. An unknown post is post.ErrNotFound.
func (e *Eraser) ErasePost(ctx context.Context, id, by, requestID string) (Erasure, error) {
	er, err := e.record(ctx, id, by, requestID)
	if err != nil {
		return Erasure{}, err
	}
	if er.BusMessages, err = e.bus.EraseFromBus(ctx, []string{id}); err != nil {
		return er, fmt.Errorf("erase %s from the bus: %w", id, err)
	}
	e.audit(ctx, "post erased", by, requestID, slog.String("post_id", id), slog.Int64("version", er.Version),
		slog.Bool("erased_before", er.Before), slog.Int("bus_messages_removed", er.BusMessages))
	return er, nil
}

// EraseAuthor erases every post whose events name authorName as author, in any version, then
// removes their copies from the bus at once. The audit lines name each post and count them;
// they do not name the author. When it fails half way, the posts it erased are removed from the
// bus all the same: their events no longer name the author, so a repeated request would not
// find them again (an erasure of each post would).
func (e *Eraser) EraseAuthor(ctx context.Context, authorName, by, requestID string) (AuthorErasure, error) {
	var out AuthorErasure
	var ids []string
	err := func() error {
		for after := ""; ; {
			page, err := e.authors.PostsOf(ctx, authorName, after, authorPage)
			if err != nil {
				return fmt.Errorf("posts of an author: %w", err)
			}
			erased, err := e.recordAll(ctx, page, by, requestID)
			for _, er := range erased {
				if er.PostID == "" {
					continue // not erased: err says why
				}
				out.Posts = append(out.Posts, er)
				ids = append(ids, er.PostID)
				e.audit(ctx, "post erased", by, requestID, slog.String("post_id", er.PostID),
					slog.Int64("version", er.Version), slog.Bool("erased_before", er.Before))
			}
			if err != nil || len(page) < authorPage {
				return err
			}
			after = page[len(page)-1]
		}
	}()
	if len(ids) > 0 {
		n, berr := e.bus.EraseFromBus(ctx, ids)
		out.BusMessages = n
		if berr != nil {
			err = errors.Join(err, fmt.Errorf("erase %d posts from the bus: %w", len(ids), berr))
		}
	}
	if err != nil {
		return out, err
	}
	e.audit(ctx, "author erased", by, requestID, slog.Int("posts", len(ids)),
		slog.Int("bus_messages_removed", out.BusMessages))
	return out, nil
}

// authorWorkers is how many of an author's posts are erased at once: each erasure is a
// transaction of its own, which mostly waits for the store.
const authorWorkers = 8

// recordAll records the erasures of the posts ids, authorWorkers at a time, and returns them in
// the order of ids; a post whose erasure failed is left zero, and the first error is returned.
func (e *Eraser) recordAll(ctx context.Context, ids []string, by, requestID string) ([]Erasure, error) {
	out := make([]Erasure, len(ids))
	errs := make([]error, len(ids))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(authorWorkers, len(ids)) {
		wg.Go(func() {
			for i := range next {
				out[i], errs[i] = e.record(ctx, ids[i], by, requestID)
			}
		})
	}
	for i := range ids {
		next <- i
	}
	close(next)
	wg.Wait()
	return out, errors.Join(errs...)
}

// record appends the erasure of the post, or finds the one appended before.
func (e *Eraser) record(ctx context.Context, id, by, requestID string) (Erasure, error) {
	r, err := e.svc.run(ctx, opErase, id, "", Options{RequestID: requestID, Actor: by},
		func(p *post.Post, st post.Stamp) ([]post.Event, error) {
			ev, err := p.Erase(post.Erase{}, st)
			if err != nil {
				return nil, err
			}
			return []post.Event{ev}, nil
		})
	if errors.Is(err, post.ErrErased) {
		p, release, lerr := e.svc.posts.Load(ctx, id, true)
		if lerr != nil {
			return Erasure{}, fmt.Errorf("load %s: %w", id, lerr)
		}
		release()
		s := p.State()
		return Erasure{PostID: id, Version: s.Version, ErasedAt: s.UpdatedAt, Before: true}, nil
	}
	if err != nil {
		return Erasure{}, err
	}
	return Erasure{PostID: id, Version: r.State.Version, ErasedAt: r.State.UpdatedAt}, nil
}

// audit writes the audit line of an erasure: what, when (the line's time), and by whom.
func (e *Eraser) audit(ctx context.Context, msg, by, requestID string, attrs ...slog.Attr) {
	attrs = append(attrs, slog.String("audit", "erasure"), slog.String("by", by))
	if requestID != "" {
		attrs = append(attrs, slog.String("request_id", requestID))
	}
	e.log.LogAttrs(ctx, slog.LevelInfo, msg, attrs...)
}
