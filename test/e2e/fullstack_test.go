package e2e_test

import (
	"testing"
)

// TestWalkthroughFullStack runs the walkthrough on the whole real stack in separate processes:
// one command server on MySQL, two query servers sharing the consumer group and the MongoDB
// read model, over Redis and over NATS. Reads alternate between the two query servers.
func TestWalkthroughFullStack(t *testing.T) {
	t.Parallel()
	for _, tt := range realBuses {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := tt.bus(t)
			env["POSTS_READ_MODEL"], env["POSTS_MONGO_URI"] = "mongo", mongoDatabase(t)
			q1 := start(t, env, "serve", "query")
			q2 := start(t, env, "serve", "query")
			env["POSTS_EVENT_STORE"], env["POSTS_MYSQL_DSN"] = "mysql", mysqlDatabase(t)
			command := start(t, env, "serve", "command")
			Walkthrough(t, command.CommandURL, q1.QueryURL)
			Walkthrough(t, command.CommandURL, q2.QueryURL)
			projected := func(p *process) int {
				n := 0
				for _, l := range p.Logs() {
					if l["msg"] == "event projected" {
						n++
					}
				}
				return n
			}
			n1, n2 := projected(q1), projected(q2)
			t.Logf("events projected: query server 1 %d, query server 2 %d", n1, n2)
			if n1 == 0 || n2 == 0 {
				t.Errorf("the two query servers did not share the work: %d and %d", n1, n2)
			}
		})
	}
}
