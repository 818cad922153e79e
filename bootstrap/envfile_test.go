package bootstrap

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestEnvExampleHasEverySetting: the example env file names every variable of the table once,
// under its description, either set or commented out at its default, and what it sets is a
// valid configuration.
func TestEnvExampleHasEverySetting(t *testing.T) {
	t.Parallel()
	const path = "../hexapost.env.example"
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	assignment := regexp.MustCompile(`^(# )?([A-Z][A-Z0-9_]*)=(.*)$`)
	lines := strings.Split(string(data), "\n")
	seen := map[string]int{}
	var active []string
	for i, line := range lines {
		m := assignment.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		commented, name, value := m[1] != "", m[2], m[3]
		seen[name]++
		at := variableIndex(name)
		if at < 0 {
			t.Errorf("%s: %s is no variable of the table", path, name)
			continue
		}
		v := variables[at]
		if i == 0 || !strings.HasPrefix(lines[i-1], "# "+descriptions[name]) {
			t.Errorf("%s: %s is not under its description %q", path, name, descriptions[name])
		}
		if commented && value != v.def {
			t.Errorf("%s: %s commented out at %q, want its default %q", path, name, value, v.def)
		}
		if !commented {
			active = append(active, name+"="+strings.Trim(value, "'"))
		}
	}
	for _, v := range variables {
		if seen[v.name] != 1 {
			t.Errorf("%s names %s %d times, want once", path, v.name, seen[v.name])
		}
	}
	if len(active) == 0 {
		t.Fatalf("%s sets nothing", path)
	}
	if _, err := loadConfig(active); err != nil {
		t.Errorf("%s: %v", path, err)
	}
}
