package mysql

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/mysqldialect"
	"github.com/uptrace/bun/migrate"
)

// migrationFiles are the schema changes, applied in the order of their names. A file is
// never edited once released: a change is a new file.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// Tables in which bun's migrator records what it applied.
const (
	migrationsTable     = "schema_migrations"
	migrationLocksTable = "schema_migration_locks"
)

// lockWaitSeconds is how long one GET_LOCK call waits for another process's migration; Open
// keeps asking until its StartTimeout. It is kept short so that a short StartTimeout (the read
// timeout of the migration connections) is not cut by a long call.
const lockWaitSeconds = 1

// migrateSchema applies the migrations that the database lacks.
//
// Processes that start together must not migrate at the same time. bun's Migrator.Lock is no
// help there: it inserts a row into a locks table, so a second process fails at once instead
// of waiting, and a process that dies while migrating leaves the row behind and blocks every
// later start until someone deletes it. A MySQL named lock (GET_LOCK) has neither problem: the
// others wait for it, and the server releases it when the session that holds it ends, however
// it ends. It is taken on a connection of its own, held across the whole migration, and named
// after the database, so migrations of different databases on one server do not wait for each
// other.
//
// The migrations run on a pool of their own whose read and write timeouts are the whole
// startup budget, because waiting for the lock or running DDL on a large table may take longer
// than any sane timeout for a query.
func migrateSchema(ctx context.Context, dc *gomysql.Config, budget time.Duration) error {
	mc := dc.Clone()
	mc.ReadTimeout, mc.WriteTimeout = budget, budget
	connector, err := gomysql.NewConnector(mc)
	if err != nil {
		return err
	}
	sqldb := sql.OpenDB(connector)
	defer func() { _ = sqldb.Close() }()
	sqldb.SetMaxOpenConns(2) // the lock's connection and the migrator's

	conn, err := sqldb.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() { _ = conn.Close() }() // also releases the lock
	name := lockName(dc.DBName)
	if err := getLock(ctx, conn, name); err != nil {
		return err
	}
	defer func() {
		// A failure here is harmless: closing the connection releases the lock as well.
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), "DO RELEASE_LOCK(?)", name)
	}()

	migrations, err := knownMigrations()
	if err != nil {
		return err
	}
	db := bun.NewDB(sqldb, mysqldialect.New())
	migrator := migrate.NewMigrator(db, migrations,
		migrate.WithTableName(migrationsTable),
		migrate.WithLocksTableName(migrationLocksTable),
		// Recorded only once it succeeded, so a failed migration runs again at the next start.
		migrate.WithMarkAppliedOnSuccess(true),
	)
	if err := migrator.Init(ctx); err != nil {
		return fmt.Errorf("create migration tables: %w", err)
	}
	if _, err := migrator.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// getLock waits for the named lock until ctx ends, asking in rounds of lockWaitSeconds.
func getLock(ctx context.Context, conn *sql.Conn, name string) error {
	for {
		var got sql.NullInt64
		if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, ?)", name, lockWaitSeconds).Scan(&got); err != nil {
			return fmt.Errorf("lock %s: %w", name, err)
		}
		if got.Valid && got.Int64 == 1 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("lock %s: another process is migrating: %w", name, err)
		}
		if !got.Valid {
			return fmt.Errorf("lock %s: GET_LOCK returned NULL", name)
		}
	}
}

// lockName is the name of the migration lock of a database.
func lockName(database string) string { return serverLockName("hexapost_migrate:", database) }

// serverLockName is the name of a MySQL named lock: prefix and key, or prefix and a hash of key
// where that would be longer than the 64 characters a lock name may have. Lock names are
// server-wide, so key names what the lock belongs to (a database, a job of a database).
func serverLockName(prefix, key string) string {
	name := prefix + key
	if len(name) <= 64 {
		return name
	}
	sum := sha256.Sum256([]byte(key))
	return prefix + hex.EncodeToString(sum[:16])
}

// knownMigrations returns the migrations of this build.
func knownMigrations() (*migrate.Migrations, error) {
	files, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	migrations := migrate.NewMigrations()
	if err := migrations.Discover(files); err != nil {
		return nil, err
	}
	return migrations, nil
}

// checkSchema returns an error that says what to do unless the database holds every migration
// of this build. A store opened read-only runs none itself.
func checkSchema(ctx context.Context, db *sql.DB) error {
	migrations, err := knownMigrations()
	if err != nil {
		return err
	}
	rows, err := db.QueryContext(ctx, "SELECT name FROM "+migrationsTable)
	if serverError(err) == errNoSuchTable {
		return errors.New("the database has no schema; start a process that opens the store " +
			"read-write (a command server) once to create it")
	}
	if err != nil {
		return fmt.Errorf("read the applied migrations: %w", err)
	}
	defer func() { _ = rows.Close() }()
	applied := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return fmt.Errorf("read the applied migrations: %w", err)
		}
		applied[name] = true
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read the applied migrations: %w", err)
	}
	var missing []string
	for _, m := range migrations.Sorted() {
		if !applied[m.Name] {
			missing = append(missing, m.Name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the schema lacks the migrations %s of this version; start a process of this "+
			"version that opens the store read-write (a command server) once to apply them",
			strings.Join(missing, ", "))
	}
	return nil
}
