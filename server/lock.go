package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/internal/clock"
	"github.com/tapir-backup/tapir/report"
)

// ErrBusy is returned when another tapir process holds the run lock of
// the same configuration.
var ErrBusy = errors.New("another tapir run is in progress")

// runLock is an exclusive flock on "<catalog>.lock", whose content names
// the holder: "pid N host H started T". The kernel drops the flock when the
// process dies, so a killed run never blocks the next one; the content it
// leaves behind (an unlock empties the file) tells the next run that it
// takes over from a process that died, which it names in the log and the
// report (stale).
type runLock struct {
	f     *os.File
	stale string // what a dead holder left in the file, "" when it unlocked cleanly
	// server gives back the catalog's lock of this server's name
	// (catalog.LockServer), nil when not taken.
	server func()
}

// lockPath is the run lock's file: beside a SQLite catalog; in the state
// directory for a catalog on PostgreSQL (a DSN is no file name). Several
// servers sharing one PostgreSQL catalog each have their own state
// directory, so their nights do not exclude each other.
func lockPath(cfg *config.Config) string {
	if config.IsPostgresDSN(cfg.Catalog) {
		return filepath.Join(cfg.StateDir, "run.lock")
	}
	return cfg.Catalog + ".lock"
}

// lockRun takes the run lock of the configuration's catalog.
func lockRun(cfg *config.Config) (*runLock, error) {
	return lockRunAt(lockPath(cfg), time.Now())
}

func lockRunAt(p string, now time.Time) (*runLock, error) {
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		return nil, fmt.Errorf("run lock %s: %w", p, err)
	}
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("run lock %s: %w", p, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(p)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			who := strings.TrimSpace(string(holder))
			if who == "" {
				who = "unknown process"
			}
			return nil, fmt.Errorf("%w: %s is locked by %s; wait for it to end (tapir runs one night at a time per catalog)", ErrBusy, p, who)
		}
		return nil, fmt.Errorf("run lock %s: %w", p, err)
	}
	prev, _ := os.ReadFile(p)
	host, _ := os.Hostname()
	f.Truncate(0)
	f.WriteAt([]byte(fmt.Sprintf("pid %d host %s started %s\n", os.Getpid(), host, now.Format(time.RFC3339))), 0)
	return &runLock{f: f, stale: strings.TrimSpace(string(prev))}, nil
}

// lockHeld reports whether some process holds the run lock at p.
func lockHeld(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return errors.Is(err, syscall.EWOULDBLOCK)
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}

func (l *runLock) unlock() {
	if l.server != nil {
		l.server()
	}
	l.f.Truncate(0)
	l.f.Close() // closing drops the flock
}

// recoverInterrupted cleans up the catalog after a run that was killed,
// before a new run starts (the run lock is held, so nothing else is
// writing): dumps left "dumping" and runs left "running" become failed.
// The holding disks are cleaned by the run's leftovers scan. The returned
// notes go into the report so that the administrator learns what was
// cleaned.
func recoverInterrupted(ctx context.Context, cat *catalog.Catalog, now time.Time, log *slog.Logger) ([]string, error) {
	var notes []string
	failed, err := cat.FailInterrupted(ctx, "the run was interrupted (process killed or machine down) while this DLE was being dumped", now)
	if err != nil {
		return nil, err
	}
	for _, d := range failed {
		notes = append(notes, fmt.Sprintf("cleaned up: %s:%s level %d of run %s was interrupted while dumping; it is marked failed", d.Host, d.Path, d.Level, d.Datestamp))
		log.Warn("interrupted dump marked failed", "host", d.Host, "path", d.Path, "run", d.Datestamp)
	}
	return notes, nil
}

// openLocked takes the run lock and opens the catalog, for the commands
// that change volumes or the holding disks and must not do it under a
// running night. done closes both.
func openLocked(cfg *config.Config) (cat *catalog.Catalog, done func(), err error) {
	lock, err := lockRun(cfg)
	if err != nil {
		return nil, nil, err
	}
	cat, err = OpenCatalog(cfg)
	if err != nil {
		lock.unlock()
		return nil, nil, err
	}
	if lock.server, err = cat.LockServer(context.Background()); err != nil {
		cat.Close()
		lock.unlock()
		return nil, nil, err
	}
	return cat, func() { cat.Close(); lock.unlock() }, nil
}

// session is what every run (dump or flush) holds from start to finish:
// the run lock, the open catalog, the run's row and the report.
type session struct {
	lock  *runLock
	cat   *catalog.Catalog
	runID int64
	rep   *report.Run
	log   *slog.Logger
	deps  Deps
}

// begin takes the run lock, opens the catalog, cleans up after a crashed
// run, and records a new run. Call s.close when done.
func begin(ctx context.Context, cfg *config.Config, deps Deps) (*session, error) {
	if deps.Clock == nil {
		deps.Clock = clock.Real
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	start := deps.Clock.Now()
	lock, err := lockRunAt(lockPath(cfg), start)
	if err != nil {
		return nil, err
	}
	if lock.stale != "" {
		deps.Log.Warn("took over the run lock of a process that died", "lock", lockPath(cfg), "holder", lock.stale)
	}
	cat, err := OpenCatalog(cfg)
	if err != nil {
		lock.unlock()
		return nil, err
	}
	s := &session{lock: lock, cat: cat, deps: deps}
	var cleaned []string
	lock.server, err = cat.LockServer(ctx)
	host, _ := os.Hostname()
	if err == nil {
		err = cat.RegisterServer(ctx, host, cfg.Server.Advertise, start, false)
	}
	if err == nil {
		cleaned, err = recoverInterrupted(ctx, cat, start, deps.Log)
	}
	if err == nil {
		var ds string
		if ds, s.runID, err = beginRun(ctx, cat, cfg, start); err == nil {
			if lock.stale != "" {
				cleaned = append([]string{fmt.Sprintf("lock: took over the run lock %s left by a process that died (%s)", lockPath(cfg), lock.stale)}, cleaned...)
			}
			s.rep = &report.Run{Org: cfg.Org, Server: cfg.Server.Name, Config: cfg.File, Hostname: host, Datestamp: ds, Kind: report.KindDump, Start: start, Notes: cleaned}
			s.log = deps.Log.With("run", ds)
		}
	}
	if err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *session) close() {
	s.cat.Close()
	s.lock.unlock()
}
