package linewriter

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// recorder is an output that keeps every write apart; gate, when set, holds the first write
// until it is closed.
type recorder struct {
	mu      sync.Mutex
	writes  []string
	gate    chan struct{}
	holding chan struct{} // closed when the first write is being held
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	first := len(r.writes) == 0
	r.writes = append(r.writes, string(p))
	r.mu.Unlock()
	if first && r.gate != nil {
		close(r.holding)
		<-r.gate
	}
	return len(p), nil
}

func (r *recorder) all() (string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.writes, ""), len(r.writes)
}

func TestLineWriterKeepsEveryLineWholeAndInOrder(t *testing.T) {
	t.Parallel()
	out := &recorder{}
	w := New(out, Linger)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				if _, err := fmt.Fprintf(w, "g%d line %d\n", g, i); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write([]byte("after close\n"))

	text, _ := out.all()
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) != 8*500+1 || lines[len(lines)-1] != "after close" {
		t.Fatalf("%d lines, last %q; want %d, the last written after Close", len(lines), lines[len(lines)-1], 8*500+1)
	}
	next := make([]int, 8)
	for _, l := range lines[:len(lines)-1] {
		var g, i int
		if _, err := fmt.Sscanf(l, "g%d line %d", &g, &i); err != nil || i != next[g] {
			t.Fatalf("line %q: want g%d line %d (%v)", l, g, next[g], err)
		}
		next[g]++
	}
}

func TestLineWriterWritesWhatGathersDuringAWriteInOneWrite(t *testing.T) {
	t.Parallel()
	out := &recorder{gate: make(chan struct{}), holding: make(chan struct{})}
	w := New(out, Linger)

	_, _ = w.Write([]byte("first\n"))
	<-out.holding // the first line's write is under way and held
	for i := range 100 {
		_, _ = fmt.Fprintf(w, "line %d\n", i)
	}
	close(out.gate)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	text, writes := out.all()
	var want bytes.Buffer
	want.WriteString("first\n")
	for i := range 100 {
		fmt.Fprintf(&want, "line %d\n", i)
	}
	if text != want.String() {
		t.Errorf("written %q, want %q", text, want.String())
	}
	if writes != 2 {
		t.Errorf("%d writes, want 2: the first line, then the 100 handed over while it was written", writes)
	}
}

func TestLineWriterGathersTheLinesOfItsLingerInOneWrite(t *testing.T) {
	t.Parallel()
	out := &recorder{gate: make(chan struct{}), holding: make(chan struct{})}
	lingering, over := make(chan struct{}), make(chan struct{})
	w := start(out, func(<-chan struct{}) {
		select {
		case lingering <- struct{}{}: // the first wait: the test goes on while it lasts
			<-over
		case <-over:
		}
	})

	var want bytes.Buffer
	line := func(i int) {
		_, _ = fmt.Fprintf(w, "line %d\n", i)
		fmt.Fprintf(&want, "line %d\n", i)
	}
	line(0)
	select {
	case <-lingering:
	case <-out.holding:
		t.Fatal("the first line was written without waiting for others")
	}
	for i := 1; i < 100; i++ {
		line(i)
	}
	close(over)
	close(out.gate)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	text, writes := out.all()
	if text != want.String() {
		t.Errorf("written %q, want %q", text, want.String())
	}
	if writes != 1 {
		t.Errorf("%d writes, want 1: the lines handed over while the first one lingered go with it", writes)
	}
}
