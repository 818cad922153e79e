package e2e_test

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestBrokerStartupErrors starts hexapost against brokers that cannot work — nothing listening,
// or a server that is not the broker (MariaDB's port) — and wants a quick non-zero exit whose
// last line names the variable.
func TestBrokerStartupErrors(t *testing.T) {
	t.Parallel()
	backend(t, "POSTS_MYSQL_DSN") // MariaDB on 127.0.0.1:3306 plays the wrong server
	tests := []struct {
		name    string
		giveEnv []string
		want    string
	}{
		{"redis: nothing listening", []string{"POSTS_BUS=redis", "POSTS_REDIS_URL=redis://127.0.0.1:1/0"}, "POSTS_REDIS_URL"},
		{"redis: not redis", []string{"POSTS_BUS=redis", "POSTS_REDIS_URL=redis://127.0.0.1:3306/0"}, "POSTS_REDIS_URL"},
		{"nats: nothing listening", []string{"POSTS_BUS=nats", "POSTS_NATS_URL=nats://127.0.0.1:1"}, "POSTS_NATS_URL"},
		{"nats: not nats", []string{"POSTS_BUS=nats", "POSTS_NATS_URL=nats://127.0.0.1:3306"}, "POSTS_NATS_URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(binary, "serve", "query")
			cmd.Env = append(cmd.Environ(), append(tt.giveEnv, "POSTS_QUERY_ADDR=127.0.0.1:0")...)
			begin := time.Now()
			out, err := cmd.CombinedOutput()
			took := time.Since(begin)
			text := strings.TrimSpace(string(out))
			last := text[strings.LastIndex(text, "\n")+1:]
			if err == nil || !strings.Contains(last, tt.want) {
				t.Fatalf("exit %v, last line %q: want a failure naming %s", err, last, tt.want)
			}
			if took > 10*time.Second {
				t.Fatalf("took %s to fail", took)
			}
			t.Logf("%q after %s", last, took.Round(time.Millisecond))
		})
	}
}
