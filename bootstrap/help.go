package bootstrap

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// help is what `hexapost <subcommand> --help` prints.
type help struct {
	usage string   // the command line
	about string   // what the subcommand does
	env   []string // the variables it reads, in the order of the table
}

// subcommandHelp returns the help of each subcommand, by its words; bench prints its own, with
// its flags.
func subcommandHelp() map[string]help {
	all := make([]string, 0, len(variables))
	for _, v := range variables {
		all = append(all, v.name)
	}
	const checked = "Every other POSTS_* variable is checked as `hexapost serve` checks it."
	return map[string]help{
		"serve": {"hexapost [serve]", "Runs the command server, the query server, the outbox relay and the projector in one\n" +
			"process, until SIGTERM or SIGINT stops it gracefully.", all},
		"serve command": {"hexapost serve command", "Runs the command server and the outbox relay. The query side runs as\n" +
			"`hexapost serve query` in other processes, so the bus is one they share (redis or nats);\n" +
			"the query side's settings are checked but have no effect here.", all},
		"serve query": {"hexapost serve query", "Runs the query server and the projector, one consumer of POSTS_CONSUMER_GROUP on a\n" +
			"shared bus (redis or nats); commands go to `hexapost serve command`. The command side's\n" +
			"settings are checked but have no effect here.", all},
		"openapi": {"hexapost openapi [--json]", "Prints the OpenAPI 3.1 document of both servers, as YAML or with --json as JSON,\n" +
			"naming the servers at their listen addresses. " + checked,
			[]string{"POSTS_COMMAND_ADDR", "POSTS_QUERY_ADDR"}},
		"rebuild": {"hexapost rebuild", "Rebuilds the MongoDB read model from the MySQL event store while the servers keep\n" +
			"running: fills the next generation of the read model, switches every query server to it\n" +
			"and catches up. " + checked,
			[]string{"POSTS_EVENT_STORE", "POSTS_MYSQL_DSN", "POSTS_READ_MODEL", "POSTS_MONGO_URI",
				"POSTS_MONGO_ATOMIC_REPLACE", "POSTS_LOG_LEVEL", "POSTS_LOG_FORMAT"}},
		"verify": {"hexapost verify [--repair]", "Compares the MongoDB read model with the MySQL event store (read-only) while the\n" +
			"servers keep running, after a grace for changes in flight: prints one line per post that\n" +
			"differs (read model version, store version, missing history versions) and exits 1 if any.\n" +
			"With --repair it re-projects those posts from the store and checks again. " + checked,
			[]string{"POSTS_EVENT_STORE", "POSTS_MYSQL_DSN", "POSTS_READ_MODEL", "POSTS_MONGO_URI",
				"POSTS_MONGO_ATOMIC_REPLACE", "POSTS_RECONCILE_GRACE", "POSTS_LOG_LEVEL", "POSTS_LOG_FORMAT"}},
		"version": {"hexapost version | hexapost --version", "Prints the build's version, VCS revision and Go version. Reads no environment.", nil},
	}
}

// helpRequest returns the subcommand whose help args ask for: `hexapost help <subcommand>` or
// `hexapost <subcommand> -h` (also -help, --help, help).
func helpRequest(args []string) (string, bool) {
	switch {
	case len(args) >= 2 && args[0] == "help":
		return strings.Join(args[1:], " "), true
	case len(args) >= 2 && slices.Contains([]string{"-h", "-help", "--help", "help"}, args[len(args)-1]):
		return strings.Join(args[:len(args)-1], " "), true
	}
	return "", false
}

// write prints the help, each variable with its default, its allowed values and what it does.
func (h help) write(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s\n\n%s\n", h.usage, h.about)
	if len(h.env) == 0 {
		return
	}
	fmt.Fprint(w, "\nEnvironment (NAME=default, then the allowed values where they are few):\n")
	for _, name := range h.env {
		i := variableIndex(name)
		if i < 0 {
			continue // a test checks that every name is in the table
		}
		v := variables[i]
		head := "  " + v.name + "=" + v.def
		if len(v.allowed) > 0 {
			head += "  (" + strings.Join(v.allowed, " | ") + ")"
		}
		fmt.Fprintf(w, "%s\n      %s\n", head, descriptions[v.name])
	}
}

// variableIndex returns the index of the named variable in the table, or -1.
func variableIndex(name string) int {
	return slices.IndexFunc(variables, func(v variable) bool { return v.name == name })
}
