package bootstrap

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

func TestEveryVariableIsDescribed(t *testing.T) {
	t.Parallel()
	for _, v := range variables {
		if strings.TrimSpace(descriptions[v.name]) == "" {
			t.Errorf("%s has no description in descriptions", v.name)
		}
	}
	for name := range descriptions {
		if variableIndex(name) < 0 {
			t.Errorf("descriptions has %s, which is no variable of the table", name)
		}
	}
}

// subcommands returns the subcommands the usage lists, each as its words; a word in brackets is
// one only in first place: "hexapost [serve]" gives serve, "hexapost openapi [--json]" openapi.
func subcommands(t *testing.T) [][]string {
	t.Helper()
	var out [][]string
	for line := range strings.SplitSeq(usage, "\n") {
		cmdline, ok := strings.CutPrefix(line, "  hexapost ")
		if !ok {
			continue
		}
		cmdline, _, _ = strings.Cut(cmdline, "  ")
		var words []string
		for i, w := range strings.Fields(cmdline) {
			if i > 0 && strings.HasPrefix(w, "[") {
				break
			}
			words = append(words, strings.Trim(w, "[]"))
		}
		out = append(out, words)
	}
	if len(out) < 7 {
		t.Fatalf("found %d subcommands in the usage, want every one: %q", len(out), out)
	}
	return out
}

// TestHelpOfEverySubcommand: every subcommand the usage names answers -h, --help and help, and
// `hexapost help <subcommand>`, with exit 0 and its help, which shows each variable it reads
// with its default, allowed values and description.
func TestHelpOfEverySubcommand(t *testing.T) {
	t.Parallel()
	helps := subcommandHelp()
	for _, words := range subcommands(t) {
		name := strings.Join(words, " ")
		for _, args := range [][]string{
			append(slices.Clone(words), "--help"), append(slices.Clone(words), "-h"),
			append(slices.Clone(words), "help"), append([]string{"help"}, words...),
		} {
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				t.Parallel()
				var stdout, stderr bytes.Buffer
				code := Main(args, env(map[string]string{"POSTS_BUS": "kafka"}), &stdout, &stderr)
				out := stdout.String() + stderr.String()
				if code != 0 || !strings.HasPrefix(out, "Usage: hexapost") || !strings.Contains(out, name) {
					t.Fatalf("exit %d, output %q; want 0 and the usage of %s", code, out, name)
				}
				for _, v := range variables {
					listed := slices.Contains(helps[name].env, v.name)
					line := "  " + v.name + "=" + v.def
					if len(v.allowed) > 0 {
						line += "  (" + strings.Join(v.allowed, " | ") + ")"
					}
					shown := strings.Contains(out, line+"\n      "+descriptions[v.name]+"\n")
					if listed != shown {
						t.Errorf("%s listed %v, shown with default, values and description %v", v.name, listed, shown)
					}
				}
			})
		}
	}
}

// TestHelpNamesOnlyKnownThings: each help entry is a subcommand of the usage, and each
// variable it lists is one of the table.
func TestHelpNamesOnlyKnownThings(t *testing.T) {
	t.Parallel()
	var names []string
	for _, words := range subcommands(t) {
		names = append(names, strings.Join(words, " "))
	}
	for name, h := range subcommandHelp() {
		if !slices.Contains(names, name) {
			t.Errorf("help of %q, which the usage does not name", name)
		}
		for _, v := range h.env {
			if variableIndex(v) < 0 {
				t.Errorf("help of %q lists %s, which is no variable of the table", name, v)
			}
		}
	}
}
