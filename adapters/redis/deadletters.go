package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"hexapost/adapters/wire"
	"hexapost/ports"
)

// redriveScript moves a dead letter back to the stream atomically, so that two operators who
// redrive one dead letter at once publish it once, and a crash cannot publish it without
// removing it. KEYS: dead-letter stream, stream. ARGV: dead letter id, MAXLEN. It returns the
// new entry's id, or nil when there is no such dead letter.
const redriveScript = `
local found = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #found == 0 then return false end
local fields = found[1][2]
local add = {'XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*'}
local payload = ''
for i = 1, #fields, 2 do
  if fields[i] == 'payload' then payload = fields[i + 1] end
  if fields[i] == 'event_id' then table.insert(add, 'event_id'); table.insert(add, fields[i + 1]) end
end
table.insert(add, 'payload'); table.insert(add, payload)
local id = redis.call(unpack(add))
redis.call('XDEL', KEYS[1], ARGV[1])
return id
`

// List returns the dead letters, oldest first.
func (b *Bus) List(ctx context.Context) ([]ports.DeadLetter, error) {
	msgs, err := b.client.XRange(ctx, b.cfg.DeadLetterStream, "-", "+").Result()
	if err != nil {
		return nil, fail("list dead letters of "+b.cfg.DeadLetterStream, err)
	}
	out := make([]ports.DeadLetter, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, fromEntry(m))
	}
	return out, nil
}

// fromEntry reads a dead letter from its entry in the dead-letter stream.
func fromEntry(m goredis.XMessage) ports.DeadLetter {
	payload := field(m, "payload")
	d := ports.DeadLetter{ID: m.ID, Payload: payload, Reason: string(field(m, "reason"))}
	d.Attempts, _ = strconv.Atoi(string(field(m, "attempts")))
	d.FailedAt, _ = time.Parse(time.RFC3339Nano, string(field(m, "failed_at")))
	if c, err := wire.Decode(payload); err == nil {
		d.Change = &c
	}
	return d
}

// Redrive puts the dead letter's payload back on the stream as a new entry, so it starts again
// with a delivery count of 0, and removes the dead letter, atomically; ports.ErrNotFound when
// there is no dead letter with that id.
func (b *Bus) Redrive(ctx context.Context, id string) error {
	if !validID(id) {
		return fmt.Errorf("redis: redrive %q: %w", id, ports.ErrNotFound)
	}
	keys := []string{b.cfg.DeadLetterStream, b.cfg.Stream}
	err := b.redrive.Run(ctx, b.client, keys, id, b.cfg.MaxLen).Err()
	switch {
	case errors.Is(err, goredis.Nil):
		return fmt.Errorf("redis: redrive %s: %w", id, ports.ErrNotFound)
	case err != nil:
		return fail("redrive "+id, err)
	}
	return nil
}

// Discard deletes the dead letter for good; ports.ErrNotFound when there is no such id.
func (b *Bus) Discard(ctx context.Context, id string) error {
	if !validID(id) {
		return fmt.Errorf("redis: discard %q: %w", id, ports.ErrNotFound)
	}
	n, err := b.client.XDel(ctx, b.cfg.DeadLetterStream, id).Result()
	switch {
	case err != nil:
		return fail("discard "+id, err)
	case n == 0:
		return fmt.Errorf("redis: discard %s: %w", id, ports.ErrNotFound)
	}
	return nil
}

// validID reports whether id has the form of a stream entry id, ms-seq; Redis refuses anything
// else with a syntax error, which for an operator's lookup means "no such dead letter".
func validID(id string) bool {
	ms, seq, ok := strings.Cut(id, "-")
	if !ok {
		return false
	}
	_, errMS := strconv.ParseUint(ms, 10, 64)
	_, errSeq := strconv.ParseUint(seq, 10, 64)
	return errMS == nil && errSeq == nil
}
