package e2e_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"
)

// refusal is a request a server refuses before or while reading its body.
type refusal struct {
	name       string
	head       string // request line and headers, without the blank line that ends them
	body       []byte
	wantStatus int
}

// TestKeepAliveSurvivesRefusedBodies holds one keep-alive connection per server through a
// thousand alternations of a request whose body is refused and a valid request: every valid
// request must get its own correct answer, or find the connection closed (the client then
// reconnects). No request may ever be answered with what the server made of the leftovers of a
// refused body.
func TestKeepAliveSurvivesRefusedBodies(t *testing.T) {
	t.Parallel()
	p := start(t, nil)
	id := do(t, "POST", p.CommandURL+"/posts", map[string]string{
		"title": "kept", "content": "alive", "author_name": "conn",
	}).Must(t, http.StatusCreated).Str("id")
	do(t, "GET", p.QueryURL+"/posts/"+id+"?min_version=1", nil).Must(t, http.StatusOK)

	over := bytes.Repeat([]byte("x"), 1<<20+1)
	big := append(append([]byte(`{"title":"t","author_name":"a","content":"`), over...), '"', '}')
	chunked := func(b []byte) []byte {
		var out bytes.Buffer
		for len(b) > 0 {
			n := min(len(b), 64<<10)
			fmt.Fprintf(&out, "%x\r\n%s\r\n", n, b[:n])
			b = b[n:]
		}
		out.WriteString("0\r\n\r\n")
		return out.Bytes()
	}
	withLength := func(method, path, ctype string, body []byte, extra ...string) string {
		h := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: test\r\nContent-Type: %s\r\nContent-Length: %d", method, path, ctype,
			len(body))
		for _, e := range extra {
			h += "\r\n" + e
		}
		return h
	}
	patch := "/posts/" + id
	refusals := []refusal{
		{"body over 1 MiB", withLength("POST", "/posts", "application/json", big), big, 413},
		{"body over 1 MiB, chunked", "POST /posts HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n" +
			"Transfer-Encoding: chunked", chunked(big), 413},
		{"body over 1 MiB after Expect: 100-continue",
			withLength("POST", "/posts", "application/json", big, "Expect: 100-continue"), big, 413},
		{"malformed JSON, then padding", withLength("POST", "/posts", "application/json",
			[]byte(`{"title": ,`+strings.Repeat(" ", 300_000)+`}`)), []byte(`{"title": ,` + strings.Repeat(" ", 300_000) + `}`), 400},
		{"unknown field", withLength("POST", "/posts", "application/json", []byte(`{"tags":[],"title":"t"}`)),
			[]byte(`{"tags":[],"title":"t"}`), 422},
		{"wrong content type", withLength("POST", "/posts", "text/plain", []byte("hello")), []byte("hello"), 415},
		{"If-Match garbage with a body", withLength("PATCH", patch, "application/json", []byte(`{"title":"x"}`),
			"If-Match: banana"), []byte(`{"title":"x"}`), 422},
		{"unknown route with a body", withLength("POST", "/nope", "application/json", big[:4096]), big[:4096], 404},
		{"wrong method with a body", withLength("PUT", patch, "application/json", big[:4096]), big[:4096], 405},
	}
	cmdAddr, qryAddr := hostOf(t, p.CommandURL), hostOf(t, p.QueryURL)
	const alternations = 1000
	kc := &keptConn{t: t, addr: cmdAddr}
	defer kc.close()
	deadline := time.Now().Add(4 * time.Minute)
	for i := range alternations {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d alternations within the time bound", i, alternations)
		}
		r := refusals[i%len(refusals)]
		status, ok := kc.roundTrip(r.head, r.body)
		if ok && status != r.wantStatus {
			t.Fatalf("alternation %d, %s: status %d, want %d", i, r.name, status, r.wantStatus)
		}
		// The valid request that follows on the same connection, if the server kept it.
		if status, ok := kc.roundTrip("GET /healthz HTTP/1.1\r\nHost: test", nil); ok && status != http.StatusOK {
			t.Fatalf("alternation %d: after %s the next request got %d (a leftover of the refused body "+
				"answered as a request?)", i, r.name, status)
		}
	}
	if kc.reconnects == alternations*2 {
		t.Fatal("every request needed a new connection: the server never kept one")
	}
	t.Logf("%d alternations, %d reconnects", alternations, kc.reconnects)
	// The query server refuses bodies the same way.
	qc := &keptConn{t: t, addr: qryAddr}
	defer qc.close()
	for i := range 50 {
		status, ok := qc.roundTrip(withLength("POST", "/posts", "application/json", big), big)
		if ok && status != http.StatusMethodNotAllowed && status != http.StatusRequestEntityTooLarge {
			t.Fatalf("query server, round %d: status %d", i, status)
		}
		if status, ok := qc.roundTrip("GET /posts/"+id+" HTTP/1.1\r\nHost: test", nil); ok && status != http.StatusOK {
			t.Fatalf("query server, round %d: the next request got %d", i, status)
		}
	}
}

// keptConn is a raw keep-alive HTTP/1.1 connection that reconnects when the server closed it.
type keptConn struct {
	t          *testing.T
	addr       string
	conn       net.Conn
	rd         *bufio.Reader
	reconnects int
}

// roundTrip sends one request, writing the body while it reads the answer as the server may
// answer before it read the body. ok is false when the server closed the connection instead of
// answering; the next call then reconnects. An answer that is not a well-formed problem or
// success fails the test.
func (c *keptConn) roundTrip(head string, body []byte) (status int, ok bool) {
	c.t.Helper()
	if c.conn == nil {
		conn, err := net.DialTimeout("tcp", c.addr, 5*time.Second)
		if err != nil {
			c.t.Fatal(err)
		}
		c.conn, c.rd = conn, bufio.NewReader(conn)
		c.reconnects++
	}
	_ = c.conn.SetDeadline(time.Now().Add(30 * time.Second))
	written := make(chan struct{})
	go func() {
		defer close(written)
		if _, err := io.WriteString(c.conn, head+"\r\n\r\n"); err != nil {
			return
		}
		_, _ = c.conn.Write(body)
	}()
	res, err := http.ReadResponse(c.rd, nil)
	for err == nil && res.StatusCode == http.StatusContinue {
		res, err = http.ReadResponse(c.rd, nil) // the interim answer to Expect: 100-continue
	}
	if err != nil {
		<-written
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
			c.close()
			return 0, false
		}
		c.t.Fatalf("reading the answer to %q: %v", firstLine(head), err)
	}
	raw, err := io.ReadAll(res.Body)
	_ = res.Body.Close()
	<-written
	if err != nil {
		c.close()
		return 0, false
	}
	ct := res.Header.Get("Content-Type")
	if res.StatusCode >= 400 && !strings.HasPrefix(ct, "application/problem+json") {
		c.t.Fatalf("%q answered %d %s %q: not a problem of this request", firstLine(head), res.StatusCode, ct, raw)
	}
	if res.Close {
		c.close()
	}
	return res.StatusCode, true
}

func (c *keptConn) close() {
	if c.conn != nil {
		_ = c.conn.Close()
		c.conn = nil
	}
}

func firstLine(s string) string { line, _, _ := strings.Cut(s, "\r\n"); return line }

func hostOf(t *testing.T, base string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}
