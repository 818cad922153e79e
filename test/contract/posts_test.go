package contract_test

import (
	"testing"

	"hexapost/adapters/memory"
	"hexapost/adapters/mysql"
	"hexapost/adapters/mysql/mysqltest"
	"hexapost/adapters/postlock"
	"hexapost/adapters/statecache"
	"hexapost/core/command"
	"hexapost/ports"
	"hexapost/test/contract"
)

// postStores are the post stores the process can be wired with: the plain one, and the
// decorators in front of it, alone and as bootstrap puts them together.
var postStores = []struct {
	name string
	wrap func(ports.EventStore) ports.PostStore
}{
	{"plain", func(s ports.EventStore) ports.PostStore { return command.NewStreams(s) }},
	{"state cache", func(s ports.EventStore) ports.PostStore {
		return statecache.New(command.NewStreams(s), s, statecache.Config{Size: 2})
	}},
	{"post lock", func(s ports.EventStore) ports.PostStore { return postlock.New(command.NewStreams(s)) }},
	{"post lock and state cache", func(s ports.EventStore) ports.PostStore {
		return postlock.New(statecache.New(command.NewStreams(s), s, statecache.Config{}))
	}},
}

func TestMemoryPostStore(t *testing.T) {
	t.Parallel()
	for _, ps := range postStores {
		t.Run(ps.name, func(t *testing.T) {
			t.Parallel()
			contract.PostStore(t, func(*testing.T) contract.Posts {
				events := memory.NewEventStore(memory.EventStoreConfig{})
				return contract.Posts{Posts: ps.wrap(events), Events: events}
			})
		})
	}
}

// TestMySQLPostStore runs the post store suite over MySQL/MariaDB, each case on a fresh
// database of the server named by POSTS_MYSQL_DSN.
func TestMySQLPostStore(t *testing.T) {
	t.Parallel()
	mysqltest.BaseDSN(t) // skips (or, under CI=true, fails) here when there is no server
	for _, ps := range postStores {
		t.Run(ps.name, func(t *testing.T) {
			t.Parallel()
			contract.PostStore(t, func(t *testing.T) contract.Posts {
				events, err := mysql.Open(t.Context(), mysql.Config{DSN: mysqltest.NewDatabase(t)})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() {
					if err := events.Close(); err != nil {
						t.Error(err)
					}
				})
				return contract.Posts{Posts: ps.wrap(events), Events: events}
			})
		})
	}
}
