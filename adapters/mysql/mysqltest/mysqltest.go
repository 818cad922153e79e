// Package mysqltest gives tests throwaway databases on the MySQL or MariaDB server named by
// POSTS_MYSQL_DSN, so that every test (and every case of a contract suite) starts from an
// empty schema and leaves nothing behind.
package mysqltest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
)

// EnvDSN is the variable that names the server the tests use.
const EnvDSN = "POSTS_MYSQL_DSN"

// Prefix starts the name of every database NewDatabase creates. The test user needs every
// privilege on databases matching it (GRANT ALL ON `hexapost%`.*).
const Prefix = "hexapost_t_"

// BaseDSN returns the DSN of the test server. Without one it skips tb with the reason, except
// when CI=true, where a missing backend fails tb: CI must never go green by skipping.
func BaseDSN(tb testing.TB) string {
	tb.Helper()
	dsn := os.Getenv(EnvDSN)
	if dsn != "" {
		return dsn
	}
	const reason = EnvDSN + " is not set; start the test backends with: eval \"$(bash test/backends/up.sh)\""
	if os.Getenv("CI") == "true" {
		tb.Fatal(reason + " (CI=true: a missing backend is a failure)")
	}
	tb.Skip(reason)
	return ""
}

// NewDatabase creates an empty database named Prefix+<random> on the test server and returns a
// DSN for it, with the parameters of the base DSN. The database is dropped when tb ends.
// Cleanups run last-registered first, so a store opened on it after this call and closed with
// tb.Cleanup is closed before the database is dropped.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	base, err := gomysql.ParseDSN(BaseDSN(tb))
	if err != nil {
		tb.Fatalf("%s: %v", EnvDSN, err)
	}
	name := Prefix + randomHex(tb, 8)
	admin := base.Clone()
	admin.DBName = ""
	exec(tb, admin, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
	tb.Cleanup(func() { exec(tb, admin, "DROP DATABASE IF EXISTS `"+name+"`") })
	cfg := base.Clone()
	cfg.DBName = name
	return cfg.FormatDSN()
}

// exec runs one statement on its own short-lived connection.
func exec(tb testing.TB, cfg *gomysql.Config, query string) {
	tb.Helper()
	connector, err := gomysql.NewConnector(cfg)
	if err != nil {
		tb.Fatalf("%s: %v", EnvDSN, err)
	}
	db := sql.OpenDB(connector)
	defer func() { _ = db.Close() }()
	// Not tb.Context: cleanups run after it is cancelled.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, query); err != nil {
		tb.Fatalf("%s: %v", query, err)
	}
}

func randomHex(tb testing.TB, n int) string {
	tb.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return hex.EncodeToString(b)
}
