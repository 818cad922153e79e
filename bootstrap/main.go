package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"go.uber.org/dig"
	"go.uber.org/fx"

	"hexapost/api"
	"hexapost/api/servers"
	"hexapost/api/tooling/load"
	"hexapost/core/projection"
	"hexapost/internal/linewriter"
	"hexapost/ports"
)

const usage = `hexapost — CQRS with event sourcing for posts

Usage:
  hexapost [serve]           command server, query server, relay and projector in one process
  hexapost serve command     the command server and the relay only
  hexapost serve query       the query server and the projector only
  hexapost openapi [--json]  print the OpenAPI document of both servers
  hexapost rebuild           rebuild the MongoDB read model from the MySQL event store, live
  hexapost verify [--repair] compare the MongoDB read model with the MySQL event store and print
                             the posts that differ (exit 1 if any); --repair re-projects them
  hexapost bench [flags]     load running servers and report throughput and latency (-h: flags)
  hexapost version           print the build's version, revision and Go version

Configuration is read from POSTS_* environment variables: hexapost <command> --help lists them.
`

// Main runs the command line given in args (without the program name) and returns the exit
// code: 0 on success and after a graceful stop, 1 when the process could not start or stop
// cleanly, 2 for a usage error.
func Main(args []string, environ []string, stdout, stderr io.Writer) int {
	if name, ok := helpRequest(args); ok {
		if h, ok := subcommandHelp()[name]; ok {
			h.write(stdout)
			return 0
		}
		if name == "bench" {
			return load.Main([]string{"-h"}, stdout, stderr)
		}
	}
	switch {
	case len(args) == 0 || args[0] == "serve":
		r, err := parseRoles(args)
		if err != nil {
			fmt.Fprintf(stderr, "hexapost: %v\n\n%s", err, usage)
			return 2
		}
		return serve(r, environ, stderr)
	case args[0] == "rebuild" && len(args) == 1:
		return rebuild(environ, stderr)
	case args[0] == "verify" && (len(args) == 1 || len(args) == 2 && args[1] == "--repair"):
		return verify(environ, len(args) == 2, stdout, stderr)
	case args[0] == "bench":
		return load.Main(args[1:], stdout, stderr)
	case args[0] == "openapi":
		return printSpec(args[1:], environ, stdout, stderr)
	case len(args) == 1 && (args[0] == "version" || args[0] == "--version"):
		version, revision, goVersion := build()
		fmt.Fprintf(stdout, "hexapost %s (revision %s, %s)\n", version, revision, goVersion)
		return 0
	case args[0] == "help" || args[0] == "-h" || args[0] == "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "hexapost: unknown command %q\n\n%s", strings.Join(args, " "), usage)
	return 2
}

func parseRoles(args []string) (roles, error) {
	if len(args) <= 1 {
		return roles{Command: true, Query: true}, nil
	}
	if len(args) == 2 {
		switch args[1] {
		case "command":
			return roles{Command: true}, nil
		case "query":
			return roles{Query: true}, nil
		}
	}
	return roles{}, fmt.Errorf("unknown serve mode %q (want command or query)", strings.Join(args[1:], " "))
}

func serve(r roles, environ []string, stderr io.Writer) int {
	cfg, err := loadConfig(environ)
	if err != nil {
		fatal(stderr, environ, "configuration", err)
		return 1
	}
	// Log lines go out in as few writes as the load allows (see linewriter.Writer); the process's
	// other messages take the same way, so they keep their place among the lines.
	lines := linewriter.New(stderr, linewriter.Linger)
	defer func() { _ = lines.Close() }()
	stderr = lines
	log := newLogger(cfg, stderr)
	log.Info("configuration", effective(environ)...)
	// Signals are caught from here on, not only once Start returns: the servers listen before
	// it does, and a SIGTERM in between must stop them gracefully too, not kill the process.
	early := make(chan os.Signal, 1)
	signal.Notify(early, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(early)
	app, err := newApp(cfg, r, log)
	if err != nil {
		fatal(stderr, environ, "", err)
		return 1
	}
	startCtx, cancel := context.WithTimeout(context.Background(), app.StartTimeout())
	defer cancel()
	if err := app.Start(startCtx); err != nil {
		fatal(stderr, environ, "start", err)
		return 1
	}
	var sig fx.ShutdownSignal
	select {
	case s := <-early:
		sig = fx.ShutdownSignal{Signal: s}
	case sig = <-app.Wait():
	}
	log.Info("shutting down", "signal", sig.Signal.String(), "timeout", cfg.ShutdownTimeout)
	stopCtx, cancelStop := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancelStop()
	if err := app.Stop(stopCtx); err != nil {
		log.Error("unclean shutdown", "error", err)
		return 1
	}
	log.Info("stopped")
	return sig.ExitCode
}

func printSpec(args []string, environ []string, stdout, stderr io.Writer) int {
	cfg, err := loadConfig(environ)
	if err != nil {
		fatal(stderr, environ, "configuration", err)
		return 1
	}
	version, _, _ := build()
	doc := servers.Spec(version, api.ServerURL(cfg.CommandAddr), api.ServerURL(cfg.QueryAddr))
	var out []byte
	switch {
	case len(args) == 0:
		out, err = doc.YAML()
	case len(args) == 1 && args[0] == "--json":
		out, err = doc.MarshalJSON()
	default:
		fmt.Fprintf(stderr, "hexapost: openapi takes only --json\n")
		return 2
	}
	if err == nil {
		_, err = stdout.Write(out)
	}
	if err != nil {
		fmt.Fprintf(stderr, "hexapost: openapi: %v\n", err)
		return 1
	}
	return 0
}

func newLogger(cfg config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel)) // validated by loadConfig
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// fatal reports the error that ends the process as "hexapost: stage: error" (without a stage,
// "hexapost: error"), or with POSTS_LOG_FORMAT=json as a JSON line like the log's, whose msg is
// the same words and whose error is the error. It reads the format from environ alone, so that
// a configuration that is invalid otherwise is still reported in the format asked for.
func fatal(w io.Writer, environ []string, stage string, err error) {
	msg := "hexapost"
	if stage != "" {
		msg += ": " + stage
	}
	if strings.TrimSpace(environMap(environ)["POSTS_LOG_FORMAT"]) != "json" {
		fmt.Fprintf(w, "%s: %v\n", msg, err)
		return
	}
	slog.New(slog.NewJSONHandler(w, nil)).Error(msg, "error", err.Error())
}

// errNotAvailable marks adapter choices that are valid names but not built into this version.
var errNotAvailable = errors.New("is not available in this version of hexapost")

// newApp assembles the process for the given roles; the error names the variable at fault.
func newApp(cfg config, r roles, log *slog.Logger) (*fx.App, error) {
	opt, err := options(cfg, r, log)
	if err != nil {
		return nil, err
	}
	app := fx.New(opt)
	if err := app.Err(); err != nil {
		// The constructor's own error says what is wrong; fx's chain of who needed it does not.
		return nil, dig.RootCause(err)
	}
	return app, nil
}

// rebuild recreates the read model from the event store while the servers keep running: it
// fills the next generation of the read model, switches every process to it, and catches up.
func rebuild(environ []string, stderr io.Writer) int {
	var (
		events  ports.StreamReader
		rebuild ports.ViewRebuilder
		live    ports.ViewWriter
	)
	return tool("rebuild", environ, stderr, func(cfg config, _ *slog.Logger) (fx.Option, error) {
		return eventStoreOption(cfg)
	}, func(ctx context.Context, log *slog.Logger) int {
		begin := time.Now()
		n, m, err := projection.Rebuild(ctx, events, rebuild, live, log)
		if err != nil {
			fatal(stderr, environ, "", err)
			return 1
		}
		log.Info("read model rebuilt", "events", n, "catch_up_events", m, "took", time.Since(begin))
		return 0
	}, &events, &rebuild, &live)
}

// tool runs a subcommand that works on the MySQL event store and the MongoDB read model of a
// running deployment: it assembles the store (as store gives it) and the read model, fills
// targets from them, starts them, and runs do until it returns or a signal ends its context.
// It returns do's exit code, or 1 when the backends could not be set up.
func tool(name string, environ []string, stderr io.Writer, store func(config, *slog.Logger) (fx.Option, error),
	do func(ctx context.Context, log *slog.Logger) int, targets ...any) int {
	cfg, err := loadConfig(environ)
	if err != nil {
		fatal(stderr, environ, "configuration", err)
		return 1
	}
	if cfg.EventStore != "mysql" || cfg.ReadModel != "mongo" {
		fatal(stderr, environ, "", fmt.Errorf("%s needs POSTS_EVENT_STORE=mysql and POSTS_READ_MODEL=mongo "+
			"(an in-memory read model is rebuilt at every start)", name))
		return 1
	}
	log := newLogger(cfg, stderr)
	storeOpt, err := store(cfg, log)
	if err != nil {
		fatal(stderr, environ, "", err)
		return 1
	}
	views, err := readModelOption(cfg)
	if err != nil {
		fatal(stderr, environ, "", err)
		return 1
	}
	app := fx.New(fx.Supply(cfg), fx.Supply(log), quietFx(), storeOpt, views, fx.Populate(targets...))
	if err := app.Err(); err != nil {
		fatal(stderr, environ, "", dig.RootCause(err))
		return 1
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		fatal(stderr, environ, "start", err)
		return 1
	}
	defer func() { _ = app.Stop(context.Background()) }()
	return do(ctx, log)
}

// build returns the version of the build (its module version, "(devel)" for a build from a
// work tree), the VCS revision it recorded ("unknown" when it recorded none) and its Go version.
func build() (version, revision, goVersion string) {
	version, revision, goVersion = "(devel)", "unknown", runtime.Version()
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return version, revision, goVersion
	}
	if info.Main.Version != "" {
		version = info.Main.Version
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" {
			revision = s.Value
		}
	}
	return version, revision, info.GoVersion
}
