package redis_test

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"

	"hexapost/adapters/redis"
)

// fakeRedis serves the commands Open sends, in RESP2, answering CONFIG GET from config (or
// refusing CONFIG when config is nil, as a managed Redis may) and everything else with OK.
func fakeRedis(config map[string]string) func(net.Conn) {
	return func(c net.Conn) {
		r, w := bufio.NewReader(c), bufio.NewWriter(c)
		for {
			args, err := readCommand(r)
			if err != nil {
				return
			}
			reply := "+OK\r\n"
			switch cmd := strings.ToUpper(args[0]); {
			case cmd == "HELLO": // no RESP3: go-redis goes on in RESP2
				reply = "-ERR unknown command 'HELLO'\r\n"
			case cmd == "XINFO":
				reply = "-ERR no such key\r\n"
			case cmd == "CONFIG" && config == nil:
				reply = "-NOPERM this user has no permissions to run the 'config|get' command\r\n"
			case cmd == "CONFIG":
				v := config[args[2]]
				reply = fmt.Sprintf("*2\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", len(args[2]), args[2], len(v), v)
			}
			if _, err := w.WriteString(reply); err != nil || w.Flush() != nil {
				return
			}
		}
	}
}

// readCommand reads one command, an array of bulk strings.
func readCommand(r *bufio.Reader) ([]string, error) {
	line, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "*") {
		return nil, fmt.Errorf("not a command: %q (%w)", line, err)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(line[1:]))
	args := make([]string, 0, n)
	for range n {
		head, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		size, _ := strconv.Atoi(strings.TrimSpace(head[1:]))
		buf := make([]byte, size+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		args = append(args, string(buf[:size]))
	}
	return args, nil
}

// TestWarnsOfARedisWithoutPersistence opens the bus on Redis servers that keep their data on
// disk in each way, in none, and one that refuses CONFIG: only the one without persistence is
// warned of, in one line saying what to set, and none stops Open.
func TestWarnsOfARedisWithoutPersistence(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		giveConfig map[string]string
		wantWarn   bool
	}{
		{name: "neither AOF nor snapshots", giveConfig: map[string]string{"appendonly": "no", "save": ""}, wantWarn: true},
		{name: "AOF", giveConfig: map[string]string{"appendonly": "yes", "save": ""}},
		{name: "snapshots", giveConfig: map[string]string{"appendonly": "no", "save": "3600 1 300 100"}},
		{name: "CONFIG refused", giveConfig: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr := listen(t, fakeRedis(tt.giveConfig))
			var logs syncBuffer

			open(t, redis.Config{URL: "redis://" + addr + "/0", Log: slog.New(slog.NewJSONHandler(&logs, nil))})

			var warnings []string
			for _, l := range logs.lines(t) {
				if l["level"] == "WARN" && strings.Contains(fmt.Sprint(l["msg"]), "memory only") {
					warnings = append(warnings, fmt.Sprint(l["msg"]))
				}
			}
			switch {
			case !tt.wantWarn && len(warnings) > 0:
				t.Errorf("warned %q, want no warning", warnings)
			case tt.wantWarn && len(warnings) != 1:
				t.Errorf("%d warnings about persistence, want 1", len(warnings))
			case tt.wantWarn && !strings.Contains(warnings[0], "appendonly yes"):
				t.Errorf("warning %q does not say what to set", warnings[0])
			}
		})
	}
}

// TestWarnsOfABacklogCloseToTheBound opens the bus again after changes were published that no
// query server took: a backlog close to MaxLen is worth a warning, with the backlog and the
// bound.
func TestWarnsOfABacklogCloseToTheBound(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.MaxLen = 100
	if err := open(t, cfg).Publish(t.Context(), changes(90)); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	cfg.Log = slog.New(slog.NewJSONHandler(&logs, nil))

	open(t, cfg)

	// Only the backlog's: the Redis of the tests may or may not keep its data on disk.
	var lines []map[string]any
	for _, l := range logs.lines(t) {
		if strings.Contains(fmt.Sprint(l["msg"]), "backlog") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 || lines[0]["level"] != "WARN" || lines[0]["backlog"] != 90.0 || lines[0]["bound"] != 100.0 ||
		lines[0]["group"] != cfg.Group || !strings.Contains(fmt.Sprint(lines[0]["msg"]), "raise the stream bound") {
		t.Errorf("logged %v, want one warning with the backlog 90, the bound 100, the group and what to do", lines)
	}
}
