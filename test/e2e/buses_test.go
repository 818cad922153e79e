package e2e_test

import (
	"testing"
)

// realBuses are the real buses, each on a private server of the test's own, as the env that
// selects it.
var realBuses = []struct {
	name string
	bus  func(t *testing.T) map[string]string
}{
	{"redis", func(t *testing.T) map[string]string {
		return map[string]string{"POSTS_BUS": "redis", "POSTS_REDIS_URL": startPrivateRedis(t).URL()}
	}},
	{"nats", func(t *testing.T) map[string]string {
		return map[string]string{"POSTS_BUS": "nats", "POSTS_NATS_URL": startPrivateNATS(t).URL()}
	}},
}

// TestWalkthroughSeparateProcesses runs the walkthrough with the command server and the query
// server in separate processes, over each real bus, with the MySQL event store.
func TestWalkthroughSeparateProcesses(t *testing.T) {
	t.Parallel()
	for _, tt := range realBuses {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := tt.bus(t)
			query := start(t, env, "serve", "query")
			env["POSTS_EVENT_STORE"], env["POSTS_MYSQL_DSN"] = "mysql", mysqlDatabase(t)
			// The Location of a create leads to the query server, which only the setting names.
			env["POSTS_QUERY_URL"] = query.QueryURL
			command := start(t, env, "serve", "command")
			Walkthrough(t, command.CommandURL, query.QueryURL)
		})
	}
}
