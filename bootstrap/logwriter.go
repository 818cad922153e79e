package bootstrap

import (
	"io"
	"sync"
)

// maxPendingLog is how many bytes of log lines may wait for the writer before Write waits too.
const maxPendingLog = 1 << 20

// lineWriter writes log lines from one goroutine, each write carrying every line handed over
// since the previous one: under load the lines of many concurrent commands go out in one
// system call instead of one each (measured: two info lines per command were about a sixth of
// the command server's CPU in memory mode, most of it the write per line). Nothing waits for a
// timer: a line goes out as soon as the write before it is done, so what a crash can lose is
// only what was handed over during the last write. Lines keep their order; Close writes what
// is left.
type lineWriter struct {
	out io.Writer

	mu      sync.Mutex
	drained *sync.Cond // signalled after every write
	pending []byte     // handed over, not yet written
	spare   []byte     // the buffer written last, reused
	closed  bool
	wake    chan struct{} // holds one signal: there is something pending
	done    chan struct{} // closed when the goroutine has ended
}

func newLineWriter(out io.Writer) *lineWriter {
	w := &lineWriter{out: out, wake: make(chan struct{}, 1), done: make(chan struct{})}
	w.drained = sync.NewCond(&w.mu)
	go w.run()
	return w
}

// Write hands p over to be written and returns; it waits only while more than maxPendingLog
// bytes are waiting (the output is slower than the lines come). After Close it writes p itself,
// after everything handed over before.
func (w *lineWriter) Write(p []byte) (int, error) {
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

func (w *lineWriter) run() {
	defer close(w.done)
	for range w.wake {
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
func (w *lineWriter) flush() error {
	if len(w.pending) == 0 {
		return nil
	}
	_, err := w.out.Write(w.pending)
	w.pending = w.pending[:0]
	return err
}

// Close writes every line handed over and makes later writes direct.
func (w *lineWriter) Close() error {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.wake)
		w.drained.Broadcast()
	}
	w.mu.Unlock()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flush()
}
