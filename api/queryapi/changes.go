package queryapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"hexapost/api"
	"hexapost/core/query"
	"hexapost/ports"
)

// Feed is what GET /changes streams from, and how.
type Feed struct {
	Changes *query.Changes
	// Heartbeat is the time between two comment lines on an idle stream (default 15s), which
	// keep proxies from closing it.
	Heartbeat time.Duration
	// events holds the changes as written, once for every client.
	events *eventCache
}

// NewFeed returns the Feed of GET /changes.
func NewFeed(changes *query.Changes, heartbeat time.Duration) Feed {
	return Feed{Changes: changes, Heartbeat: heartbeat, events: newEventCache(4096)}
}

// writeWait bounds each write to a client: one that does not read for that long is dropped
// whatever its buffer holds.
const writeWait = 10 * time.Second

// ChangesInput is the request of stream-changes.
type ChangesInput struct {
	PostID      string `query:"post_id" format:"uuid" doc:"Only this post's changes."`
	AuthorName  string `query:"author_name" maxLength:"100" doc:"Only the changes after which the post has this author."`
	After       string `query:"after" maxLength:"64" doc:"Start after this position (the id of an event received before); Last-Event-ID wins over it."`
	LastEventID string `header:"Last-Event-ID" maxLength:"64" doc:"Sent by EventSource when it reconnects: the id of the last event it received."`
}

// ResetEvent tells the client that the changes after its position are no longer retained:
// it reads again what it cares about and goes on from position.
type ResetEvent struct {
	Position string `json:"position" doc:"The position the stream goes on from; also the event's id."`
	Reason   string `json:"reason"`
}

// registerChanges adds stream-changes to a.
func (h *Handler) registerChanges(a huma.API, tags []string) {
	huma.Register(a, huma.Operation{
		OperationID: "stream-changes", Method: http.MethodGet, Path: "/changes", Tags: tags,
		Summary: "Follow the changes",
		Description: "A text/event-stream of every change the bus carries, as it happens, on any query server: " +
			"each event's data is the change (its type and the post's state after it) and its id a position. " +
			"A client that reconnects with Last-Event-ID (EventSource does) or ?after= receives every change " +
			"after that position the bus still retains, in each post's version order, without duplicates within " +
			"a stream. When the position is no longer retained, or the client reads too slowly, it receives a " +
			"reset event: it reads again the posts it cares about and goes on from the reset's id (a slow client " +
			"is then disconnected). Comment lines keep an idle stream open.",
		Responses: map[string]*huma.Response{"200": {
			Description: "Server-Sent Events: unnamed events carry changes, `event: reset` a reset.",
			Content:     map[string]*huma.MediaType{"text/event-stream": {Schema: eventStreamSchema(a)}},
		}},
		Errors: []int{http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
	}, h.streamChanges)
}

// eventStreamSchema describes the stream as huma's sse package does: an array of the messages
// it may carry. The ids are positions, strings, where huma's have numbers.
func eventStreamSchema(a huma.API) *huma.Schema {
	reg := a.OpenAPI().Components.Schemas
	message := func(title, event string, data any) *huma.Schema {
		s := &huma.Schema{
			Title: title, Type: huma.TypeObject, Required: []string{"id", "data"},
			Properties: map[string]*huma.Schema{
				"id":   {Type: huma.TypeString, Description: "The position; resume after it with Last-Event-ID."},
				"data": reg.Schema(reflect.TypeOf(data), true, title),
			},
		}
		if event != "" {
			s.Required = append(s.Required, "event")
			s.Properties["event"] = &huma.Schema{Type: huma.TypeString, Enum: []any{event}}
		}
		return s
	}
	return &huma.Schema{
		Title:       "Server-Sent Events",
		Description: "Each item is one possible event, written as UTF-8 text in the Server-Sent Events format.",
		Type:        huma.TypeArray,
		Items: &huma.Schema{OneOf: []*huma.Schema{
			message("Event change", "", HistoryEntry{}),
			message("Event reset", "reset", ResetEvent{}),
		}},
	}
}

func (h *Handler) streamChanges(ctx context.Context, in *ChangesInput) (*huma.StreamResponse, error) {
	after, loc := in.LastEventID, "header.Last-Event-ID"
	if after == "" {
		after, loc = in.After, "query.after"
	}
	var from ports.Position
	if after != "" {
		var err error
		if from, err = ports.ParsePosition(after); err != nil {
			return nil, api.BadRequest(loc, "not a position; pass the id of an event as it was received")
		}
	}
	sub, err := h.feed.Changes.Subscribe(ctx, from,
		query.Filter{PostID: in.PostID, AuthorName: strings.TrimSpace(in.AuthorName)})
	if err != nil {
		return nil, api.Problem(ctx, h.log, "stream-changes", err)
	}
	return &huma.StreamResponse{Body: func(hctx huma.Context) {
		defer sub.Close()
		_, w := humago.Unwrap(hctx)
		s := &eventWriter{w: w, rc: http.NewResponseController(w), events: h.feed.events}
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Accel-Buffering", "no") // nginx: pass each event on at once
		w.WriteHeader(http.StatusOK)
		h.follow(hctx.Context(), sub, s)
	}}, nil
}

// follow writes the subscription's items until the client goes, a write fails or the
// subscription ends.
func (h *Handler) follow(ctx context.Context, sub *query.Subscription, s *eventWriter) {
	beat := h.feed.Heartbeat
	if beat <= 0 {
		beat = 15 * time.Second
	}
	ticker := time.NewTicker(beat)
	defer ticker.Stop()
	if !s.comment("connected") {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-sub.Done():
			if at, reset := sub.Ended(); reset {
				s.reset(at, "the client fell too far behind; it is disconnected")
				s.flush()
			}
			return
		case <-ticker.C:
			if !s.comment("heartbeat") {
				return
			}
		case it := <-sub.Items():
			// Whatever else is waiting goes out in the same write, up to a bound.
			s.item(it)
			for more := true; more && s.pending < 64<<10; {
				select {
				case it := <-sub.Items():
					s.item(it)
				default:
					more = false
				}
			}
			if !s.flush() {
				return
			}
		}
	}
}

// eventWriter writes Server-Sent Events into the response's buffer, then flushes them at once.
type eventWriter struct {
	w      http.ResponseWriter
	rc     *http.ResponseController
	events *eventCache
	// pending counts the bytes written since the last flush; err is the first write's error.
	pending int
	err     error
}

func (s *eventWriter) item(it query.Item) {
	if it.Reset {
		s.reset(it.Entry.Position, "the position is no longer retained")
		return
	}
	s.write(s.events.get(it.Entry))
}

func (s *eventWriter) reset(at ports.Position, reason string) {
	s.write(encodeEvent(at, "reset", ResetEvent{Position: at.String(), Reason: reason}))
}

func (s *eventWriter) comment(text string) bool {
	s.write([]byte(": " + text + "\n\n"))
	return s.flush()
}

func (s *eventWriter) write(b []byte) {
	if s.err != nil {
		return
	}
	if s.pending == 0 {
		_ = s.rc.SetWriteDeadline(time.Now().Add(writeWait))
	}
	s.pending += len(b)
	_, s.err = s.w.Write(b)
}

// flush sends what was written to the client; false once a write failed.
func (s *eventWriter) flush() bool {
	s.pending = 0
	if s.err != nil {
		return false
	}
	_ = s.rc.SetWriteDeadline(time.Now().Add(writeWait))
	return s.rc.Flush() == nil
}

// encodeEvent writes one event as it goes on the wire.
func encodeEvent(id ports.Position, name string, data any) []byte {
	var b bytes.Buffer
	b.WriteString("id: " + id.String() + "\n")
	if name != "" {
		b.WriteString("event: " + name + "\n")
	}
	b.WriteString("data: ")
	_ = json.NewEncoder(&b).Encode(data) // ends the line; the events' types always encode
	b.WriteString("\n")
	return b.Bytes()
}

// eventCache keeps the encoded form of the last changes given out: the clients of a query
// server share each change's entry, so it is encoded once, not once per client. An entry stays
// alive while the cache holds it, so its address cannot stand for another one meanwhile.
type eventCache struct {
	mu      sync.Mutex
	encoded map[*ports.FeedEntry][]byte
	order   []*ports.FeedEntry // a ring: the oldest is forgotten first
	next    int
}

func newEventCache(n int) *eventCache {
	return &eventCache{encoded: make(map[*ports.FeedEntry][]byte, n), order: make([]*ports.FeedEntry, n)}
}

func (c *eventCache) get(e *ports.FeedEntry) []byte {
	if c == nil {
		return encodeChange(e)
	}
	c.mu.Lock()
	b, ok := c.encoded[e]
	c.mu.Unlock()
	if ok {
		return b
	}
	b = encodeChange(e)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.encoded[e]; !ok {
		if old := c.order[c.next]; old != nil {
			delete(c.encoded, old)
		}
		c.order[c.next], c.encoded[e] = e, b
		c.next = (c.next + 1) % len(c.order)
	}
	return b
}

func encodeChange(e *ports.FeedEntry) []byte {
	c := e.Change
	return encodeEvent(e.Position, "", HistoryEntry{
		Version: c.Event.Version, EventType: string(c.Event.Type), EventID: c.Event.ID,
		OccurredAt: c.Event.OccurredAt, Post: api.FromState(c.State),
	})
}
