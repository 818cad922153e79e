package redis

import (
	"context"
	"fmt"

	goredis "github.com/redis/go-redis/v9"

	"hexapost/adapters/wire"
	"hexapost/ports"
)

var _ ports.BusEraser = (*Bus)(nil)

// erasePage is how many entries one XRANGE of an erasure reads, and one XDEL deletes.
const erasePage = 1000

// EraseFromBus deletes the entries of the posts that still carry personal data from the
// changes stream and from the dead-letter stream. It reads each stream whole, a page at a time,
// and tells most entries apart by their post id without decoding them. A deleted entry that a
// consumer of the group holds pending is acknowledged too, so the group forgets it.
func (b *Bus) EraseFromBus(ctx context.Context, postIDs []string) (int, error) {
	erased := wire.PostSet(postIDs)
	n, err := b.eraseIn(ctx, b.cfg.Stream, b.cfg.Group, erased)
	if err != nil {
		return n, err
	}
	m, err := b.eraseIn(ctx, b.cfg.DeadLetterStream, "", erased)
	return n + m, err
}

func (b *Bus) eraseIn(ctx context.Context, stream, group string, erased map[string]bool) (int, error) {
	var ids []string
	for start := "-"; ; {
		page, err := b.client.XRangeN(ctx, stream, start, "+", erasePage).Result()
		if err != nil {
			return 0, fail("erase: read "+stream, err)
		}
		for _, m := range page {
			payload, _ := m.Values["payload"].(string)
			if wire.Erasable([]byte(payload), erased) {
				ids = append(ids, m.ID)
			}
		}
		if len(page) < erasePage {
			break
		}
		start = "(" + page[len(page)-1].ID
	}
	removed := 0
	for i := 0; i < len(ids); i += erasePage {
		chunk := ids[i:min(i+erasePage, len(ids))]
		var del *goredis.IntCmd
		_, err := b.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			del = p.XDel(ctx, stream, chunk...)
			if group != "" {
				p.XAck(ctx, stream, group, chunk...)
			}
			return nil
		})
		if err != nil {
			return removed, fail(fmt.Sprintf("erase: delete %d entries of %s", len(chunk), stream), err)
		}
		removed += int(del.Val())
	}
	return removed, nil
}
