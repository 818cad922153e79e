package harness

import (
	"context"
	"database/sql"
	"net/url"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"hexapost/adapters/mongo"
	"hexapost/test/contract"
)

// MySQLDatabase creates a throwaway database named prefix plus random hex on the server of
// POSTS_MYSQL_DSN and returns a DSN for it; the database is dropped when the test ends.
func MySQLDatabase(t testing.TB, prefix string) string {
	t.Helper()
	base, err := mysql.ParseDSN(contract.Backend(t, "POSTS_MYSQL_DSN"))
	if err != nil {
		t.Fatal(err)
	}
	name := prefix + RandomHex(6)
	admin := base.Clone()
	admin.DBName = ""
	db, err := sql.Open("mysql", admin.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name)
		_ = db.Close()
	})
	dsn := base.Clone()
	dsn.DBName = name
	return dsn.FormatDSN()
}

// MongoDatabase returns a URI for a throwaway database named prefix plus random hex on the
// server of base (POSTS_MONGO_URI when empty); the database is dropped when the test ends.
func MongoDatabase(t testing.TB, base, prefix string) string {
	t.Helper()
	if base == "" {
		base = contract.Backend(t, "POSTS_MONGO_URI")
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + prefix + RandomHex(6)
	uri := u.String()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		v, err := mongo.Open(ctx, mongo.Config{URI: uri})
		if err != nil {
			return
		}
		_ = v.Drop(ctx)
		_ = v.Close()
	})
	return uri
}
