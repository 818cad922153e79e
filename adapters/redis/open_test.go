package redis_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"hexapost/adapters/redis"
	"hexapost/ports"
)

// listen starts a TCP server on a free loopback port that treats each connection with serve,
// and returns its address. Everything is closed when the test ends.
func listen(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go serve(c)
		}
	}()
	return ln.Addr().String()
}

// TestOpenFailsFastOnWhatIsNotRedis points the bus at a port that accepts connections and
// never answers, at one that speaks another protocol (a MySQL server greets first), and at one
// where nothing listens: each must fail within seconds, naming the URL, instead of hanging.
func TestOpenFailsFastOnWhatIsNotRedis(t *testing.T) {
	t.Parallel()
	silent := listen(t, func(net.Conn) {})
	mysqlish := listen(t, func(c net.Conn) {
		// The start of a MariaDB handshake: packet length, sequence 0, protocol 10, version.
		_, _ = c.Write(append([]byte{0x5b, 0, 0, 0, 0x0a}, "5.5.5-10.11.6-MariaDB-0+deb12u1\x00"...))
	})
	tests := []struct {
		name    string
		giveURL string
	}{
		{name: "accepts and stays silent", giveURL: "redis://" + silent + "/0"},
		{name: "speaks another protocol", giveURL: "redis://" + mysqlish + "/0"},
		{name: "nothing listening", giveURL: "redis://127.0.0.1:1/0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			begin := time.Now()

			bus, err := redis.Open(context.Background(), redis.Config{URL: tt.giveURL})

			took := time.Since(begin)
			if err == nil {
				_ = bus.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tt.giveURL) || !errors.Is(err, ports.ErrUnavailable) {
				t.Errorf("error %q, want one naming %s and wrapping %v", err, tt.giveURL, ports.ErrUnavailable)
			}
			if took > 5*time.Second {
				t.Errorf("took %s to fail, want under 5s", took)
			}
			t.Logf("failed after %s: %v", took.Round(time.Millisecond), err)
		})
	}
}

func TestOpenRefusesABadConfig(t *testing.T) {
	t.Parallel()
	// Nothing listens at the URL: a config that passed validation would fail on the PING.
	const url = "redis://127.0.0.1:1/0"
	tests := []struct {
		name      string
		giveCfg   redis.Config
		wantInErr string
	}{
		{name: "no URL", giveCfg: redis.Config{}, wantInErr: "URL is empty"},
		{name: "not a redis URL", giveCfg: redis.Config{URL: "http://127.0.0.1:6379/0"}, wantInErr: "http://127.0.0.1:6379/0"},
		{name: "bad port", giveCfg: redis.Config{URL: "redis://127.0.0.1:port/0"}, wantInErr: "redis://127.0.0.1:port/0"},
		{name: "negative MaxLen", giveCfg: redis.Config{URL: url, MaxLen: -1}, wantInErr: "MaxLen"},
		{name: "negative MaxAttempts", giveCfg: redis.Config{URL: url, MaxAttempts: -1}, wantInErr: "MaxAttempts"},
		{name: "negative Backoff", giveCfg: redis.Config{URL: url, Backoff: -time.Second}, wantInErr: "Backoff"},
		{
			name:      "negative VisibilityTimeout",
			giveCfg:   redis.Config{URL: url, VisibilityTimeout: -time.Second},
			wantInErr: "VisibilityTimeout",
		},
		{name: "negative Batch", giveCfg: redis.Config{URL: url, Batch: -1}, wantInErr: "Batch"},
		{
			name:      "Backoff above MaxBackoff",
			giveCfg:   redis.Config{URL: url, Backoff: time.Second, MaxBackoff: time.Millisecond},
			wantInErr: "exceeds MaxBackoff",
		},
		{
			name:      "dead letters in the stream",
			giveCfg:   redis.Config{URL: url, Stream: "s", DeadLetterStream: "s"},
			wantInErr: "DeadLetterStream",
		},
		{
			name:      "reserved consumer name",
			giveCfg:   redis.Config{URL: url, Consumer: "~awaiting-retry"},
			wantInErr: "reserved",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			_, err := redis.Open(context.Background(), tt.giveCfg)

			if err == nil || !strings.Contains(err.Error(), tt.wantInErr) || strings.Contains(err.Error(), "PING") {
				t.Errorf("error %v, want a config error containing %q", err, tt.wantInErr)
			}
		})
	}
}

func TestOpenNeverShowsThePassword(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		giveURL string
	}{
		{name: "refused connection", giveURL: "redis://user:hunter2@127.0.0.1:1/0"},
		{name: "password only", giveURL: "redis://hunter2@127.0.0.1:1/0"},
		{name: "unparsable URL", giveURL: "redis://user:hunter2@127.0.0.1:port/0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			_, err := redis.Open(context.Background(), redis.Config{URL: tt.giveURL})

			if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "xxxxx") {
				t.Errorf("error %v, want one that shows the URL with its password hidden", err)
			}
		})
	}
}
