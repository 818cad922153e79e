// Package compose checks the repository's compose.yaml against the Compose specification and
// against hexapost's configuration. It is a module of its own so that the Compose loader's
// dependencies stay out of the service's.
package compose_test

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

// root is the repository, two directories up from test/compose.
const root = "../.."

// hexapostImage is what compose.yaml runs hexapost from when HEXAPOST_IMAGE is not set: the
// tag `make image` gives.
const hexapostImage = "hexapost:dev"

// load loads compose.yaml the way `docker compose` does, with the spec's schema validation and
// consistency checks, every profile active and env as the only environment.
func load(t *testing.T, env map[string]string) *types.Project {
	t.Helper()
	dir, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	p, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(dir, "compose.yaml")}},
		Environment: env,
	}, loader.WithProfiles([]string{"*"}))
	if err != nil {
		t.Fatalf("compose.yaml does not load: %v", err)
	}
	return p
}

// knownVariables returns the POSTS_* names package bootstrap reads: every string literal of its
// non-test sources that is such a name. Reading the source, not a list kept here, keeps the
// check in step with the configuration.
func knownVariables(t *testing.T) map[string]bool {
	t.Helper()
	dir := filepath.Join(root, "bootstrap")
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	name := regexp.MustCompile(`^POSTS_[A-Z0-9_]+$`)
	known := map[string]bool{}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if s, err := strconv.Unquote(lit.Value); err == nil && name.MatchString(s) {
					known[s] = true
				}
			}
			return true
		})
	}
	// A scan that finds nothing would pass every name below; these are the adapter switches.
	for _, v := range []string{"POSTS_EVENT_STORE", "POSTS_BUS", "POSTS_READ_MODEL"} {
		if !known[v] {
			t.Fatalf("no %s among the variables found in %s; the scan is broken", v, dir)
		}
	}
	return known
}

func TestComposeFileIsValidForEveryBus(t *testing.T) {
	t.Parallel()
	known := knownVariables(t)
	tests := []struct {
		giveEnv map[string]string
		wantBus string
	}{
		{giveEnv: map[string]string{}, wantBus: "nats"},
		{giveEnv: map[string]string{"HEXAPOST_BUS": "redis"}, wantBus: "redis"},
	}
	for _, tt := range tests {
		t.Run(tt.wantBus, func(t *testing.T) {
			t.Parallel()
			p := load(t, tt.giveEnv)
			for _, name := range []string{"command-server", "query-server-1", "query-server-2", "rebuild"} {
				s, ok := p.Services[name]
				if !ok {
					t.Fatalf("no service %s", name)
				}
				if s.Image != hexapostImage {
					t.Errorf("%s runs image %q, want %q", name, s.Image, hexapostImage)
				}
				for k, v := range s.Environment {
					if strings.HasPrefix(k, "POSTS_") && !known[k] {
						t.Errorf("%s sets %s, which the configuration does not read", name, k)
					}
					if v == nil || *v == "" {
						t.Errorf("%s sets %s to nothing", name, k)
					}
				}
				if bus := s.Environment["POSTS_BUS"]; name != "rebuild" && (bus == nil || *bus != tt.wantBus) {
					t.Errorf("%s: POSTS_BUS is not %s", name, tt.wantBus)
				}
			}
		})
	}
}

func TestComposeFileRunsTheRealStack(t *testing.T) {
	t.Parallel()
	p := load(t, map[string]string{})
	env := func(service, name string) string {
		if v := p.Services[service].Environment[name]; v != nil {
			return *v
		}
		return ""
	}

	if got := []string(p.Services["command-server"].Command); !slices.Equal(got, []string{"serve", "command"}) {
		t.Errorf("command-server runs %q", got)
	}
	if env("command-server", "POSTS_EVENT_STORE") != "mysql" {
		t.Error("the command server does not use the MySQL event store")
	}
	for _, q := range []string{"query-server-1", "query-server-2"} {
		if got := []string(p.Services[q].Command); !slices.Equal(got, []string{"serve", "query"}) {
			t.Errorf("%s runs %q", q, got)
		}
		if env(q, "POSTS_READ_MODEL") != "mongo" {
			t.Errorf("%s does not use the MongoDB read model", q)
		}
		if env(q, "POSTS_CONSUMER_GROUP") == "" || env(q, "POSTS_CONSUMER_GROUP") != env("query-server-1", "POSTS_CONSUMER_GROUP") {
			t.Errorf("%s is not in the consumer group of query-server-1", q)
		}
	}
	rebuild := p.Services["rebuild"]
	if !slices.Equal([]string(rebuild.Command), []string{"rebuild"}) || !slices.Equal(rebuild.Profiles, []string{"rebuild"}) {
		t.Errorf("rebuild runs %q in profiles %q, want the one-off [rebuild] in its own profile", rebuild.Command, rebuild.Profiles)
	}
	if rebuild.Restart != "no" {
		t.Errorf("rebuild restarts %q; a one-off must not be restarted", rebuild.Restart)
	}

	// hexapost's image has no shell to run a health check in, so its services start once their
	// backends are healthy, and every backend has a health check of its own.
	for name, s := range p.Services {
		if s.Image == hexapostImage {
			if s.PullPolicy != types.PullPolicyNever {
				t.Errorf("%s would pull %s, which only `make image` builds", name, s.Image)
			}
			if len(s.DependsOn) == 0 {
				t.Errorf("%s depends on no backend", name)
			}
			for dep, d := range s.DependsOn {
				if d.Condition != types.ServiceConditionHealthy {
					t.Errorf("%s starts when %s is %s, want %s", name, dep, d.Condition, types.ServiceConditionHealthy)
				}
			}
			continue
		}
		if s.HealthCheck == nil || len(s.HealthCheck.Test) == 0 || s.HealthCheck.Disable {
			t.Errorf("backend %s has no health check", name)
		}
		if _, tag, ok := strings.Cut(s.Image, ":"); !ok || !regexp.MustCompile(`^\d+\.\d+\.\d+`).MatchString(tag) {
			t.Errorf("backend %s runs %q, not an image pinned to a version", name, s.Image)
		}
		if len(s.Volumes) == 0 || s.Volumes[0].Type != types.VolumeTypeVolume || p.Volumes[s.Volumes[0].Source].Name == "" {
			t.Errorf("backend %s keeps its data in no named volume", name)
		}
	}

	// The durability the guarantees assume: a commit and a broker's acknowledgement are on disk.
	durable := []struct {
		service string
		want    []string
	}{
		{"mariadb", []string{"--innodb-flush-log-at-trx-commit=1", "--sync-binlog=1"}},
		{"redis", []string{"--appendonly yes", "--appendfsync always", "--maxmemory-policy noeviction"}},
	}
	for _, d := range durable {
		args := " " + strings.Join(p.Services[d.service].Command, " ") + " "
		for _, w := range d.want {
			if !strings.Contains(args, " "+w+" ") {
				t.Errorf("%s does not run with %s: %s", d.service, w, args)
			}
		}
	}
	nats := p.Services["nats"]
	if len(nats.Configs) != 1 {
		t.Fatalf("nats has %d config files, want its server config", len(nats.Configs))
	}
	conf := p.Configs[nats.Configs[0].Source].Content
	for _, w := range []string{"store_dir: /data", "sync_interval: always"} {
		if !strings.Contains(conf, w) {
			t.Errorf("the NATS config lacks %q:\n%s", w, conf)
		}
	}
	if !slices.ContainsFunc(nats.Volumes, func(v types.ServiceVolumeConfig) bool { return v.Target == "/data" }) {
		t.Error("JetStream's store_dir is not on a volume")
	}
}

// TestEnvExampleSetsWhatComposeSets: hexapost.env.example, read as Compose reads an env_file,
// sets each variable the hexapost services of compose.yaml set, to the same value, and nothing
// they leave unset.
func TestEnvExampleSetsWhatComposeSets(t *testing.T) {
	t.Parallel()
	example, err := dotenv.Read(filepath.Join(root, "hexapost.env.example"))
	if err != nil {
		t.Fatalf("hexapost.env.example does not load as an env_file: %v", err)
	}
	p := load(t, map[string]string{})
	composed := map[string]string{}
	for name, s := range p.Services {
		if s.Image != hexapostImage {
			continue
		}
		for k, v := range s.Environment {
			if v == nil {
				continue
			}
			if prev, ok := composed[k]; ok && prev != *v {
				t.Fatalf("%s sets %s=%s, another hexapost service %s", name, k, *v, prev)
			}
			composed[k] = *v
		}
	}
	for k, v := range composed {
		if example[k] != v {
			t.Errorf("compose.yaml sets %s=%s, hexapost.env.example %q", k, v, example[k])
		}
	}
	for k, v := range example {
		if _, ok := composed[k]; !ok {
			t.Errorf("hexapost.env.example sets %s=%s, which compose.yaml leaves unset", k, v)
		}
	}
}
