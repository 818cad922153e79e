package bootstrap

import (
	"bytes"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/fx"
)

// env returns vars as os.Environ gives an environment.
func env(vars map[string]string) []string {
	var out []string
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	return out
}

func TestValidateApp(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		giveEnv   map[string]string
		giveRoles roles
		wantErr   string
	}{
		{
			name:      "defaults, both roles",
			giveRoles: roles{Command: true, Query: true},
		},
		{
			name:      "memory everywhere, explicit",
			giveEnv:   map[string]string{"POSTS_EVENT_STORE": "memory", "POSTS_BUS": "memory", "POSTS_READ_MODEL": "memory"},
			giveRoles: roles{Command: true, Query: true},
		},
		{
			name:      "state cache off",
			giveEnv:   map[string]string{"POSTS_STATE_CACHE": "off"},
			giveRoles: roles{Command: true, Query: true},
		},
		{
			name:      "reads not woken by this process's projector",
			giveEnv:   map[string]string{"POSTS_READ_WAKEUP": "off"},
			giveRoles: roles{Command: true, Query: true},
		},
		{
			name:      "memory bus refused for a command-only process",
			giveRoles: roles{Command: true},
			wantErr:   "POSTS_BUS=memory connects only servers in one process",
		},
		{
			name:      "memory bus refused for a query-only process",
			giveRoles: roles{Query: true},
			wantErr:   "POSTS_BUS=memory connects only servers in one process",
		},
		{
			name:      "mysql without a DSN",
			giveEnv:   map[string]string{"POSTS_EVENT_STORE": "mysql"},
			giveRoles: roles{Command: true, Query: true},
			wantErr:   "POSTS_EVENT_STORE=mysql needs POSTS_MYSQL_DSN",
		},
		{
			name:      "mysql event store",
			giveEnv:   map[string]string{"POSTS_EVENT_STORE": "mysql", "POSTS_MYSQL_DSN": "u:p@tcp(127.0.0.1:1)/x"},
			giveRoles: roles{Command: true, Query: true},
		},
		{
			name:      "nats without a URL",
			giveEnv:   map[string]string{"POSTS_BUS": "nats"},
			giveRoles: roles{Command: true, Query: true},
			wantErr:   "POSTS_BUS=nats needs POSTS_NATS_URL",
		},
		{
			name:      "nats bus, query process",
			giveEnv:   map[string]string{"POSTS_BUS": "nats", "POSTS_NATS_URL": "nats://127.0.0.1:1"},
			giveRoles: roles{Query: true},
		},
		{
			name:      "redis without a URL",
			giveEnv:   map[string]string{"POSTS_BUS": "redis"},
			giveRoles: roles{Command: true, Query: true},
			wantErr:   "POSTS_BUS=redis needs POSTS_REDIS_URL",
		},
		{
			name:      "redis bus, command process",
			giveEnv:   map[string]string{"POSTS_BUS": "redis", "POSTS_REDIS_URL": "redis://127.0.0.1:1/0", "POSTS_EVENT_STORE": "mysql", "POSTS_MYSQL_DSN": "u:p@tcp(127.0.0.1:1)/x"},
			giveRoles: roles{Command: true},
		},
		{
			name:      "redis bus, query process",
			giveEnv:   map[string]string{"POSTS_BUS": "redis", "POSTS_REDIS_URL": "redis://127.0.0.1:1/0"},
			giveRoles: roles{Query: true},
		},
		{
			name: "redis bus, query process reading the mysql event store",
			giveEnv: map[string]string{"POSTS_BUS": "redis", "POSTS_REDIS_URL": "redis://127.0.0.1:1/0",
				"POSTS_EVENT_STORE": "mysql", "POSTS_MYSQL_DSN": "u:p@tcp(127.0.0.1:1)/x"},
			giveRoles: roles{Query: true},
		},
		{
			name:      "mysql without a DSN, query process",
			giveEnv:   map[string]string{"POSTS_BUS": "redis", "POSTS_REDIS_URL": "redis://127.0.0.1:1/0", "POSTS_EVENT_STORE": "mysql"},
			giveRoles: roles{Query: true},
			wantErr:   "POSTS_EVENT_STORE=mysql needs POSTS_MYSQL_DSN",
		},
		{
			name:      "reconciliation off",
			giveEnv:   map[string]string{"POSTS_RECONCILE_INTERVAL": "off"},
			giveRoles: roles{Command: true, Query: true},
		},
		{
			name:      "mongo without a URI",
			giveEnv:   map[string]string{"POSTS_READ_MODEL": "mongo"},
			giveRoles: roles{Command: true, Query: true},
			wantErr:   "POSTS_READ_MODEL=mongo needs POSTS_MONGO_URI",
		},
		{
			name:      "tracing to an OTLP endpoint, redis bus, query process",
			giveEnv:   map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "POSTS_BUS": "redis", "POSTS_REDIS_URL": "redis://127.0.0.1:1/0"},
			giveRoles: roles{Query: true},
		},
		{
			name: "full stack, query process",
			giveEnv: map[string]string{"POSTS_READ_MODEL": "mongo", "POSTS_MONGO_URI": "mongodb://127.0.0.1:1/x",
				"POSTS_BUS": "nats", "POSTS_NATS_URL": "nats://127.0.0.1:1"},
			giveRoles: roles{Query: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := loadConfig(env(tt.giveEnv))
			if err != nil {
				t.Fatal(err)
			}
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			opt, err := options(cfg, tt.giveRoles, log)
			if err == nil {
				err = fx.ValidateApp(opt)
			}
			got := ""
			if err != nil {
				got = err.Error()
			}
			if !strings.Contains(got, tt.wantErr) || (tt.wantErr == "") != (err == nil) {
				t.Fatalf("error %q, want it to contain %q", got, tt.wantErr)
			}
		})
	}
}

func TestLoadConfigRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		giveName  string
		giveValue string
		wantErr   string
	}{
		{"POSTS_BUS", "kafka", `POSTS_BUS="kafka": must be one of memory, redis, nats`},
		{"POSTS_EVENT_STORE", "postgres", `POSTS_EVENT_STORE="postgres": must be one of memory, mysql`},
		{"POSTS_READ_MODEL", "redis", `POSTS_READ_MODEL="redis": must be one of memory, mongo`},
		{"POSTS_STATE_CACHE", "yes", `POSTS_STATE_CACHE="yes": must be one of on, off`},
		{"POSTS_READ_WAIT", "soon", `POSTS_READ_WAIT="soon": must be a positive duration`},
		{"POSTS_READ_WAIT", "-1s", `POSTS_READ_WAIT="-1s": must be a positive duration`},
		{"POSTS_RECONCILE_INTERVAL", "soon", `POSTS_RECONCILE_INTERVAL="soon": must be off or a positive duration`},
		{"POSTS_RECONCILE_GRACE", "0s", `POSTS_RECONCILE_GRACE="0s": must be a positive duration`},
		{"POSTS_READ_WAKEUP", "yes", `POSTS_READ_WAKEUP="yes": must be one of on, off`},
		{"POSTS_MAX_ATTEMPTS", "0", `POSTS_MAX_ATTEMPTS="0": must be a whole number from 1 to 100`},
		{"POSTS_REDIS_MAXLEN", "999", `POSTS_REDIS_MAXLEN="999": must be a whole number of at least 1000`},
		{"POSTS_NATS_MAX_MSGS", "1e6", `POSTS_NATS_MAX_MSGS="1e6": must be a whole number of at least 1000`},
		{"POSTS_MONGO_ATOMIC_REPLACE", "yes", `POSTS_MONGO_ATOMIC_REPLACE="yes": must be one of auto, on, off`},
		{"POSTS_LOG_LEVEL", "loud", `POSTS_LOG_LEVEL="loud": must be one of debug, info, warn, error`},
		{"POSTS_CORS_ORIGINS", "app.example.com", `POSTS_CORS_ORIGINS="app.example.com": "app.example.com" is not an origin`},
		{"POSTS_CORS_ORIGINS", "https://a.example, https://b.example/app", `"https://b.example/app" is not an origin`},
		{"POSTS_REQUIRE_IF_MATCH", "yes", `POSTS_REQUIRE_IF_MATCH="yes": must be one of on, off`},
		{"POSTS_QUERY_URL", "query.example.com", `POSTS_QUERY_URL="query.example.com": want a base URL such as https://query.example.com`},
		{"POSTS_QUERY_URL", "ftp://query.example.com", `POSTS_QUERY_URL="ftp://query.example.com": want a base URL`},
		{"POSTS_QUERY_URL", "https://query.example.com/?x=1", `POSTS_QUERY_URL="https://query.example.com/?x=1": want a base URL`},
		{"POSTS_QUERY_URL", "https://user:secret@query.example.com", `want a base URL`},
		{"OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318", `OTEL_EXPORTER_OTLP_ENDPOINT="localhost:4318": must be an http or https URL`},
		{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "grpc://collector:4317", `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="grpc://collector:4317": must be an http or https URL`},
	}
	for _, tt := range tests {
		t.Run(tt.giveName+"="+tt.giveValue, func(t *testing.T) {
			t.Parallel()
			_, err := loadConfig(env(map[string]string{tt.giveName: tt.giveValue}))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestLoadConfigDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := loadConfig(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	got := []string{cfg.EventStore, cfg.Bus, cfg.ReadModel, cfg.CommandAddr, cfg.QueryAddr, cfg.ReadWait.String()}
	want := []string{"memory", "memory", "memory", ":3000", ":4000", "2s"}
	if strings.Join(got, " ") != strings.Join(want, " ") || cfg.MaxAttempts != 3 {
		t.Fatalf("defaults %v attempts %d, want %v attempts 3", got, cfg.MaxAttempts, want)
	}
	if !cfg.StateCache {
		t.Error("the state cache is off by default, want on")
	}
	if !cfg.ReadWakeup {
		t.Error("POSTS_READ_WAKEUP is off by default, want on")
	}
	if cfg.ReconcileInterval != time.Minute || cfg.ReconcileGrace != 10*time.Second {
		t.Errorf("reconciliation every %s with a grace of %s, want 1m0s and 10s", cfg.ReconcileInterval, cfg.ReconcileGrace)
	}
	if off, err := loadConfig(env(map[string]string{"POSTS_RECONCILE_INTERVAL": "off"})); err != nil || off.ReconcileInterval != 0 {
		t.Errorf("POSTS_RECONCILE_INTERVAL=off gives %v, %v; want 0", off.ReconcileInterval, err)
	}
	if cfg.RedisMaxLen != 1_000_000 || cfg.NATSMaxMsgs != 1_000_000 {
		t.Errorf("stream bounds: Redis %d, NATS %d; want 1 000 000 each", cfg.RedisMaxLen, cfg.NATSMaxMsgs)
	}
}

func TestLoadConfigQueryURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		give, want string
	}{
		{"", ""},
		{"https://query.example.com", "https://query.example.com"},
		{" https://query.example.com/ ", "https://query.example.com"},
		{"http://127.0.0.1:4000/api/", "http://127.0.0.1:4000/api"},
	}
	for _, tt := range tests {
		cfg, err := loadConfig(env(map[string]string{"POSTS_QUERY_URL": tt.give}))
		if err != nil || cfg.QueryURL != tt.want {
			t.Errorf("POSTS_QUERY_URL=%q: %q, %v; want %q", tt.give, cfg.QueryURL, err, tt.want)
		}
	}
}

func TestLoadConfigRequireIfMatch(t *testing.T) {
	t.Parallel()
	for give, want := range map[string]bool{"": false, "off": false, "on": true} {
		cfg, err := loadConfig(env(map[string]string{"POSTS_REQUIRE_IF_MATCH": give}))
		if err != nil || cfg.RequireIfMatch != want {
			t.Errorf("POSTS_REQUIRE_IF_MATCH=%q: %v, %v; want %v", give, cfg.RequireIfMatch, err, want)
		}
	}
}

func TestLoadConfigCORSOrigins(t *testing.T) {
	t.Parallel()
	cfg, err := loadConfig(env(map[string]string{"POSTS_CORS_ORIGINS": " https://a.example , http://b.example:8080/"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.CORSOrigins, " "); got != "https://a.example http://b.example:8080" {
		t.Fatalf("origins %q, want the two origins without their trailing slash", got)
	}
}

func TestMainRefusesAnUnknownSetting(t *testing.T) {
	t.Parallel()
	tests := []struct {
		giveName string
		wantHint string
	}{
		{"POSTS_EVENTSTORE", "did you mean POSTS_EVENT_STORE?"},
		{"POSTS_READWAIT", "did you mean POSTS_READ_WAIT?"},
		{"POSTS_MONGO_URL", "did you mean POSTS_MONGO_URI?"},
	}
	for _, tt := range tests {
		t.Run(tt.giveName, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := Main([]string{"openapi"}, []string{tt.giveName + "=mysql"}, &stdout, &stderr)
			if code != 1 || !strings.Contains(stderr.String(), tt.giveName+" is not a setting of hexapost; "+tt.wantHint) {
				t.Fatalf("exit %d, stderr %q; want 1 naming %s and %q", code, stderr.String(), tt.giveName, tt.wantHint)
			}
		})
	}
}

func TestEffectiveConfigurationHidesSecrets(t *testing.T) {
	t.Parallel()
	got := map[string]string{}
	for _, a := range effective(env(map[string]string{
		"POSTS_EVENT_STORE": "mysql", "POSTS_MYSQL_DSN": "app:s3cret@tcp(db:3306)/posts?parseTime=true",
		"POSTS_BUS": "redis", "POSTS_REDIS_URL": "redis://:s3cret@cache:6379/0",
		"POSTS_MONGO_URI": "mongodb://reader:s3cret@mongo:27017/posts", "POSTS_ADMIN_TOKEN": "s3cret",
	})) {
		attr := a.(slog.Attr)
		got[attr.Key] = attr.Value.String()
	}
	tests := []struct {
		giveName  string
		wantValue string
	}{
		{"POSTS_EVENT_STORE", "mysql"},
		{"POSTS_READ_MODEL", "memory"},
		{"POSTS_READ_WAIT", "2s"},
		{"POSTS_MYSQL_DSN", "app:xxxxx@tcp(db:3306)/posts?parseTime=true"},
		{"POSTS_REDIS_URL", "redis://:xxxxx@cache:6379/0"},
		{"POSTS_MONGO_URI", "mongodb://reader:xxxxx@mongo:27017/posts"},
		{"POSTS_ADMIN_TOKEN", "(set)"},
		{"POSTS_NATS_URL", ""},
	}
	for _, tt := range tests {
		if got[tt.giveName] != tt.wantValue {
			t.Errorf("%s = %q, want %q", tt.giveName, got[tt.giveName], tt.wantValue)
		}
	}
	if len(got) != len(variables) {
		t.Errorf("%d settings logged, want every one of the %d", len(got), len(variables))
	}
	for k, v := range got {
		if strings.Contains(v, "s3cret") {
			t.Errorf("%s shows the secret: %q", k, v)
		}
	}
}

func TestMainVersion(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"version", "--version"} {
		var stdout, stderr bytes.Buffer
		code := Main([]string{arg}, nil, &stdout, &stderr)
		if code != 0 || !strings.HasPrefix(stdout.String(), "hexapost ") || !strings.Contains(stdout.String(), runtime.Version()) {
			t.Errorf("%s: exit %d, stdout %q; want 0 and hexapost's version with %s", arg, code, stdout.String(), runtime.Version())
		}
	}
}

func TestMainUnknownBusExitsNonZero(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	code := Main(nil, env(map[string]string{"POSTS_BUS": "kafka"}), &stdout, &stderr)
	if code == 0 || !strings.Contains(stderr.String(), "POSTS_BUS") ||
		!strings.Contains(stderr.String(), "memory, redis, nats") {
		t.Fatalf("exit %d, stderr %q; want non-zero naming POSTS_BUS and the allowed values", code, stderr.String())
	}
}

func TestMainUsage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		giveArgs []string
		wantCode int
	}{
		{[]string{"frobnicate"}, 2},
		{[]string{"serve", "both"}, 2},
		{[]string{"openapi", "--xml"}, 2},
		{[]string{"help"}, 0},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.giveArgs, " "), func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			if code := Main(tt.giveArgs, env(nil), &stdout, &stderr); code != tt.wantCode {
				t.Fatalf("exit %d, want %d (stderr %q)", code, tt.wantCode, stderr.String())
			}
		})
	}
}

func TestMainOpenAPI(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"openapi"}, env(nil), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	version, _, _ := build()
	for _, want := range []string{"openapi: 3.1.0", "operationId: create-post", "operationId: get-post",
		"version: " + version} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("openapi output lacks %q", want)
		}
	}
}

func TestMainRebuildNeedsDurableBackends(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	code := Main([]string{"rebuild"}, env(nil), &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "POSTS_EVENT_STORE=mysql and POSTS_READ_MODEL=mongo") {
		t.Fatalf("exit %d, stderr %q; want 1 naming the variables", code, stderr.String())
	}
}
