package bootstrap

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/fx"

	"hexapost/adapters/memory"
	"hexapost/adapters/mongo"
	"hexapost/adapters/mysql"
	"hexapost/adapters/nats"
	"hexapost/adapters/otel"
	"hexapost/adapters/postlock"
	"hexapost/adapters/prometheus"
	"hexapost/adapters/redis"
	"hexapost/adapters/statecache"
	"hexapost/adapters/wakeup"
	"hexapost/api"
	"hexapost/api/commandapi"
	"hexapost/api/queryapi"
	"hexapost/api/servers"
	"hexapost/core/command"
	"hexapost/core/projection"
	"hexapost/core/query"
	"hexapost/ports"
)

// roles says which halves of hexapost a process runs.
type roles struct {
	// Command runs the command server and the outbox relay.
	Command bool
	// Query runs the query server and the projector.
	Query bool
}

// options returns the whole process as one fx.Option: one option per adapter flag, then the
// roles' workers and servers. Workers start before servers, so they stop after them: the
// servers stop taking requests first, together, then the relay and the projector finish what
// they hold.
func options(cfg config, r roles, log *slog.Logger) (fx.Option, error) {
	if !r.Command && !r.Query {
		return nil, errors.New("no role to run")
	}
	if cfg.Bus == "memory" && (!r.Command || !r.Query) {
		return nil, fmt.Errorf("POSTS_BUS=memory connects only servers in one process; " +
			"to run `serve command` and `serve query` as separate processes set POSTS_BUS to redis or nats")
	}
	opts := []fx.Option{
		fx.Supply(cfg, r),
		fx.Supply(log),
		quietFx(),
		fx.StartTimeout(30 * time.Second),
		fx.StopTimeout(cfg.ShutdownTimeout),
		metricsOption(r),
		tracingOption(cfg, r),
	}
	bus, err := busOption(cfg)
	if err != nil {
		return nil, err
	}
	opts = append(opts, bus)
	// The order of the invokes is the order of the start hooks; the stop hooks run in reverse.
	// So at stop the servers go first, both at once (no new requests, the ones in hand
	// answered), then the relay, which may still publish what the last commands appended, and
	// the projector last, which can then still apply it; the adapters close after them.
	if r.Query {
		views, err := readModelOption(cfg)
		if err != nil {
			return nil, err
		}
		access, err := storeAccessOption(cfg, r, log)
		if err != nil {
			return nil, err
		}
		opts = append(opts, views, access)
		if r.Command && (cfg.ReadModel == "memory" || cfg.Bus == "memory") {
			// An in-memory read model starts empty: fill it from the event store before the
			// query server answers, or a restart would hide every post written before it. With
			// the in-memory bus, changes the relay handed over but the projector had not applied
			// are gone with the process: catch a durable read model up the same way (the
			// projector ignores what it has already).
			opts = append(opts, fx.Invoke(replayOnStart))
		}
		opts = append(opts, querySide(cfg))
	}
	if r.Command {
		store, err := eventStoreOption(cfg)
		if err != nil {
			return nil, err
		}
		opts = append(opts, store, stateCacheOption(cfg), commandSide(cfg))
	}
	opts = append(opts, fx.Provide(func() *httpServers { return &httpServers{} }))
	// The query server listens first: the Location of the first post created leads to it.
	if r.Query {
		opts = append(opts, fx.Invoke(runQueryServer))
	}
	if r.Command {
		opts = append(opts, fx.Invoke(runCommandServer))
	}
	return fx.Options(opts...), nil
}

// checkOf provides the adapter of type T as a readiness check in the "checks" group.
func checkOf[T ports.Pinger](name string) any {
	return fx.Annotate(func(p T) api.Check { return api.Check{Name: name, Ping: p.Ping} },
		fx.ResultTags(`group:"checks"`))
}

func eventStoreOption(cfg config) (fx.Option, error) {
	switch cfg.EventStore {
	case "memory":
		return fx.Module("event-store",
			fx.Provide(
				func() *memory.EventStore { return memory.NewEventStore(memory.EventStoreConfig{}) },
				func(s *memory.EventStore) (ports.EventStore, ports.Outbox, ports.OutboxStats, ports.IdempotencyStore) {
					return s, s, s, s
				},
				func(s *memory.EventStore) ports.StreamReader { return s },
				func(s *memory.EventStore) (ports.StreamHeads, ports.Locker, ports.AuthorPosts) { return s, s, s },
				checkOf[*memory.EventStore]("event_store"),
			)), nil
	case "mysql":
		if cfg.MySQLDSN == "" {
			return nil, errors.New("POSTS_EVENT_STORE=mysql needs POSTS_MYSQL_DSN, e.g. " +
				"user:password@tcp(127.0.0.1:3306)/hexapost?parseTime=true&interpolateParams=true")
		}
		return fx.Module("event-store",
			fx.Provide(
				func(lc fx.Lifecycle, log *slog.Logger) (*mysql.EventStore, error) {
					s, err := mysql.Open(context.Background(), mysql.Config{DSN: cfg.MySQLDSN, Log: log})
					if err != nil {
						return nil, fmt.Errorf("POSTS_MYSQL_DSN: %w", err)
					}
					lc.Append(fx.StopHook(s.Close))
					return s, nil
				},
				func(s *mysql.EventStore) (ports.EventStore, ports.Outbox, ports.OutboxStats, ports.IdempotencyStore) {
					return s, s, s, s
				},
				func(s *mysql.EventStore) ports.StreamReader { return s },
				func(s *mysql.EventStore) (ports.StreamHeads, ports.Locker, ports.AuthorPosts) { return s, s, s },
				checkOf[*mysql.EventStore]("event_store"),
			)), nil
	}
	return nil, fmt.Errorf("POSTS_EVENT_STORE=%s %w", cfg.EventStore, errNotAvailable)
}

func busOption(cfg config) (fx.Option, error) {
	switch cfg.Bus {
	case "memory":
		return fx.Module("bus",
			fx.Provide(
				func(log *slog.Logger, o *deliveryObserver) *memory.Bus {
					return memory.NewBus(memory.BusConfig{
						MaxAttempts: cfg.MaxAttempts, Backoff: cfg.RetryBackoff, Log: log, Observer: o,
					})
				},
				func() *memory.Feed { return memory.NewFeed(cfg.ChangesRetain) },
				func(b *memory.Bus, f *memory.Feed) (ports.Publisher, ports.Subscriber, ports.DeadLetters, ports.ChangeFeed, ports.BusEraser) {
					return f.Publisher(b), b, b, f, f.Eraser(b)
				},
				checkOf[*memory.Bus]("bus"),
			)), nil
	case "redis":
		if cfg.RedisURL == "" {
			return nil, errors.New("POSTS_BUS=redis needs POSTS_REDIS_URL, e.g. redis://127.0.0.1:6379/0")
		}
		return fx.Module("bus",
			fx.Provide(
				func(lc fx.Lifecycle, log *slog.Logger, o *deliveryObserver) (*redis.Bus, error) {
					b, err := redis.Open(context.Background(), redis.Config{
						URL: cfg.RedisURL, Group: cfg.ConsumerGroup, MaxLen: cfg.RedisMaxLen, MaxAttempts: cfg.MaxAttempts,
						Backoff: cfg.RetryBackoff, Log: log, Observer: o,
					})
					if err != nil {
						return nil, fmt.Errorf("POSTS_REDIS_URL: %w", err)
					}
					lc.Append(fx.StopHook(b.Close))
					return b, nil
				},
				func(b *redis.Bus) (ports.Publisher, ports.Subscriber, ports.DeadLetters, ports.ChangeFeed, ports.BusEraser) {
					return b, b, b, b, b
				},
				checkOf[*redis.Bus]("bus"),
			)), nil
	case "nats":
		if cfg.NATSURL == "" {
			return nil, errors.New("POSTS_BUS=nats needs POSTS_NATS_URL, e.g. nats://127.0.0.1:4222")
		}
		return fx.Module("bus",
			fx.Provide(
				func(lc fx.Lifecycle, log *slog.Logger, o *deliveryObserver) (*nats.Bus, error) {
					b, err := nats.Open(context.Background(), nats.Config{
						URL: cfg.NATSURL, Durable: cfg.ConsumerGroup, MaxMsgs: cfg.NATSMaxMsgs, MaxAttempts: cfg.MaxAttempts,
						Backoff: cfg.RetryBackoff, Log: log, Observer: o,
					})
					if err != nil {
						return nil, fmt.Errorf("POSTS_NATS_URL: %w", err)
					}
					lc.Append(fx.StopHook(b.Close))
					return b, nil
				},
				func(b *nats.Bus) (ports.Publisher, ports.Subscriber, ports.DeadLetters, ports.ChangeFeed, ports.BusEraser) {
					return b, b, b, b, b
				},
				checkOf[*nats.Bus]("bus"),
			)), nil
	}
	return nil, fmt.Errorf("POSTS_BUS=%s %w", cfg.Bus, errNotAvailable)
}

func readModelOption(cfg config) (fx.Option, error) {
	switch cfg.ReadModel {
	case "memory":
		return fx.Module("read-model",
			fx.Provide(
				memory.NewViews,
				func(v *memory.Views) (ports.ViewWriter, ports.ViewReader, ports.ViewVersions) { return v, v, v },
				checkOf[*memory.Views]("read_model"),
			)), nil
	case "mongo":
		if cfg.MongoURI == "" {
			return nil, errors.New("POSTS_READ_MODEL=mongo needs POSTS_MONGO_URI, e.g. mongodb://127.0.0.1:27017/hexapost")
		}
		return fx.Module("read-model",
			fx.Provide(
				func(lc fx.Lifecycle, log *slog.Logger) (*mongo.Views, error) {
					atomic := map[string]mongo.Atomicity{"auto": mongo.Detect, "on": mongo.Atomic, "off": mongo.NotAtomic}
					v, err := mongo.Open(context.Background(), mongo.Config{URI: cfg.MongoURI, Log: log,
						AtomicReplace: atomic[cfg.MongoAtomicReplace]})
					if err != nil {
						return nil, fmt.Errorf("POSTS_MONGO_URI: %w", err)
					}
					lc.Append(fx.StopHook(v.Close))
					return v, nil
				},
				func(v *mongo.Views) (ports.ViewWriter, ports.ViewReader, ports.ViewRebuilder, ports.ViewVersions) {
					return v, v, v, v
				},
				checkOf[*mongo.Views]("read_model"),
			)), nil
	}
	return nil, fmt.Errorf("POSTS_READ_MODEL=%s %w", cfg.ReadModel, errNotAvailable)
}

// commandSide is the command server's module. The post lock decorates the post store within
// it, so that it is in front of whatever the root made of it and holds back every Load.
func commandSide(cfg config) fx.Option {
	return fx.Module("command",
		fx.Provide(
			newPostStore,
			newCommandService,
			newCommandHandler,
			newErasures,
		),
		postLockOption(cfg),
		fx.Invoke(runRelay),
	)
}

// readRecheck is how often a read waiting for a version reads the view again when nothing
// told it of a change: the plain path, and the way to see changes other processes project.
// Behind the wake-up, which tells of this process's own writes at once, a read looks again only
// every second: every waiting read looking every 50 ms loaded a read model that was falling
// behind with reads of its own, so it fell further behind.
func readRecheck(cfg config) time.Duration {
	if cfg.ReadWakeup {
		return time.Second
	}
	return 50 * time.Millisecond
}

// querySide is the query server's module. The wake-up decorates the view ports within it, so
// that it wraps whatever the root made of them.
func querySide(cfg config) fx.Option {
	return fx.Module("query",
		readWakeupOption(cfg),
		fx.Provide(
			projection.NewProjector,
			func() ports.ViewChanges { return query.Recheck{Every: readRecheck(cfg)} },
			func(v ports.ViewReader, c ports.ViewChanges) *query.Reader {
				return query.NewReader(v, c, cfg.ReadWait)
			},
			queryapi.NewHandler,
			func(f ports.ChangeFeed, log *slog.Logger) *query.Changes {
				return query.NewChanges(f, query.ChangesConfig{Buffer: cfg.ChangesBuffer, Log: log})
			},
			func(c *query.Changes) queryapi.Feed { return queryapi.NewFeed(c, cfg.ChangesHeartbeat) },
		),
		fx.Invoke(runChanges),
		fx.Invoke(func(m *prometheus.Metrics, c *query.Changes) error { return m.RegisterChanges(c.Stats) }),
		fx.Invoke(runProjector),
		// After the projector, so that it stops first.
		fx.Invoke(runReconciler),
	)
}

func newPostStore(store ports.EventStore, m *prometheus.Metrics, t *otel.Tracing) ports.PostStore {
	return command.NewStreams(m.EventStore(t.EventStore(store)))
}

// readWakeupOption, with POSTS_READ_WAKEUP=on, wakes a read waiting for a version as soon as
// this process's projector writes the post, instead of at its next recheck.
func readWakeupOption(cfg config) fx.Option {
	if !cfg.ReadWakeup {
		return fx.Options()
	}
	return fx.Options(
		fx.Provide(wakeup.New),
		fx.Decorate(func(s *wakeup.Signal, w ports.ViewWriter) ports.ViewWriter { return s.Writer(w) }),
		fx.Decorate(func(s *wakeup.Signal, c ports.ViewChanges) ports.ViewChanges { return s.Changes(c) }),
	)
}

// postLockOption makes the commands on one post in this process take turns
// (POSTS_POST_LOCK), so that they queue instead of colliding at the append.
func postLockOption(cfg config) fx.Option {
	if !cfg.PostLock {
		return fx.Options()
	}
	return fx.Decorate(func(s ports.PostStore) ports.PostStore { return postlock.New(s) })
}

// stateCacheOption keeps the states of the posts commanded recently in front of the post store
// (POSTS_STATE_CACHE), so that a command on a long stream reads only what followed them.
func stateCacheOption(cfg config) fx.Option {
	if !cfg.StateCache {
		return fx.Options()
	}
	return fx.Decorate(func(next ports.PostStore, store ports.EventStore, t *otel.Tracing) ports.PostStore {
		return statecache.New(next, t.EventStore(store), statecache.Config{})
	})
}

func newCommandService(posts ports.PostStore, keys ports.IdempotencyStore, log *slog.Logger) *command.Service {
	return command.NewService(posts, keys, newID, time.Now, log, command.Config{})
}

func newCommandHandler(svc *command.Service, m *prometheus.Metrics, log *slog.Logger, cfg config,
	s *httpServers) *commandapi.Handler {
	return commandapi.NewHandler(svc, log, func(command string, o api.Outcome, took time.Duration) {
		m.ObserveCommand(command, string(o), took)
	}, commandapi.Config{
		RequireIfMatch: cfg.RequireIfMatch,
		// POSTS_QUERY_URL, else the query server of this process where it listens, else none.
		QueryURL: func() string { return cmp.Or(cfg.QueryURL, s.url("query")) },
	})
}

// newID returns a UUIDv7: unique, and ordered by creation time, which keeps index inserts local.
// The hexapost binary draws its random bits from uuid's pool (main enables it).
func newID() string {
	return uuid.Must(uuid.NewV7()).String()
}

// worker runs fn in a goroutine from start to stop; stop cancels it and waits for it to return.
func worker(lc fx.Lifecycle, fn func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error {
			go func() {
				defer close(done)
				fn(ctx)
			}()
			return nil
		},
		OnStop: func(stop context.Context) error {
			cancel()
			select {
			case <-done:
				return nil
			case <-stop.Done():
				return fmt.Errorf("worker did not stop in time: %w", stop.Err())
			}
		},
	})
}

// runRelay runs the outbox relay.
func runRelay(lc fx.Lifecycle, outbox ports.Outbox, pub ports.Publisher, m *prometheus.Metrics, t *otel.Tracing,
	log *slog.Logger) {
	relay := command.NewRelay(outbox, m.Publisher(t.Publisher(pub)), log, command.RelayConfig{})
	worker(lc, func(ctx context.Context) {
		log.Info("relay started")
		relay.Run(ctx)
		log.Info("relay stopped")
	})
}

func runProjector(lc fx.Lifecycle, sub ports.Subscriber, p *projection.Projector, m *prometheus.Metrics, t *otel.Tracing,
	log *slog.Logger) {
	worker(lc, func(ctx context.Context) {
		log.Info("projector started")
		if err := sub.Subscribe(ctx, t.Projection(m.Projection(p.ApplyWaiting))); err != nil {
			log.Error("projector stopped with an error", "error", err)
			return
		}
		log.Info("projector stopped")
	})
}

// runChanges tails the bus for GET /changes.
func runChanges(lc fx.Lifecycle, c *query.Changes) {
	worker(lc, c.Run)
}

func replayOnStart(lc fx.Lifecycle, events ports.StreamReader, p *projection.Projector, log *slog.Logger) {
	lc.Append(fx.Hook{OnStart: func(ctx context.Context) error {
		begin := time.Now()
		n, err := projection.Replay(ctx, events, p.Quiet())
		if err != nil {
			return fmt.Errorf("replay the event store into the read model: %w", err)
		}
		log.Info("read model caught up with the event store", "events", n, "took", time.Since(begin))
		return nil
	}})
}

type serverParams struct {
	fx.In
	LC      fx.Lifecycle
	Servers *httpServers
	Cfg     config
	Roles   roles
	Log     *slog.Logger
	Metrics *prometheus.Metrics
	HTTP    *api.HTTPMetrics
	Tracer  trace.TracerProvider
	Checks  []api.Check `group:"checks"`
}

func (p serverParams) operations() api.Operations {
	spec := sync.OnceValue(func() *huma.OpenAPI {
		version, _, _ := build()
		return servers.Spec(version, api.ServerURL(p.Cfg.CommandAddr), api.ServerURL(p.Cfg.QueryAddr))
	})
	return api.Operations{Checks: observedChecks(p.Metrics, p.Checks), Metrics: p.Metrics, Spec: spec}
}

// cors allows the origins configured, or else the bundled docs of both servers.
func (p serverParams) cors() api.CORS {
	c := api.CORS{Origins: p.Cfg.CORSOrigins}
	for _, addr := range []string{p.Cfg.CommandAddr, p.Cfg.QueryAddr} {
		if _, port, err := net.SplitHostPort(addr); err == nil {
			c.Ports = append(c.Ports, port)
		}
	}
	return c
}

func runCommandServer(p serverParams, h *commandapi.Handler, e *commandapi.Erasures) error {
	mux := http.NewServeMux()
	servers.CommandWithErasures(mux, h, p.operations(), adminOf(p.Cfg), e)
	listen(p, "command", "POSTS_COMMAND_ADDR", p.Cfg.CommandAddr, mux)
	return nil
}

func runQueryServer(p serverParams, h *queryapi.Handler, reader *query.Reader, changes *query.Changes) error {
	ops := p.operations()
	if p.Roles.Command {
		// One registry holds the metrics of both servers: served on both, a Prometheus scraping
		// both would count every event twice.
		ops.MetricsAt = func() string { return cmp.Or(p.Servers.url("command"), api.ServerURL(p.Cfg.CommandAddr)) + "/metrics" }
	}
	mux := http.NewServeMux()
	servers.Query(mux, h, ops, adminOf(p.Cfg))
	srv := listen(p, "query", "POSTS_QUERY_ADDR", p.Cfg.QueryAddr, mux)
	// A read waiting for min_version would hold the shutdown up for up to POSTS_READ_WAIT, which
	// may be longer than POSTS_SHUTDOWN_TIMEOUT: it answers at once instead (503, Retry-After).
	srv.RegisterOnShutdown(reader.Drain)
	// A GET /changes stream never ends on its own: end them all, each client resumes elsewhere.
	srv.RegisterOnShutdown(changes.Drain)
	return nil
}

// listen binds addr when the app starts, so a taken port fails the start, and shuts the server
// down gracefully when it stops, with the process's other server: no new connections, the
// requests in hand finished.
func listen(p serverParams, name, variable, addr string, mux *http.ServeMux) *http.Server {
	handler := p.HTTP.Wrap(name, p.cors().Wrap(mux))
	if p.Cfg.AccessLog {
		handler = api.AccessLog(p.Log, name, handler)
	}
	srv := &http.Server{
		Handler:           api.Traced(p.Tracer, name, api.RequestIDs(handler)),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      p.Cfg.ReadWait + 30*time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(p.Log.Handler(), slog.LevelWarn),
	}
	p.LC.Append(fx.Hook{
		OnStart: func(context.Context) error {
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("%s server cannot listen on %s=%s: %w", name, variable, addr, err)
			}
			url := api.ServerURL(ln.Addr().String())
			p.Servers.urls.Store(name, url)
			p.Log.Info(name+" server listening", "server", name, "url", url, "docs", url+"/docs")
			go func() {
				if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
					p.Log.Error(name+" server failed", "error", err)
				}
			}()
			p.Servers.add(name, srv)
			return nil
		},
		OnStop: func(ctx context.Context) error {
			return p.Servers.shutdown(ctx, p.Log)
		},
	})
	return srv
}

// httpServers shuts the started servers of a process down together: in one process the
// command server must not keep taking commands while the query server drains, nor the other
// way round, and both drains share one POSTS_SHUTDOWN_TIMEOUT.
type httpServers struct {
	mu      sync.Mutex
	started map[string]*http.Server
	done    bool
	// urls holds the URL each server listens at, by name, once it does; apart from mu, which
	// a shutdown holds while requests finish.
	urls sync.Map
}

// url returns the URL the named server of this process listens at, or "" before it does.
func (s *httpServers) url(name string) string {
	u, _ := s.urls.Load(name)
	str, _ := u.(string)
	return str
}

func (s *httpServers) add(name string, srv *http.Server) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started == nil {
		s.started = map[string]*http.Server{}
	}
	s.started[name] = srv
}

// shutdown stops every started server at once and waits for their drains; the stop hook of
// each server calls it, and the first call does the work.
func (s *httpServers) shutdown(ctx context.Context, log *slog.Logger) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return nil
	}
	s.done = true
	var (
		wg   sync.WaitGroup
		errs = make(chan error, len(s.started))
	)
	for name, srv := range s.started {
		log.Info(name+" server stopping", "server", name)
		wg.Go(func() {
			if err := srv.Shutdown(ctx); err != nil {
				errs <- fmt.Errorf("%s server: %w", name, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

// quietFx keeps fx's own events (each constructor provided, each hook run) out of the log, at
// every level: they tell how the process is wired, which the code says. What fails is returned
// by fx.New, Start or Stop, and Main reports it once.
func quietFx() fx.Option { return fx.NopLogger }
