package bootstrap

import (
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// config is everything hexapost reads from its environment. Every variable is documented in
// the README; an unknown or malformed value is a startup error that names the variable.
type config struct {
	EventStore string // POSTS_EVENT_STORE: memory | mysql
	Bus        string // POSTS_BUS: memory | redis | nats
	ReadModel  string // POSTS_READ_MODEL: memory | mongo
	StateCache bool   // POSTS_STATE_CACHE: on | off
	PostLock   bool   // POSTS_POST_LOCK: on | off, commands on one post in this process take turns

	MySQLDSN string // POSTS_MYSQL_DSN
	RedisURL string // POSTS_REDIS_URL
	NATSURL  string // POSTS_NATS_URL
	MongoURI string // POSTS_MONGO_URI
	// MongoAtomicReplace is POSTS_MONGO_ATOMIC_REPLACE: auto | on | off, whether the read
	// model's server applies a filtered replace as one step (auto: ask the server).
	MongoAtomicReplace string

	ConsumerGroup string // POSTS_CONSUMER_GROUP: the query servers that share the work
	RedisMaxLen   int64  // POSTS_REDIS_MAXLEN: approximate bound of the Redis stream
	NATSMaxMsgs   int64  // POSTS_NATS_MAX_MSGS: bound of the JetStream stream

	CommandAddr string // POSTS_COMMAND_ADDR
	QueryAddr   string // POSTS_QUERY_ADDR
	// QueryURL is POSTS_QUERY_URL: the query server's public base URL, where the Location of a
	// created post leads; empty: the query server of this process, or else a path.
	QueryURL string
	// RequireIfMatch is POSTS_REQUIRE_IF_MATCH: on | off, refuse a change without If-Match (428).
	RequireIfMatch bool

	ChangesBuffer    int           // POSTS_CHANGES_BUFFER: changes a /changes client may be behind before it is cut off
	ChangesHeartbeat time.Duration // POSTS_CHANGES_HEARTBEAT: time between comment lines on an idle /changes stream
	ChangesRetain    int           // POSTS_CHANGES_RETAIN: changes the memory bus keeps for /changes to resume from

	ReadWait        time.Duration // POSTS_READ_WAIT: how long min_version reads wait
	ReadWakeup      bool          // POSTS_READ_WAKEUP: on | off, wake waiting reads at this process's writes
	MaxAttempts     int           // POSTS_MAX_ATTEMPTS: projector attempts before dead-letter
	RetryBackoff    time.Duration // POSTS_RETRY_BACKOFF: delay before the first retry; doubles each time
	ShutdownTimeout time.Duration // POSTS_SHUTDOWN_TIMEOUT: how long a graceful stop may take

	// ReconcileInterval is POSTS_RECONCILE_INTERVAL: the time between two passes comparing the
	// read model with the event store; 0 (off) disables them.
	ReconcileInterval time.Duration
	// ReconcileGrace is POSTS_RECONCILE_GRACE: how long a post found behind may take to catch up
	// through the bus before it counts as drift.
	ReconcileGrace time.Duration

	AdminToken  string   // POSTS_ADMIN_TOKEN: bearer token of /admin/*; empty closes them
	CORSOrigins []string // POSTS_CORS_ORIGINS: origins allowed cross-origin; empty: the bundled docs only

	LogLevel  string // POSTS_LOG_LEVEL: debug | info | warn | error
	LogFormat string // POSTS_LOG_FORMAT: text | json
	AccessLog bool   // POSTS_ACCESS_LOG: on | off, one log line per HTTP request

	// Tracing is on when either OTLP endpoint is set; the names are OpenTelemetry's own.
	OTLPEndpoint       string // OTEL_EXPORTER_OTLP_ENDPOINT: base URL, /v1/traces is appended
	OTLPTracesEndpoint string // OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: full URL, wins over the base
	OTLPProtocol       string // OTEL_EXPORTER_OTLP_PROTOCOL: grpc | http/protobuf | http/json
	OTLPTracesProtocol string // OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: as above, wins over it
	// SDKDisabled is OTEL_SDK_DISABLED: true (in any case) turns tracing off even with an
	// endpoint; any other value leaves it on, and SDKDisabledOther keeps a value that is
	// neither true nor false, to warn of.
	SDKDisabled      bool
	SDKDisabledOther string
}

type variable struct {
	name    string
	def     string
	allowed []string // empty: any value
	parse   func(c *config, v string) error
}

func text(set func(c *config, v string)) func(*config, string) error {
	return func(c *config, v string) error { set(c, v); return nil }
}

// streamBound parses the number of changes a bus's stream keeps: at least 1000, so that a
// typo cannot make the bus drop changes the query side has not read yet within a second.
func streamBound(set func(c *config, n int64)) func(*config, string) error {
	return func(c *config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1000 {
			return fmt.Errorf("must be a whole number of at least 1000")
		}
		set(c, n)
		return nil
	}
}

// wholeNumber parses a whole number from lo to hi.
func wholeNumber(lo, hi int, set func(c *config, n int)) func(*config, string) error {
	return func(c *config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			return fmt.Errorf("must be a whole number from %d to %d", lo, hi)
		}
		set(c, n)
		return nil
	}
}

func duration(set func(c *config, d time.Duration)) func(*config, string) error {
	return func(c *config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("must be a positive duration such as 2s or 500ms")
		}
		set(c, d)
		return nil
	}
}

// durationOrOff is duration, or 0 for off.
func durationOrOff(set func(c *config, d time.Duration)) func(*config, string) error {
	return func(c *config, v string) error {
		if v == "off" {
			set(c, 0)
			return nil
		}
		if err := duration(set)(c, v); err != nil {
			return fmt.Errorf("must be off or a positive duration such as 1m or 30s")
		}
		return nil
	}
}

// origins parses a comma-separated list of origins such as https://app.example.com, or "*".
func origins(c *config, v string) error {
	if v == "" {
		return nil
	}
	for o := range strings.SplitSeq(v, ",") {
		o = strings.TrimSpace(o)
		if o == "*" {
			c.CORSOrigins = append(c.CORSOrigins, o)
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			return fmt.Errorf("%q is not an origin: want scheme://host[:port], e.g. https://app.example.com, or *", o)
		}
		c.CORSOrigins = append(c.CORSOrigins, u.Scheme+"://"+u.Host)
	}
	return nil
}

// publicURL parses the base URL at which clients reach a server: http(s)://host[:port][/path],
// without credentials, query or fragment; a trailing slash is dropped.
func publicURL(set func(c *config, v string)) func(*config, string) error {
	return func(c *config, v string) error {
		if v == "" {
			return nil
		}
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
			u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
			return fmt.Errorf("want a base URL such as https://query.example.com (http or https, " +
				"a host, optionally a port and a path; no query or credentials)")
		}
		set(c, strings.TrimSuffix(u.String(), "/"))
		return nil
	}
}

var variables = []variable{
	{"POSTS_EVENT_STORE", "memory", []string{"memory", "mysql"}, text(func(c *config, v string) { c.EventStore = v })},
	{"POSTS_BUS", "memory", []string{"memory", "redis", "nats"}, text(func(c *config, v string) { c.Bus = v })},
	{"POSTS_READ_MODEL", "memory", []string{"memory", "mongo"}, text(func(c *config, v string) { c.ReadModel = v })},
	{"POSTS_STATE_CACHE", "on", []string{"on", "off"}, text(func(c *config, v string) { c.StateCache = v == "on" })},
	{"POSTS_POST_LOCK", "on", []string{"on", "off"}, text(func(c *config, v string) { c.PostLock = v == "on" })},
	{"POSTS_MYSQL_DSN", "", nil, text(func(c *config, v string) { c.MySQLDSN = v })},
	{"POSTS_REDIS_URL", "", nil, text(func(c *config, v string) { c.RedisURL = v })},
	{"POSTS_NATS_URL", "", nil, text(func(c *config, v string) { c.NATSURL = v })},
	{"POSTS_MONGO_URI", "", nil, text(func(c *config, v string) { c.MongoURI = v })},
	{"POSTS_MONGO_ATOMIC_REPLACE", "auto", []string{"auto", "on", "off"}, text(func(c *config, v string) { c.MongoAtomicReplace = v })},
	{"POSTS_CONSUMER_GROUP", "hexapost-query", nil, text(func(c *config, v string) { c.ConsumerGroup = v })},
	{"POSTS_REDIS_MAXLEN", "1000000", nil, streamBound(func(c *config, n int64) { c.RedisMaxLen = n })},
	{"POSTS_NATS_MAX_MSGS", "1000000", nil, streamBound(func(c *config, n int64) { c.NATSMaxMsgs = n })},
	{"POSTS_COMMAND_ADDR", ":3000", nil, text(func(c *config, v string) { c.CommandAddr = v })},
	{"POSTS_QUERY_ADDR", ":4000", nil, text(func(c *config, v string) { c.QueryAddr = v })},
	{"POSTS_QUERY_URL", "", nil, publicURL(func(c *config, v string) { c.QueryURL = v })},
	{"POSTS_REQUIRE_IF_MATCH", "off", []string{"on", "off"}, text(func(c *config, v string) { c.RequireIfMatch = v == "on" })},
	{"POSTS_CHANGES_BUFFER", "1024", nil, wholeNumber(1, 1_000_000, func(c *config, n int) { c.ChangesBuffer = n })},
	{"POSTS_CHANGES_HEARTBEAT", "15s", nil, duration(func(c *config, d time.Duration) { c.ChangesHeartbeat = d })},
	{"POSTS_CHANGES_RETAIN", "10000", nil, wholeNumber(1, 10_000_000, func(c *config, n int) { c.ChangesRetain = n })},
	{"POSTS_READ_WAIT", "2s", nil, duration(func(c *config, d time.Duration) { c.ReadWait = d })},
	{"POSTS_READ_WAKEUP", "on", []string{"on", "off"}, text(func(c *config, v string) { c.ReadWakeup = v == "on" })},
	{"POSTS_MAX_ATTEMPTS", "3", nil, wholeNumber(1, 100, func(c *config, n int) { c.MaxAttempts = n })},
	{"POSTS_RETRY_BACKOFF", "100ms", nil, duration(func(c *config, d time.Duration) { c.RetryBackoff = d })},
	{"POSTS_SHUTDOWN_TIMEOUT", "10s", nil, duration(func(c *config, d time.Duration) { c.ShutdownTimeout = d })},
	{"POSTS_RECONCILE_INTERVAL", "1m", nil, durationOrOff(func(c *config, d time.Duration) { c.ReconcileInterval = d })},
	{"POSTS_RECONCILE_GRACE", "10s", nil, duration(func(c *config, d time.Duration) { c.ReconcileGrace = d })},
	{"POSTS_ADMIN_TOKEN", "", nil, text(func(c *config, v string) { c.AdminToken = v })},
	{"POSTS_CORS_ORIGINS", "", nil, origins},
	{"POSTS_LOG_LEVEL", "info", []string{"debug", "info", "warn", "error"}, text(func(c *config, v string) { c.LogLevel = v })},
	{"POSTS_LOG_FORMAT", "text", []string{"text", "json"}, text(func(c *config, v string) { c.LogFormat = v })},
	{"POSTS_ACCESS_LOG", "off", []string{"on", "off"}, text(func(c *config, v string) { c.AccessLog = v == "on" })},
	{"OTEL_EXPORTER_OTLP_ENDPOINT", "", nil, otlpURL(func(c *config, v string) { c.OTLPEndpoint = v })},
	{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "", nil, otlpURL(func(c *config, v string) { c.OTLPTracesEndpoint = v })},
	{"OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf", otlpProtocols, text(func(c *config, v string) { c.OTLPProtocol = v })},
	{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "", nil, otlpProtocol(func(c *config, v string) { c.OTLPTracesProtocol = v })},
	{"OTEL_SDK_DISABLED", "false", nil, sdkDisabled},
}

// descriptions says in a line what each variable of the table does, for --help and the example
// env file; a test wants one for every variable.
var descriptions = map[string]string{
	"POSTS_EVENT_STORE":                  "where events, the outbox and idempotency keys live",
	"POSTS_BUS":                          "the event bus between the relay and the projector",
	"POSTS_READ_MODEL":                   "where the views and the history live",
	"POSTS_STATE_CACHE":                  "keep recent posts' states in the command process, decide without a read",
	"POSTS_POST_LOCK":                    "commands on one post in this process take turns instead of colliding",
	"POSTS_MYSQL_DSN":                    "go-sql-driver DSN of the event store, user:password@tcp(host:3306)/db",
	"POSTS_REDIS_URL":                    "the Redis bus, redis://host:6379/0",
	"POSTS_NATS_URL":                     "the NATS JetStream bus, nats://host:4222",
	"POSTS_MONGO_URI":                    "the MongoDB read model, mongodb://host:27017/db",
	"POSTS_MONGO_ATOMIC_REPLACE":         "whether the read model's server replaces a view in one step (auto: ask it)",
	"POSTS_CONSUMER_GROUP":               "consumer group (Redis) or durable consumer (NATS) the query servers share",
	"POSTS_REDIS_MAXLEN":                 "approximate length bound of the Redis stream, at least 1000",
	"POSTS_NATS_MAX_MSGS":                "length bound of the JetStream stream, at least 1000",
	"POSTS_COMMAND_ADDR":                 "listen address of the command server",
	"POSTS_QUERY_ADDR":                   "listen address of the query server",
	"POSTS_QUERY_URL":                    "public base URL of the query server, where a create's Location leads",
	"POSTS_REQUIRE_IF_MATCH":             "refuse a PATCH or DELETE without If-Match (428)",
	"POSTS_CHANGES_BUFFER":               "changes a GET /changes client may be behind before it is cut off with a reset",
	"POSTS_CHANGES_HEARTBEAT":            "time between comment lines on an idle GET /changes stream, a duration",
	"POSTS_CHANGES_RETAIN":               "changes the memory bus keeps for GET /changes to resume from",
	"POSTS_READ_WAIT":                    "how long a read with min_version waits before 503, a duration",
	"POSTS_READ_WAKEUP":                  "wake a min_version read as soon as this process projects its post",
	"POSTS_MAX_ATTEMPTS":                 "projection attempts before a change is dead-lettered, 1 to 100",
	"POSTS_RETRY_BACKOFF":                "delay before the first projection retry, doubling each attempt, a duration",
	"POSTS_SHUTDOWN_TIMEOUT":             "how long a graceful stop may take, a duration",
	"POSTS_RECONCILE_INTERVAL":           "time between two passes comparing the read model with the event store, a duration, or off",
	"POSTS_RECONCILE_GRACE":              "how long a post behind the store may take to catch up through the bus before it is drift",
	"POSTS_ADMIN_TOKEN":                  "bearer token of /admin/* on both servers; unset, they answer 403",
	"POSTS_CORS_ORIGINS":                 "comma-separated browser origins allowed, or *; unset: the bundled docs",
	"POSTS_LOG_LEVEL":                    "the least severe log lines written",
	"POSTS_LOG_FORMAT":                   "the form of the log lines on stderr",
	"POSTS_ACCESS_LOG":                   "one log line per HTTP request: method, route, status, duration, bytes, request id",
	"OTEL_EXPORTER_OTLP_ENDPOINT":        "OTLP/HTTP collector, http(s)://host:4318; spans go to /v1/traces; unset: tracing off",
	"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "full OTLP/HTTP traces URL; wins over OTEL_EXPORTER_OTLP_ENDPOINT",
	"OTEL_EXPORTER_OTLP_PROTOCOL":        "OTLP transport; hexapost speaks http/protobuf and refuses the others",
	"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "OTLP transport of spans (grpc, http/protobuf, http/json); wins over OTEL_EXPORTER_OTLP_PROTOCOL",
	"OTEL_SDK_DISABLED":                  "true turns tracing off even with an endpoint set; false or unset leaves it on",
}

// loadConfig reads the configuration from environ, "NAME=value" entries as os.Environ gives
// them (a later entry of a name wins). Unset or empty variables take their defaults. A POSTS_*
// name that is no setting is refused: misspelt, it would leave its setting at the default
// without a word.
func loadConfig(environ []string) (config, error) {
	env := environMap(environ)
	for _, name := range slices.Sorted(maps.Keys(env)) {
		if strings.HasPrefix(name, "POSTS_") && !slices.ContainsFunc(variables, func(v variable) bool { return v.name == name }) {
			return config{}, fmt.Errorf("%s is not a setting of hexapost; did you mean %s?", name, closest(name))
		}
	}
	var c config
	for _, v := range variables {
		val := strings.TrimSpace(env[v.name])
		if val == "" {
			val = v.def
		}
		if len(v.allowed) > 0 && !slices.Contains(v.allowed, val) {
			return config{}, fmt.Errorf("%s=%q: must be one of %s", v.name, val, strings.Join(v.allowed, ", "))
		}
		if err := v.parse(&c, val); err != nil {
			return config{}, fmt.Errorf("%s=%q: %w", v.name, val, err)
		}
	}
	return c, nil
}

// environMap returns environ's variables by name; a later entry of a name wins.
func environMap(environ []string) map[string]string {
	env := map[string]string{}
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		env[name] = value
	}
	return env
}

// effective returns the configuration as the process runs with it, one attribute per setting,
// for the start-up log line. Secrets are not shown: the admin token only as set or not, and the
// password of a DSN or URL as xxxxx.
func effective(environ []string) []any {
	env := environMap(environ)
	attrs := make([]any, 0, len(variables))
	for _, v := range variables {
		val := strings.TrimSpace(env[v.name])
		if val == "" {
			val = v.def
		}
		switch {
		case v.name == "POSTS_ADMIN_TOKEN" && val != "":
			val = "(set)"
		case strings.HasSuffix(v.name, "_DSN") || strings.HasSuffix(v.name, "_URL") || strings.HasSuffix(v.name, "_URI"):
			val = withoutPassword(val)
		}
		attrs = append(attrs, slog.String(v.name, val))
	}
	return attrs
}

// withoutPassword hides the password of a URL (scheme://user:password@host) or of a
// go-sql-driver DSN (user:password@tcp(host)/db).
func withoutPassword(s string) string {
	if strings.Contains(s, "://") {
		if u, err := url.Parse(s); err == nil {
			return u.Redacted()
		}
		return "(unparsable URL)"
	}
	at := strings.LastIndex(s, "@")
	if at < 0 {
		return s
	}
	if colon := strings.Index(s[:at], ":"); colon >= 0 {
		return s[:colon] + ":xxxxx" + s[at:]
	}
	return s
}

// closest returns the setting whose name is the fewest single-character edits away from name.
func closest(name string) string {
	best, bestDist := "", -1
	for _, v := range variables {
		if d := editDistance(name, v.name); bestDist < 0 || d < bestDist {
			best, bestDist = v.name, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
