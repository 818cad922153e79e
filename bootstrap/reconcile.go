package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"go.uber.org/fx"

	"hexapost/adapters/mysql"
	"hexapost/adapters/prometheus"
	"hexapost/core/projection"
	"hexapost/ports"
)

// storeReader is what the reconciler reads of the event store.
type storeReader struct {
	heads  ports.StreamHeads
	events ports.EventLoader
	locker ports.Locker
	close  func()
}

// storeAccess opens the event store for the reconciler. A process that cannot read the store
// has none, and why says why.
type storeAccess struct {
	open func(ctx context.Context) (storeReader, error)
	why  string
}

// storeAccessOption gives the query side its way to the event store: the process's own store
// when it runs the command side too, the MySQL store opened read-only when it runs alone, and
// none with the in-memory store, which lives in the command process.
func storeAccessOption(cfg config, r roles, log *slog.Logger) (fx.Option, error) {
	switch {
	case r.Command:
		return fx.Provide(func(heads ports.StreamHeads, events ports.EventStore, locker ports.Locker) storeAccess {
			return storeAccess{open: func(context.Context) (storeReader, error) {
				return storeReader{heads: heads, events: events, locker: locker, close: func() {}}, nil
			}}
		}), nil
	case cfg.EventStore == "mysql":
		if cfg.MySQLDSN == "" {
			return nil, errors.New("POSTS_EVENT_STORE=mysql needs POSTS_MYSQL_DSN, which a query server reads " +
				"(read-only) to reconcile its read model")
		}
		return fx.Supply(storeAccess{open: openReadOnly(cfg, log)}), nil
	}
	return fx.Supply(storeAccess{why: "POSTS_EVENT_STORE=" + cfg.EventStore +
		" lives in the command process; set POSTS_EVENT_STORE=mysql on query servers to reconcile"}), nil
}

// readOnlyStart bounds the opening of the store read-only: a query server that cannot read it
// runs anyway, and tries again at the next interval.
const readOnlyStart = 10 * time.Second

// openReadOnly opens the MySQL event store for reading only: no migrations.
func openReadOnly(cfg config, log *slog.Logger) func(ctx context.Context) (storeReader, error) {
	return func(ctx context.Context) (storeReader, error) {
		s, err := mysql.Open(ctx, mysql.Config{DSN: cfg.MySQLDSN, Log: log, ReadOnly: true, StartTimeout: readOnlyStart})
		if err != nil {
			return storeReader{}, fmt.Errorf("POSTS_MYSQL_DSN: %w", err)
		}
		return storeReader{heads: s, events: s, locker: s, close: func() { _ = s.Close() }}, nil
	}
}

// deliveryObserver counts what the buses report and, when a bus lost changes, has the
// reconciler pass at once rather than at its next interval.
type deliveryObserver struct {
	*prometheus.Metrics
	reconciler atomic.Pointer[projection.Reconciler]
}

var _ ports.DeliveryObserver = (*deliveryObserver)(nil)

func newDeliveryObserver(m *prometheus.Metrics) *deliveryObserver {
	return &deliveryObserver{Metrics: m}
}

// Lost counts the loss and triggers a reconciliation.
func (o *deliveryObserver) Lost(c ports.LossCause) {
	o.Metrics.Lost(c)
	if r := o.reconciler.Load(); r != nil {
		r.Trigger()
	}
}

// runReconciler runs the reconciler of the query side as a worker. While the process cannot
// read the event store it says so once, exports hexapost_reconcile_enabled 0 and, if the store
// may come within reach, tries again every interval.
func runReconciler(lc fx.Lifecycle, cfg config, access storeAccess, views ports.ViewVersions, p *projection.Projector,
	obs *deliveryObserver, m *prometheus.Metrics, log *slog.Logger) {
	m.ReconcileEnabled(false)
	switch {
	case cfg.ReconcileInterval == 0:
		log.Warn("reconciliation is off (POSTS_RECONCILE_INTERVAL=off): drift of the read model from the event " +
			"store will not be repaired")
		return
	case access.open == nil:
		log.Warn("drift of the read model from the event store will not be repaired: this process cannot read the " +
			"event store: " + access.why)
		return
	}
	worker(lc, func(ctx context.Context) {
		store, ok := openWhenReachable(ctx, cfg, access, log)
		if !ok {
			return
		}
		defer store.close()
		r := projection.NewReconciler(store.heads, store.events, views, store.locker, p.Quiet(), log, m,
			projection.ReconcileConfig{Interval: cfg.ReconcileInterval, Grace: cfg.ReconcileGrace,
				LockName: "hexapost-reconcile-" + cfg.ConsumerGroup})
		obs.reconciler.Store(r)
		m.ReconcileEnabled(true)
		r.Run(ctx)
	})
}

// openWhenReachable opens the store, trying again every interval until it can or ctx ends.
func openWhenReachable(ctx context.Context, cfg config, access storeAccess, log *slog.Logger) (storeReader, bool) {
	for failed := false; ; failed = true {
		store, err := access.open(ctx)
		if err == nil {
			if failed {
				log.Info("the event store is readable again: reconciliation enabled")
			}
			return store, true
		}
		if !failed && ctx.Err() == nil {
			log.Warn("drift of the read model from the event store will not be repaired until the event store "+
				"can be read", "retry_every", cfg.ReconcileInterval, "error", err)
		}
		select {
		case <-ctx.Done():
			return storeReader{}, false
		case <-time.After(cfg.ReconcileInterval):
		}
	}
}

// verify compares the read model with the event store and prints what differs; with repair it
// re-projects that and compares again. It exits 1 when anything differs at the end.
func verify(environ []string, repair bool, stdout, stderr io.Writer) int {
	var (
		store    storeReader
		versions ports.ViewVersions
		reader   ports.ViewReader
		writer   ports.ViewWriter
		cfg      config
	)
	return tool("verify", environ, stderr, readOnlyStoreOption, func(ctx context.Context, log *slog.Logger) int {
		// Run by hand, the comparison may take as long as a large read model needs: an hour.
		r := projection.NewReconciler(store.heads, store.events, versions, store.locker,
			projection.NewProjector(writer, log).Quiet(), log, nil,
			projection.ReconcileConfig{Interval: time.Hour, Grace: cfg.ReconcileGrace})
		posts, differ, err := r.Verify(ctx, reader, stdout, repair)
		switch {
		case err != nil:
			fatal(stderr, environ, "verify", err)
			return 1
		case differ > 0 && repair:
			fmt.Fprintf(stdout, "%d of %d posts still differ from the event store\n", differ, posts)
			return 1
		case differ > 0:
			fmt.Fprintf(stdout, "%d of %d posts differ from the event store; hexapost verify --repair re-projects them\n",
				differ, posts)
			return 1
		}
		fmt.Fprintf(stdout, "the read model matches the event store: %d posts\n", posts)
		return 0
	}, &store, &versions, &reader, &writer, &cfg)
}

// readOnlyStoreOption provides the MySQL event store opened read-only, for what only reads it.
func readOnlyStoreOption(cfg config, log *slog.Logger) (fx.Option, error) {
	if cfg.MySQLDSN == "" {
		return nil, errors.New("POSTS_EVENT_STORE=mysql needs POSTS_MYSQL_DSN")
	}
	return fx.Provide(func(lc fx.Lifecycle) (storeReader, error) {
		s, err := openReadOnly(cfg, log)(context.Background())
		if err != nil {
			return storeReader{}, err
		}
		lc.Append(fx.StopHook(s.close))
		return s, nil
	}), nil
}
