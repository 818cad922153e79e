package mysql

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
)

// KeyTTL is how long an idempotency record is kept after it was stored: the 24 hours the HTTP
// contract promises to clients that retry with the same Idempotency-Key.
const KeyTTL = 24 * time.Hour

// Defaults for the zero fields of Config.
const (
	defaultMaxOpenConns    = 20
	defaultConnMaxLifetime = 5 * time.Minute
	defaultConnMaxIdleTime = time.Minute
	defaultTimeout         = 5 * time.Second
	defaultRelayTimeout    = 30 * time.Second
	defaultStartTimeout    = time.Minute
	defaultDialTimeout     = 5 * time.Second
	defaultIOTimeout       = 10 * time.Second
	defaultAppendBatch     = 32
	defaultAppendSlots     = 1
)

// Config configures an EventStore. Only DSN is required; every other zero field takes its
// default.
type Config struct {
	// DSN is a go-sql-driver data source name that names a database, such as
	// "user:password@tcp(127.0.0.1:3306)/hexapost". When it sets no timeouts, Open uses a 5s
	// dial timeout and 10s read and write timeouts. Times are always read and written in UTC
	// (parseTime=true, loc=UTC), whatever the DSN says.
	DSN string
	// MaxOpenConns caps the connections to the server (default 20); MaxIdleConns caps the idle
	// ones (default MaxOpenConns).
	MaxOpenConns int
	MaxIdleConns int
	// ConnMaxLifetime (default 5m) and ConnMaxIdleTime (default 1m) retire connections, so the
	// pool replaces the ones a restarted or failed-over server has dropped.
	ConnMaxLifetime time.Duration
	ConnMaxIdleTime time.Duration
	// Timeout bounds each call to the store (default 5s). A call that runs out of it fails with
	// ports.ErrUnavailable.
	Timeout time.Duration
	// RelayTimeout bounds one Relay call, publishing included (default 30s). Its rows stay
	// locked meanwhile, so it should not be much longer than a publish may take.
	RelayTimeout time.Duration
	// AppendBatch is the most appends committed in one transaction (default 32), AppendSlots
	// the most such transactions running at once (default 1). Appends that arrive while the
	// slots are busy wait and share the next transaction, so one commit (one log flush) serves
	// many of them; under light load an append runs alone at once. One slot makes the largest
	// batches and the fewest statements per append, but an append whose transaction waits for a
	// lock held elsewhere then holds up every append of the process, for up to Timeout.
	AppendBatch int
	AppendSlots int
	// ReadOnly opens the store for reading only, for a process whose database user may only
	// read (a query server comparing its read model with the store): Open runs no migrations
	// and fails, saying what to do, when the schema is missing or older than this build; Append
	// and Relay fail.
	ReadOnly bool
	// StartTimeout bounds Open: connecting, waiting for another process's migration and
	// migrating (default 1m).
	StartTimeout time.Duration
	// Now returns the current time. It decides when idempotency records expire, so a test can
	// move the clock instead of waiting a day (default time.Now).
	Now func() time.Time
	// Log receives what the store and the driver report on their own (default: discarded).
	Log *slog.Logger
	// BeforeCommit is a test hook: when not nil, it is called inside an append's transaction,
	// after every row is written and before the commit, once for every append of the batch
	// that is about to be committed, with that append's context and post id. A test blocks in
	// it to hold a transaction open and force an interleaving; when it returns an error, the
	// transaction is rolled back and every append in it fails with that error. Leave it nil in
	// production.
	BeforeCommit func(ctx context.Context, postID string) error
}

// withDefaults returns cfg with every zero field set to its default, or an error naming the
// field that is invalid.
func (cfg Config) withDefaults() (Config, error) {
	if strings.TrimSpace(cfg.DSN) == "" {
		return cfg, errors.New("mysql: DSN is empty")
	}
	for _, f := range []struct {
		name string
		neg  bool
	}{
		{"MaxOpenConns", cfg.MaxOpenConns < 0},
		{"MaxIdleConns", cfg.MaxIdleConns < 0},
		{"ConnMaxLifetime", cfg.ConnMaxLifetime < 0},
		{"ConnMaxIdleTime", cfg.ConnMaxIdleTime < 0},
		{"Timeout", cfg.Timeout < 0},
		{"RelayTimeout", cfg.RelayTimeout < 0},
		{"StartTimeout", cfg.StartTimeout < 0},
		{"AppendBatch", cfg.AppendBatch < 0},
		{"AppendSlots", cfg.AppendSlots < 0},
	} {
		if f.neg {
			return cfg, fmt.Errorf("mysql: config: %s is negative", f.name)
		}
	}
	if cfg.MaxOpenConns == 0 {
		cfg.MaxOpenConns = defaultMaxOpenConns
	}
	if cfg.MaxIdleConns == 0 || cfg.MaxIdleConns > cfg.MaxOpenConns {
		cfg.MaxIdleConns = cfg.MaxOpenConns
	}
	if cfg.ConnMaxLifetime == 0 {
		cfg.ConnMaxLifetime = defaultConnMaxLifetime
	}
	if cfg.ConnMaxIdleTime == 0 {
		cfg.ConnMaxIdleTime = defaultConnMaxIdleTime
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = defaultTimeout
	}
	if cfg.RelayTimeout == 0 {
		cfg.RelayTimeout = defaultRelayTimeout
	}
	if cfg.AppendBatch == 0 {
		cfg.AppendBatch = defaultAppendBatch
	}
	if cfg.AppendSlots == 0 {
		cfg.AppendSlots = defaultAppendSlots
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = defaultStartTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return cfg, nil
}

// driverConfig parses the DSN and completes it with what the store needs: UTC times parsed
// into time.Time, and timeouts where the DSN has none. Its errors show the DSN with the
// password redacted.
func driverConfig(cfg Config) (*gomysql.Config, error) {
	dc, err := gomysql.ParseDSN(cfg.DSN)
	if err != nil {
		return nil, dsnError(cfg.DSN, err)
	}
	if dc.DBName == "" {
		return nil, dsnError(cfg.DSN, errors.New("no database name (…/dbname)"))
	}
	params := dsnParams(cfg.DSN)
	if dc.Timeout <= 0 {
		dc.Timeout = defaultDialTimeout
	}
	if dc.ReadTimeout <= 0 {
		dc.ReadTimeout = defaultIOTimeout
	}
	if dc.WriteTimeout <= 0 {
		dc.WriteTimeout = defaultIOTimeout
	}
	if !params.Has("interpolateParams") {
		dc.InterpolateParams = true
	}
	// A batch of appends is sent as one packet of statements (see commitTogether). Every
	// statement of the store is a constant with ? parameters, formatted with their values
	// escaped before they are sent, so no value is ever read as a statement.
	if params.Has("multiStatements") && !dc.MultiStatements {
		return nil, dsnError(cfg.DSN, fmt.Errorf("multiStatements=%s: the store needs it on, to send a "+
			"transaction's statements in one round trip; remove it from the DSN", params.Get("multiStatements")))
	}
	dc.MultiStatements = true
	dc.ParseTime = true
	dc.Loc = time.UTC
	dc.Logger = driverLogger{log: cfg.Log}
	return dc, nil
}

// dsnParams returns the query parameters written in dsn, to tell an absent one from one set to
// its zero value.
func dsnParams(dsn string) url.Values {
	rest := dsn[strings.LastIndexByte(dsn, '/')+1:]
	i := strings.IndexByte(rest, '?')
	if i < 0 {
		return url.Values{}
	}
	v, err := url.ParseQuery(rest[i+1:])
	if err != nil {
		return url.Values{}
	}
	return v
}

// dsnError is a startup error about the DSN: one line that shows the DSN without its password.
func dsnError(dsn string, err error) error {
	return fmt.Errorf("mysql: DSN %s: %w", redact(dsn), err)
}

// redact returns dsn with its password replaced by "xxxxx". It splits the DSN as
// go-sql-driver does — the database name after the last '/', the user information before the
// last '@' ahead of it, the password after the first ':' in that — so that what it hides is
// exactly what the driver would send, even when the password holds '@', ':' or '/'.
func redact(dsn string) string {
	slash := strings.LastIndexByte(dsn, '/')
	if slash < 0 {
		slash = len(dsn)
	}
	at := strings.LastIndexByte(dsn[:slash], '@')
	if at < 0 {
		return dsn
	}
	colon := strings.IndexByte(dsn[:at], ':')
	if colon < 0 {
		return dsn
	}
	return dsn[:colon+1] + "xxxxx" + dsn[at:]
}

// driverLogger sends what go-sql-driver reports (connections it dropped, packets it could not
// read) to the store's logger instead of the standard library's global one.
type driverLogger struct{ log *slog.Logger }

func (l driverLogger) Print(v ...any) {
	l.log.Warn("mysql driver: " + strings.TrimSpace(fmt.Sprint(v...)))
}
