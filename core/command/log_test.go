package command_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"

	"hexapost/core/command"
	"hexapost/core/post"
)

// TestLogLinesNameTheCommand pins what an operator follows a change by at info: every line of a
// command names the command, its post, its idempotency key and its request, then what happened.
func TestLogLinesNameTheCommand(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	st := newStore()
	n := 0
	newID := func() string { n++; return fmt.Sprintf("id-%d", n) }
	svc := command.NewService(command.NewStreams(st), st, newID, now, slog.New(slog.NewJSONHandler(&out, nil)), command.Config{})

	if _, err := svc.Create(t.Context(), hello, command.Options{IdempotencyKey: "k1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Create(t.Context(), hello, command.Options{IdempotencyKey: "k1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Update(t.Context(), "id-1", post.Update{Title: ptr("Hello")}, command.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Update(t.Context(), "id-1", post.Update{Title: ptr("Hi")}, command.Options{RequestID: "abc-123"}); err != nil {
		t.Fatal(err)
	}

	want := []map[string]any{
		{"level": "INFO", "msg": "event appended", "op": "create", "post_id": "id-1", "idempotency_key": "k1",
			"version": 1.0, "event_id": "id-2", "event_type": "post.created"},
		{"level": "INFO", "msg": "command replayed", "op": "create", "post_id": "id-1", "idempotency_key": "k1",
			"version": 1.0},
		{"level": "INFO", "msg": "command changed nothing", "op": "update", "post_id": "id-1", "version": 1.0},
		{"level": "INFO", "msg": "event appended", "op": "update", "post_id": "id-1", "request_id": "abc-123",
			"version": 2.0, "event_id": "id-6", "event_type": "post.updated"},
	}
	var got []map[string]any
	var keys [][]string
	for line := range strings.Lines(out.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		delete(m, "time")
		got = append(got, m)
		keys = append(keys, jsonKeys(t, line))
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("log lines:\n got %v\nwant %v", got, want)
	}
	// The command's own attributes come first, as a logger made With them would write them.
	if len(keys) > 0 && !reflect.DeepEqual(keys[0][3:6], []string{"op", "post_id", "idempotency_key"}) {
		t.Errorf("attributes of the first line in the order %v, want op, post_id, idempotency_key after time, level, msg", keys[0])
	}
}

// jsonKeys returns the keys of a JSON object in the order they appear.
func jsonKeys(t *testing.T, line string) []string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(line))
	var keys []string
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}
