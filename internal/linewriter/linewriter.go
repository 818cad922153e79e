// Package linewriter batches log lines: under load, the lines of many concurrent requests go
// out in one write instead of one each.
package linewriter

import (
	"io"
	"sync"
	"time"
)

// maxPendingLog is how many bytes of log lines may wait for the writer before Write waits too.
const maxPendingLog = 1 << 20

// Linger is how long a Writer made for a process's log waits, once a line is handed over, for
// more to join it.
const Linger = time.Millisecond

// Writer writes log lines from one goroutine, each write carrying every line handed over
// since the previous one: under load the lines of many concurrent commands go out in one
// system call instead of one each. A line handed over to an idle writer waits linger for others
// before it goes out, so that a loaded server's lines do not go out a few at a time, each write
// waking the reader of the log. So what a crash can lose is what was handed over in the last
// linger and during the last write.
// Lines keep their order; Close writes what is left without waiting.
type Writer struct {
	out io.Writer
	// gather waits for more lines to be handed over, or until closing is closed.
	gather func(closing <-chan struct{})

	mu      sync.Mutex
	drained *sync.Cond // signalled after every write
	pending []byte     // handed over, not yet written
	spare   []byte     // the buffer written last, reused
	closed  bool
	wake    chan struct{} // holds one signal: there is something pending
	closing chan struct{} // closed by Close: the goroutine stops lingering
	done    chan struct{} // closed when the goroutine has ended
}

// New returns a Writer whose lines wait linger for others to go out with them.
func New(out io.Writer, linger time.Duration) *Writer {
	t := time.NewTimer(linger) // the writer's goroutine alone uses it
	return start(out, func(closing <-chan struct{}) {
		t.Reset(linger)
		select {
		case <-t.C:
		case <-closing:
		}
	})
}

// start starts a Writer whose goroutine calls gather before each write.
func start(out io.Writer, gather func(closing <-chan struct{})) *Writer {
	w := &Writer{out: out, gather: gather, wake: make(chan struct{}, 1), closing: make(chan struct{}),
		done: make(chan struct{})}
	w.drained = sync.NewCond(&w.mu)
	go w.run()
	return w
}

// Write hands p over to be written and returns; it waits only while more than maxPendingLog
// bytes are waiting (the output is slower than the lines come). After Close it writes p itself,
// after everything handed over before.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	for !w.closed && len(w.pending) > maxPendingLog {
		w.drained.Wait()
	}
	if w.closed {
		w.mu.Unlock()
		<-w.done
		w.mu.Lock()
		defer w.mu.Unlock()
		if err := w.flush(); err != nil {
			return 0, err
		}
		return w.out.Write(p)
	}
	w.pending = append(w.pending, p...)
	select {
	case w.wake <- struct{}{}:
	default: // a signal is waiting already; its write takes this line too
	}
	w.mu.Unlock()
	return len(p), nil
}

func (w *Writer) run() {
	defer close(w.done)
	for range w.wake {
		w.gather(w.closing)
		w.mu.Lock()
		b := w.pending
		w.pending, w.spare = w.spare[:0], nil
		w.mu.Unlock()
		if len(b) > 0 {
			_, _ = w.out.Write(b) // a log line that cannot be written has no one to tell
		}
		w.mu.Lock()
		w.spare = b[:0]
		w.drained.Broadcast()
		w.mu.Unlock()
	}
}

// flush writes what is pending; w.mu is held and the goroutine has ended.
func (w *Writer) flush() error {
	if len(w.pending) == 0 {
		return nil
	}
	_, err := w.out.Write(w.pending)
	w.pending = w.pending[:0]
	return err
}

// Close writes every line handed over and makes later writes direct.
func (w *Writer) Close() error {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.closing)
		close(w.wake)
		w.drained.Broadcast()
	}
	w.mu.Unlock()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flush()
}
