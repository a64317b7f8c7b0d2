package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	rungroup "github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/robfig/cron/v3"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/internal/clock"
)

// ListenFunc serves a network service of the daemon (the index server) on
// a listener until ctx ends. The configuration is the one in force when
// it starts.
type ListenFunc func(ctx context.Context, cfg *config.Config, ln net.Listener, log *slog.Logger) error

// DaemonOptions configure `tapir server`.
type DaemonOptions struct {
	ConfigFile string
	Deps       Deps            // for every run: Log, Clock (a clock.Fake in tests), Mailer, Changer
	Reload     <-chan struct{} // SIGHUP: read the configuration again
	Stop       <-chan struct{} // SIGTERM: let a running night finish cleanly, then return
	// Index serves the index and restore server on [server] index_listen;
	// nil serves none.
	Index ListenFunc
	// Ready, when not nil, is called once the daemon listens, with the
	// addresses it got (tests listen on port 0).
	Ready func(index, metrics net.Addr)
}

// daemon is the state of a running `tapir server`.
type daemon struct {
	opt DaemonOptions
	log *slog.Logger

	mu  sync.Mutex
	cfg *config.Config
}

func (d *daemon) config() *config.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

// parseSchedule parses a cron expression (5 fields or a descriptor such
// as @daily or @every 6h).
func parseSchedule(expr string) (cron.Schedule, error) {
	s, err := cron.ParseStandard(expr)
	if err != nil {
		return nil, fmt.Errorf("schedule %q: %w", expr, err)
	}
	return s, nil
}

// Daemon runs `tapir server`: the nightly dump at the configured schedule
// (in the configured time zone), the index server, and the metrics over
// HTTP, until ctx ends (at once: a running night is cancelled) or Stop is
// closed (an idle daemon returns at once; a running night finishes its
// images in flight onto the holding disk and reports, then the daemon
// returns). An index or metrics server that dies on its own stops the
// daemon (a running night is cancelled) with its error. Reload makes it
// read the configuration again; a bad new file is rejected, logged, and
// the old one kept. One night runs at a time; a night still running when
// the next is due is reported in the log and that start skipped.
func Daemon(ctx context.Context, opt DaemonOptions) error {
	deps := opt.Deps
	if deps.Clock == nil {
		deps.Clock = clock.Real
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	opt.Deps = deps
	cfg, err := config.Load(opt.ConfigFile)
	if err != nil {
		return err
	}
	sched, err := parseSchedule(cfg.Schedule)
	if err != nil {
		return fmt.Errorf("%s: %w", cfg.File, err)
	}
	d := &daemon{opt: opt, log: deps.Log, cfg: cfg}
	cat, err := OpenCatalog(cfg)
	if err != nil {
		return err
	}
	defer cat.Close()

	// The daemon is a run group (oklog/run): the scheduler, the index
	// server and the metrics server. The first to return ends the group,
	// and every other is interrupted and waited for: a SIGTERM on an idle
	// server returns at once; an index or metrics server that dies on its
	// own stops the daemon with its error (a running night is cancelled).
	var g rungroup.Group
	var indexAddr, metricsAddr net.Addr
	if opt.Index != nil && cfg.Server.IndexListen != "" {
		ln, err := net.Listen("tcp", cfg.Server.IndexListen)
		if err != nil {
			return fmt.Errorf("index server: listen on %s: %w (is another tapir server running? change [server] index_listen)", cfg.Server.IndexListen, err)
		}
		indexAddr = ln.Addr()
		ictx, stopIndex := context.WithCancel(ctx)
		g.Add(func() error {
			err := opt.Index(ictx, cfg, ln, d.log.With("component", "index"))
			if ictx.Err() != nil {
				return nil // stopped by the daemon
			}
			if err == nil {
				err = errors.New("returned")
			}
			d.log.Error("index server stopped", "err", err)
			return fmt.Errorf("index server on %s stopped: %w", ln.Addr(), err)
		}, func(error) { stopIndex(); ln.Close() })
		d.log.Info("index server listening", "addr", ln.Addr().String())
	}
	if cfg.Server.MetricsListen != "" {
		ln, err := net.Listen("tcp", cfg.Server.MetricsListen)
		if err != nil {
			return fmt.Errorf("metrics: listen on %s: %w (change [server] metrics_listen, or set it to \"\" to turn metrics off)", cfg.Server.MetricsListen, err)
		}
		metricsAddr = ln.Addr()
		reg := prometheus.NewRegistry()
		reg.MustRegister(NewCollector(d.config, cat, d.log), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintln(w, "tapir server: metrics at /metrics")
		})
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		g.Add(func() error {
			err := srv.Serve(ln)
			if errors.Is(err, http.ErrServerClosed) {
				return nil // stopped by the daemon
			}
			d.log.Error("metrics server stopped", "err", err)
			return fmt.Errorf("metrics server on %s stopped: %w", ln.Addr(), err)
		}, func(error) { srv.Close() })
		d.log.Info("metrics listening", "addr", ln.Addr().String())
	}
	sctx, stopScheduler := context.WithCancel(ctx)
	g.Add(func() error { return d.schedule(sctx, sched) }, func(error) { stopScheduler() })
	if opt.Ready != nil {
		opt.Ready(indexAddr, metricsAddr)
	}
	return g.Run()
}

// schedule starts the nights at the schedule until ctx ends (a running
// night is cancelled and waited for) or Stop is closed (an idle daemon
// returns at once, a running night finishes first).
func (d *daemon) schedule(ctx context.Context, sched cron.Schedule) error {
	opt, deps := d.opt, d.opt.Deps
	var runDone chan error
	var runStop chan struct{}
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	stopping := false
	var wait clock.Timer // for the next run
	defer func() {
		if wait != nil {
			wait.Stop()
		}
	}()
	for {
		if wait != nil {
			wait.Stop() // the last wait ended otherwise
			wait = nil
		}
		now := deps.Clock.Now()
		cfg := d.config()
		next := sched.Next(now.In(cfg.Location()))
		var timer <-chan time.Time
		if !stopping {
			wait = deps.Clock.NewTimer(next.Sub(now))
			timer = wait.C()
			d.log.Info("next run", "at", next.Format(time.RFC3339), "schedule", cfg.Schedule)
		}
		select {
		case <-timer:
			if runDone != nil {
				d.log.Warn("a run is due but the previous one is still running; this start is skipped", "due", next.Format(time.RFC3339))
				continue
			}
			runDone, runStop = make(chan error, 1), make(chan struct{})
			rd, rs := runDone, runStop
			go func() {
				rdeps := deps
				rdeps.Stop = rs
				rep, err := Dump(runCtx, cfg, rdeps)
				if rep != nil {
					d.log.Info("run finished", "run", rep.Datestamp, "status", rep.Status())
				}
				rd <- err
			}()
		case err := <-runDone:
			if err != nil {
				d.log.Error("the run ended with errors", "err", err)
			}
			runDone, runStop = nil, nil
			if stopping {
				return nil
			}
		case <-opt.Reload:
			d.reload(&sched)
		case <-opt.Stop:
			opt.Stop = nil
			stopping = true
			if runDone == nil {
				d.log.Info("stopping: no run in progress")
				return nil
			}
			d.log.Info("stopping: the running night finishes its images in flight, then the server exits")
			close(runStop)
		case <-ctx.Done():
			if runDone != nil {
				cancelRun()
				<-runDone
			}
			return nil
		}
	}
}

// reload reads the configuration file again; a bad new file (or a bad
// schedule) is rejected and the old configuration kept.
func (d *daemon) reload(sched *cron.Schedule) {
	cfg, err := config.Load(d.opt.ConfigFile)
	if err == nil {
		var s cron.Schedule
		if s, err = parseSchedule(cfg.Schedule); err == nil {
			old := d.config()
			if cfg.Catalog != old.Catalog || cfg.Server != old.Server {
				d.log.Warn("reload: the catalog and [server] listen addresses are read at start only; restart the server for those changes")
				cfg.Catalog, cfg.Server = old.Catalog, old.Server
			}
			d.mu.Lock()
			d.cfg = cfg
			d.mu.Unlock()
			*sched = s
			d.log.Info("configuration reloaded", "file", cfg.File, "dles", len(cfg.DLEs), "schedule", cfg.Schedule)
			return
		}
	}
	var ce *config.Error
	if errors.As(err, &ce) {
		err = ce
	}
	d.log.Error("configuration rejected on reload; the old one stays in force", "file", d.opt.ConfigFile, "err", err)
}
