// Command ferretdb is a tiny wrapper around the embeddable FerretDB package, the MongoDB wire
// protocol server that test/backends/up.sh runs on top of PostgreSQL, plus a MongoDB client for
// its readiness check. It lives in its own Go module so that FerretDB's many dependencies stay
// out of the main module.
//
//	ferretdb serve [-listen 127.0.0.1:27017] [-postgresql-url postgres://...]
//	ferretdb ping URI                      # runs the ping command; exit 0 when it answers ok
//	ferretdb roundtrip URI                 # inserts one document and finds it again
//
// (`go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.0` does not work, and a plain
// build of cmd/ferretdb panics for want of build/version/version.txt; the embeddable package
// does not need that file.)
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
	"go.mongodb.org/mongo-driver/x/mongo/driver/connstring"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "ping":
		if len(os.Args) != 3 {
			usage()
		}
		err = ping(os.Args[2])
	case "roundtrip":
		if len(os.Args) != 3 {
			usage()
		}
		err = roundtrip(os.Args[2])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: ferretdb serve [-listen ADDR] [-postgresql-url URL] | ping URI | roundtrip URI")
	os.Exit(2)
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:27017", "TCP address to listen on")
	pgURL := fs.String("postgresql-url", "postgres://ferretdb:ferretdb@127.0.0.1:5432/ferretdb", "PostgreSQL URL")
	debug := fs.Bool("debug", false, "debug logging")
	_ = fs.Parse(args)

	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:      ferretdb.ListenerConfig{TCP: *listen},
		Logger:        logger,
		Handler:       "postgresql",
		PostgreSQLURL: *pgURL,
	})
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger.Info("serving", "listen", *listen, "pid", os.Getpid())
	err = f.Run(ctx)
	logger.Info("stopped")
	return err
}

// connect returns a client whose operations fail fast: the readiness check retries it anyway.
func connect(uri string) (*mongo.Client, error) {
	opts := options.Client().ApplyURI(uri).
		SetServerSelectionTimeout(2 * time.Second).
		SetConnectTimeout(2 * time.Second)
	return mongo.Connect(context.Background(), opts)
}

// database is the one the URI names, "test" when it names none.
func database(c *mongo.Client, uri string) *mongo.Database {
	name := "test"
	if cs, err := connstring.ParseAndValidate(uri); err == nil && cs.Database != "" {
		name = cs.Database
	}
	return c.Database(name)
}

func ping(uri string) error {
	// Fail fast when nothing listens: server selection would retry for its whole timeout.
	if cs, err := connstring.ParseAndValidate(uri); err == nil && len(cs.Hosts) > 0 && cs.Scheme == connstring.SchemeMongoDB {
		conn, err := net.DialTimeout("tcp", cs.Hosts[0], time.Second)
		if err != nil {
			return err
		}
		conn.Close()
	}
	c, err := connect(uri)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	defer c.Disconnect(ctx) //nolint:errcheck // best effort

	var res bson.M
	if err := database(c, uri).RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Decode(&res); err != nil {
		return err
	}
	if ok, _ := res["ok"].(float64); ok != 1 {
		return fmt.Errorf("ping answered %v", res)
	}
	return nil
}

func roundtrip(uri string) error {
	c, err := connect(uri)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	defer c.Disconnect(ctx) //nolint:errcheck // best effort

	coll := database(c, uri).Collection("backends_roundtrip")
	id := primitive.NewObjectID()
	stamp := time.Now().UTC().Format(time.RFC3339Nano)
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "at", Value: stamp}}); err != nil {
		return fmt.Errorf("insert: %w", err)
	}
	var got bson.M
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&got); err != nil {
		return fmt.Errorf("find: %w", err)
	}
	if got["at"] != stamp {
		return fmt.Errorf("found %v, want at=%s", got, stamp)
	}
	if _, err := coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}}); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	fmt.Printf("inserted and found %s in %s.%s\n", id.Hex(), coll.Database().Name(), coll.Name())
	return nil
}
