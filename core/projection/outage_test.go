package projection_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"hexapost/core/post"
	"hexapost/core/projection"
	"hexapost/ports"
)

// flakyViews fails PutHistory with the given error for its first `failures` calls.
type flakyViews struct {
	currentViews
	failures int64
	err      error
	calls    atomic.Int64
}

func (v *flakyViews) PutHistory(ctx context.Context, h ports.HistoryEntry) error {
	if v.calls.Add(1) <= v.failures {
		return v.err
	}
	return v.currentViews.PutHistory(ctx, h)
}

func createdChange(id string) ports.Change {
	at := time.Now().UTC()
	title := "t"
	return ports.Change{
		Event: post.Event{ID: id + "-1", PostID: id, Version: 1, Type: post.EventCreated, OccurredAt: at, Title: &title},
		State: post.State{ID: id, Version: 1, Title: title, CreatedAt: at, UpdatedAt: at},
	}
}

func TestApplyWaitingRidesOutAnOutage(t *testing.T) {
	t.Parallel()
	unavailable := fmt.Errorf("mongo: put history: %w", ports.ErrUnavailable)
	tests := []struct {
		name      string
		giveErr   error
		wantErr   error
		wantCalls int64
	}{
		{"outage: waits, then applies", unavailable, nil, 3},
		{"other error: returned at once", errors.New("bad document"), errors.New("bad document"), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := &flakyViews{currentViews: currentViews{current: map[string]post.State{}, history: map[string]int{}},
				failures: 2, err: tt.giveErr}
			p := projection.NewProjector(v, slog.New(slog.NewTextHandler(io.Discard, nil)))
			err := p.ApplyWaiting(context.Background(), createdChange("p1"), nil)
			if (err == nil) != (tt.wantErr == nil) || v.calls.Load() != tt.wantCalls {
				t.Fatalf("error %v after %d calls, want %v after %d", err, v.calls.Load(), tt.wantErr, tt.wantCalls)
			}
		})
	}
}

func TestApplyWaitingStopsWithItsContext(t *testing.T) {
	t.Parallel()
	v := &flakyViews{currentViews: currentViews{current: map[string]post.State{}, history: map[string]int{}},
		failures: 1 << 30, err: ports.ErrUnavailable}
	p := projection.NewProjector(v, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := p.ApplyWaiting(ctx, createdChange("p1"), nil); !errors.Is(err, ports.ErrUnavailable) {
		t.Fatalf("error %v, want the outage", err)
	}
}

// A replay (at startup, or a rebuild's) waits through a read-model outage instead of ending half
// done, and a quiet projector still says that it waits.
func TestReplayRidesOutAnOutage(t *testing.T) {
	t.Parallel()
	var events allEvents
	for i := range 3 {
		events = append(events, ports.Recorded{Position: int64(i + 1), Event: createdChange(fmt.Sprint("p", i)).Event})
	}
	v := &flakyViews{currentViews: currentViews{current: map[string]post.State{}, history: map[string]int{}},
		failures: 2, err: fmt.Errorf("mongo: put history: %w", ports.ErrUnavailable)}
	var log bytes.Buffer
	p := projection.NewProjector(v, slog.New(slog.NewTextHandler(&log, nil))).Quiet()

	n, err := projection.Replay(t.Context(), events, p)

	if err != nil || n != len(events) || len(v.current) != len(events) {
		t.Fatalf("replayed %d events into %d views, error %v; want %d, no error", n, len(v.current), err, len(events))
	}
	if got := strings.Count(log.String(), "read model unavailable"); got != 2 {
		t.Errorf("%d outage warnings, want 2; log:\n%s", got, log.String())
	}
	if strings.Contains(log.String(), "event projected") {
		t.Errorf("a quiet projector logged a projected change:\n%s", log.String())
	}
}
