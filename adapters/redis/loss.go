package redis

import (
	"context"
	"maps"
	"strconv"
	"strings"

	goredis "github.com/redis/go-redis/v9"
)

// streamID is a stream entry id, ms-seq, in the order Redis gives entries.
type streamID struct{ ms, seq uint64 }

// parseID reads an entry id; the zero id for "" and for what is not an id.
func parseID(s string) streamID {
	ms, seq, _ := strings.Cut(s, "-")
	a, err1 := strconv.ParseUint(ms, 10, 64)
	b, err2 := strconv.ParseUint(seq, 10, 64)
	if err1 != nil || err2 != nil {
		return streamID{}
	}
	return streamID{a, b}
}

func (a streamID) before(b streamID) bool { return a.ms < b.ms || a.ms == b.ms && a.seq < b.seq }

// trimmedUndelivered returns how many changes the stream's bound trimmed before the group was
// given them; 0 when none (or when the stream or the group is missing: the read finds that).
// Redis counts the entries ever added to the stream and, per group, the entries it was given
// (entries-read, which go-redis reads as 0 when Redis cannot tell); those added and no longer
// in the stream were trimmed (hexapost never deletes single entries). A group whose last
// delivered entry lies before the first entry left, and that was given fewer than were trimmed,
// lost the difference.
func (b *Bus) trimmedUndelivered(ctx context.Context) (int64, error) {
	var (
		stream *goredis.XInfoStreamCmd
		groups *goredis.XInfoGroupsCmd
	)
	// One MULTI: both answers describe the same moment.
	_, err := b.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		stream = p.XInfoStream(ctx, b.cfg.Stream)
		groups = p.XInfoGroups(ctx, b.cfg.Stream)
		return nil
	})
	if goredis.HasErrorPrefix(err, "no such key") {
		return 0, nil
	}
	if err != nil {
		return 0, fail("check "+b.cfg.Stream+" for lost changes", err)
	}
	s := stream.Val()
	trimmed := s.EntriesAdded - s.Length
	for _, g := range groups.Val() {
		last := parseID(g.LastDeliveredID)
		// In an empty stream every entry up to the last one added is gone.
		skipped := s.Length > 0 && last.before(parseID(s.FirstEntry.ID)) ||
			s.Length == 0 && last.before(parseID(s.LastGeneratedID))
		if g.Name == b.cfg.Group && skipped && trimmed > g.EntriesRead {
			return trimmed - g.EntriesRead, nil
		}
	}
	return 0, nil
}

// warnIfFragile logs a warning, with what to set, when Redis keeps nothing on disk (a restart
// loses every change not yet applied) and when the group's backlog is close to the stream's
// bound. Either check is skipped, silently, when Redis refuses it (a managed Redis may refuse
// CONFIG): they are advice, not conditions to start.
func (b *Bus) warnIfFragile(ctx context.Context) {
	conf := map[string]string{}
	cmds, err := b.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		p.ConfigGet(ctx, "appendonly")
		p.ConfigGet(ctx, "save")
		return nil
	})
	for _, c := range cmds {
		maps.Copy(conf, c.(*goredis.MapStringStringCmd).Val())
	}
	if err == nil && !persistent(conf) {
		b.policy.Log.Warn("Redis keeps the bus in memory only: a restart loses every change not yet applied, and the "+
			"read model lacks them until it is reconciled with the event store; turn on persistence "+
			"(appendonly yes, or a save schedule)", "url", redact(b.cfg.URL))
	}
	groups, err := b.client.XInfoGroups(ctx, b.cfg.Stream).Result()
	if err != nil {
		return
	}
	for _, g := range groups {
		// Lag is -1 when Redis cannot tell how many changes the group was not given yet.
		if g.Name == b.cfg.Group && g.Lag >= 0 {
			b.policy.WarnBacklog(g.Lag+g.Pending, b.cfg.MaxLen, "stream", b.cfg.Stream, "group", b.cfg.Group)
		}
	}
}

// persistent reports whether a Redis with this CONFIG keeps its data on disk: an append-only
// file, or a snapshot schedule. A CONFIG that does not say counts as persistent.
func persistent(conf map[string]string) bool {
	aof, okAOF := conf["appendonly"]
	save, okSave := conf["save"]
	return !okAOF || !okSave || aof == "yes" || strings.TrimSpace(save) != ""
}
