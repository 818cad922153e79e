package redis

import (
	"context"
	"errors"
	"fmt"

	goredis "github.com/redis/go-redis/v9"

	"hexapost/adapters/wire"
	"hexapost/ports"
)

var _ ports.ChangeFeed = (*Bus)(nil)

// feedBatch bounds the entries one read of the feed returns.
const feedBatch = 256

// Head returns the id of the stream's last entry; zero when there is no stream or no entry.
func (b *Bus) Head(ctx context.Context) (ports.Position, error) {
	info, err := b.client.XInfoStream(ctx, b.cfg.Stream).Result()
	if err != nil {
		if goredis.HasErrorPrefix(err, "no such key") {
			return ports.Position{}, nil
		}
		return ports.Position{}, fail("feed head", err)
	}
	return position(info.LastGeneratedID), nil
}

// Tail reads the stream with XREAD, outside any group, after the entry id `after`. Each read
// asks in one MULTI for the stream's state too: the bound trims the oldest entries, so an
// entry after `after` is gone when entries were removed and the first one left lies after
// `after` (an id XDEL removed shows as max-deleted-entry-id). When `after` itself was trimmed
// and the first entry left is the one that followed it, nothing is lost, but this cannot be
// told from the stream, and the reader is told its position is gone: a reset too many, never
// a gap. When there is nothing new it waits in a blocking XREAD, then reads again the same way.
func (b *Bus) Tail(ctx context.Context, after ports.Position, fn func([]ports.FeedEntry) error) error {
	for ctx.Err() == nil {
		entries, err := b.feedRead(ctx, after)
		if err != nil {
			return err
		}
		if len(entries) == 0 {
			// Wait for an entry after `after`, at most maxBlock so that the end of ctx is seen;
			// the read above then fetches it with the check.
			err := b.client.XRead(ctx, &goredis.XReadArgs{
				Streams: []string{b.cfg.Stream, entryID(after)}, Count: 1, Block: maxBlock,
			}).Err()
			if err != nil && !errors.Is(err, goredis.Nil) && ctx.Err() == nil {
				return fail("feed wait", err)
			}
			continue
		}
		last := position(entries[len(entries)-1].ID)
		batch := make([]ports.FeedEntry, 0, len(entries))
		for _, m := range entries {
			c, bad := wire.Decode(field(m, "payload"))
			if bad != nil {
				continue // the dead letters have it; the feed has nothing to show of it
			}
			batch = append(batch, ports.FeedEntry{Position: position(m.ID), Change: c})
		}
		if len(batch) > 0 {
			if err := fn(batch); err != nil {
				return err
			}
		}
		after = last
	}
	return nil
}

// feedRead returns the entries after `after`, none when there are none, or an error wrapping
// ports.ErrPositionGone when one was removed or `after` is beyond the last entry.
func (b *Bus) feedRead(ctx context.Context, after ports.Position) ([]goredis.XMessage, error) {
	var info *goredis.XInfoStreamCmd
	var read *goredis.XStreamSliceCmd
	_, err := b.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		info = p.XInfoStream(ctx, b.cfg.Stream)
		read = p.XRead(ctx, &goredis.XReadArgs{
			Streams: []string{b.cfg.Stream, entryID(after)}, Count: feedBatch, Block: -1,
		})
		return nil
	})
	switch {
	case info.Err() != nil && goredis.HasErrorPrefix(info.Err(), "no such key"):
		if !after.IsZero() {
			return nil, fmt.Errorf("redis: feed: stream %s is gone: %w", b.cfg.Stream, ports.ErrPositionGone)
		}
		return nil, nil
	case info.Err() != nil:
		return nil, fail("feed read", info.Err())
	case err != nil && !errors.Is(err, goredis.Nil):
		return nil, fail("feed read", err)
	}
	v := info.Val()
	deleted, first, lastID := position(v.MaxDeletedEntryID), position(v.FirstEntry.ID), position(v.LastGeneratedID)
	removed := v.EntriesAdded > v.Length // the bound trimmed, or entries were deleted
	switch {
	case after.Compare(lastID) > 0:
		return nil, fmt.Errorf("redis: feed: %s is beyond the stream's last entry %s: %w", after, lastID, ports.ErrPositionGone)
	case deleted.Compare(after) > 0,
		removed && v.Length == 0 && after.Compare(lastID) < 0,
		removed && v.Length > 0 && first.Compare(after) > 0:
		return nil, fmt.Errorf("redis: feed: entries after %s were removed; the stream starts at %s: %w",
			after, first, ports.ErrPositionGone)
	}
	streams, err := read.Result()
	if err != nil && !errors.Is(err, goredis.Nil) {
		return nil, fail("feed read", err)
	}
	if len(streams) == 0 {
		return nil, nil
	}
	return streams[0].Messages, nil
}

// position is the feed's position of an entry id.
func position(id string) ports.Position {
	sid := parseID(id)
	return ports.Position{Major: sid.ms, Minor: sid.seq}
}

// entryID writes a position as a whole entry id.
func entryID(p ports.Position) string { return fmt.Sprintf("%d-%d", p.Major, p.Minor) }
