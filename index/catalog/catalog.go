package catalog

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/mattn/go-sqlite3"
)

// ErrNotFound is matched (errors.Is) by every error that reports a missing
// run, dump, volume or file. The error text itself names what was missing.
var ErrNotFound = errors.New("not found")

// ErrExists is matched (errors.Is) by errors that report a duplicate: a run
// datestamp or a volume label that is already in the catalog.
var ErrExists = errors.New("already exists")

// Catalog is an open catalog file. It is safe for concurrent use by many
// goroutines. Writes are serialised on one connection; reads use a pool of
// read-only connections and see the last committed state.
//
// Every method that reads or writes the database takes a context. A read
// stops when its context ends: the statement in progress or the next one
// fails, and the error matches ctx.Err(). A write honours its context only
// until its transaction starts (while it waits for the write connection):
// once begun it runs to its commit or its own failure, so a write is never
// cut off half-way, and a write given a context that has ended commits
// nothing. A caller that must record what already happened (an image on a
// volume, a failed dump) even when it is being stopped passes
// context.WithoutCancel(ctx). FileWriter.Abort takes no context: like
// sql.Tx.Rollback, it cleans up whatever the context.
type Catalog struct {
	path string  // the absolute file name, or the DSN with its password masked
	d    dialect // SQLite or PostgreSQL
	w    *sql.DB // exactly one connection: every write goes through it
	r    *sql.DB // read-only connections

	// cur is the write connection while a write's fn runs (there is one
	// write connection, so one fn at a time): PostgreSQL's ingest reaches
	// pgx's COPY through it.
	cur *sql.Conn

	mu      sync.Mutex
	writers map[int64]bool // dumps with an open FileWriter

	server string // SetServer: the tapir server this catalog is opened for
	// held are the connections holding LockServer's locks (under mu):
	// Close ends them, which drops the locks.
	held map[*sql.Conn]bool
}

// Open opens the catalog at path, creating the file (mode 0600) and its parent
// directories if needed, and migrates the schema to SchemaVersion. A catalog
// written by a newer tapir, or an SQLite file that is not a tapir catalog, is
// refused.
func Open(path string) (*Catalog, error) {
	if path == "" {
		return nil, errors.New("catalog: open: no file name given; set the catalog path in the configuration")
	}
	if isPostgres(path) {
		return openPG(path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("catalog %s: open: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o750); err != nil {
		return nil, fmt.Errorf("catalog %s: open: create its directory: %w", abs, err)
	}
	if fi, err := os.Stat(abs); err == nil && !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("catalog %s: open: not a regular file (%s); point the catalog path at a file", abs, fi.Mode().Type())
	}
	// Create the file ourselves so that it is not world-readable: the index
	// lists every file name of every client.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("catalog %s: open: %w", abs, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("catalog %s: open: %w", abs, err)
	}

	// Switching a new file to WAL and reading a WAL index that another
	// connection is creating answer SQLITE_BUSY at once, without calling the
	// busy handler; several processes (or goroutines) opening one catalog at
	// the same moment hit that. Such an open is retried for as long as a
	// busy write lock would be waited for.
	deadline := time.Now().Add(busyWait)
	for delay := 5 * time.Millisecond; ; delay = min(2*delay, 200*time.Millisecond) {
		c, err := openOnce(abs)
		if err == nil || !isBusy(err) || time.Now().After(deadline) {
			return c, err
		}
		time.Sleep(delay)
	}
}

// busyWait is how long a writer waits for another connection's write lock
// (the busy_timeout below, in ms) and how long Open retries.
const busyWait = 5 * time.Second

func openOnce(abs string) (*Catalog, error) {
	c := &Catalog{path: abs, writers: map[int64]bool{}}
	var err error
	c.w, err = sql.Open("sqlite3", dsn(abs, "_journal_mode=WAL&_foreign_keys=on&_busy_timeout=5000&_synchronous=FULL&_txlock=immediate&_cache_size=-32768"))
	if err != nil {
		return nil, c.fail("open", err)
	}
	c.w.SetMaxOpenConns(1)
	c.w.SetMaxIdleConns(1)
	c.w.SetConnMaxLifetime(0)
	c.w.SetConnMaxIdleTime(0)
	if err := c.w.Ping(); err != nil {
		c.w.Close()
		return nil, c.fail("open", err)
	}
	if err := c.migrate(); err != nil {
		c.w.Close()
		return nil, err
	}
	c.r, err = sql.Open("sqlite3", dsn(abs, "_foreign_keys=on&_busy_timeout=5000&_query_only=on"))
	if err != nil {
		c.w.Close()
		return nil, c.fail("open", err)
	}
	c.r.SetMaxOpenConns(8)
	c.r.SetMaxIdleConns(4)
	if err := c.r.Ping(); err != nil {
		c.r.Close()
		c.w.Close()
		return nil, c.fail("open for reading", err)
	}
	return c, nil
}

// isBusy reports whether err is SQLite's "database is locked" or "table is
// locked".
func isBusy(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && (se.Code == sqlite3.ErrBusy || se.Code == sqlite3.ErrLocked)
}

// dsn builds a go-sqlite3 URI for an absolute file name; the path is escaped
// so that '?', '#' and '%' in directory names are taken literally.
func dsn(abs, params string) string {
	return "file:" + (&url.URL{Path: abs}).EscapedPath() + "?" + params
}

// migrate brings the schema up to SchemaVersion, one transaction per step.
// The version is read inside each write transaction, so two processes opening
// the same old catalog at once migrate it exactly once.
func (c *Catalog) migrate() error {
	for {
		done, err := c.migrateStep()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}

func (c *Catalog) migrateStep() (done bool, err error) {
	tx, err := c.w.Begin()
	if err != nil {
		return false, c.fail("open: migrate schema", err)
	}
	defer tx.Rollback()
	var appID, version int64
	if c.d.pg {
		// Two processes opening one new catalog at once: the second waits
		// here, then finds the schema the first made.
		if _, err := tx.Exec(`SELECT pg_advisory_xact_lock(?)`, int64(pgLockKey)); err != nil {
			return false, c.fail("open: lock the schema for migration", err)
		}
		if appID, version, err = pgMeta(tx); err != nil {
			return false, c.fail("open: read schema version", err)
		}
		if appID != 0 && appID != applicationID {
			return false, c.fail("open", fmt.Errorf("not a tapir catalog (application_id %#x in tapir_meta); point the catalog DSN at a tapir catalog or at a new database", appID))
		}
	} else {
		if err := tx.QueryRow("PRAGMA application_id").Scan(&appID); err != nil {
			return false, c.fail("open: read schema version", err)
		}
		if err := tx.QueryRow("PRAGMA user_version").Scan(&version); err != nil {
			return false, c.fail("open: read schema version", err)
		}
	}
	if !c.d.pg && appID != 0 && appID != applicationID {
		return false, c.fail("open", fmt.Errorf("not a tapir catalog (SQLite application_id %#x); point the catalog path at a tapir catalog or at a new file", appID))
	}
	if version == 0 && !c.d.pg {
		var n int
		if err := tx.QueryRow("SELECT count(*) FROM sqlite_schema").Scan(&n); err != nil {
			return false, c.fail("open: read schema", err)
		}
		if n > 0 {
			return false, c.fail("open", errors.New("not a tapir catalog (an SQLite database with tables but no tapir schema version); point the catalog path at a tapir catalog or at a new file"))
		}
	}
	if version > int64(len(migrations)) {
		return false, c.fail("open", fmt.Errorf("catalog schema version %d is newer than this tapir understands (%d); run the tapir version that wrote it, or a newer one", version, len(migrations)))
	}
	if version < 0 {
		return false, c.fail("open", fmt.Errorf("invalid catalog schema version %d; restore the catalog from a backup", version))
	}
	if version == int64(len(migrations)) {
		return true, nil
	}
	step := migrations[version]
	if c.d.pg {
		step = pgDDL(step)
		if version == 0 {
			if err := pgSetMeta(tx, "application_id", applicationID); err != nil {
				return false, c.fail("open: create tapir_meta", err)
			}
		}
	}
	if _, err := tx.Exec(step); err != nil {
		return false, c.fail(fmt.Sprintf("open: migrate schema from version %d to %d", version, version+1), err)
	}
	if code := migrationCode[int(version)]; code != nil {
		if err := code(tx, c.d); err != nil {
			return false, c.fail(fmt.Sprintf("open: migrate schema from version %d to %d", version, version+1), err)
		}
	}
	if c.d.pg {
		err = pgSetMeta(tx, "schema_version", version+1)
	} else {
		_, err = tx.Exec(fmt.Sprintf("PRAGMA user_version = %d", version+1))
	}
	if err != nil {
		return false, c.fail(fmt.Sprintf("open: migrate schema from version %d to %d", version, version+1), err)
	}
	if err := tx.Commit(); err != nil {
		return false, c.fail(fmt.Sprintf("open: migrate schema from version %d to %d", version, version+1), err)
	}
	return false, nil
}

// Close closes the catalog. Records buffered in FileWriters that were neither
// committed nor aborted are lost.
func (c *Catalog) Close() error {
	// Let SQLite refresh its planner statistics; harmless if it fails.
	if !c.d.pg {
		_, _ = c.w.Exec("PRAGMA optimize")
	}
	c.mu.Lock()
	for conn := range c.held {
		conn.Raw(func(any) error { return driver.ErrBadConn }) // the pool discards it
		conn.Close()
	}
	clear(c.held)
	c.mu.Unlock()
	errR := c.r.Close()
	errW := c.w.Close()
	if err := errors.Join(errR, errW); err != nil {
		return c.fail("close", err)
	}
	return nil
}

// Path returns the absolute file name of the catalog, or for a catalog on
// PostgreSQL its DSN with the password masked.
func (c *Catalog) Path() string { return c.path }

// fail wraps err so that it names the catalog file and the operation, and adds
// a hint for the SQLite conditions a person can do something about.
func (c *Catalog) fail(op string, err error) error {
	var se sqlite3.Error
	if errors.As(err, &se) {
		switch se.Code {
		case sqlite3.ErrBusy, sqlite3.ErrLocked:
			err = fmt.Errorf("%w (another process held the catalog's write lock for more than 5 s; retry when it has finished)", err)
		case sqlite3.ErrFull:
			err = fmt.Errorf("%w (free space on the catalog's file system)", err)
		case sqlite3.ErrReadonly, sqlite3.ErrPerm, sqlite3.ErrCantOpen:
			err = fmt.Errorf("%w (check that tapir may write the catalog file and its directory, including the -wal and -shm files)", err)
		case sqlite3.ErrNotADB:
			err = fmt.Errorf("%w (this file is not an SQLite database; point the catalog path at a tapir catalog or at a new file)", err)
		case sqlite3.ErrCorrupt:
			err = fmt.Errorf("%w (the catalog is damaged; restore it from a backup or rebuild it by scanning the volumes)", err)
		}
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "22021": // character_not_in_repertoire: not valid in the database's encoding
			err = fmt.Errorf("%w (a file name that is not valid UTF-8: a catalog database created with ENCODING 'SQL_ASCII' keeps names byte for byte)", err)
		case "53100":
			err = fmt.Errorf("%w (free space on the PostgreSQL server)", err)
		}
	}
	return &OpError{Path: c.path, Op: op, Err: err}
}

// OpError is a failed catalog operation: it names the catalog file, the
// operation and the cause ("catalog PATH: OP: CAUSE"). A server that
// answers people on other hosts (the index server) shows them Op and, for
// an ErrNotFound, the cause, never the catalog's path.
type OpError struct {
	Path string // the catalog file
	Op   string // what was done, in a person's words ("list etc in web1:/srv (newest)")
	Err  error
}

func (e *OpError) Error() string { return fmt.Sprintf("catalog %s: %s: %v", e.Path, e.Op, e.Err) }

// Unwrap returns the cause.
func (e *OpError) Unwrap() error { return e.Err }

// notFound is an error that reads like msg and matches ErrNotFound.
type notFound struct{ msg string }

func (e *notFound) Error() string        { return e.msg }
func (e *notFound) Is(target error) bool { return target == ErrNotFound }

func notFoundf(format string, args ...any) error {
	return &notFound{msg: fmt.Sprintf(format, args...)}
}

// exists is an error that reads like msg and matches ErrExists.
type exists struct{ msg string }

func (e *exists) Error() string        { return e.msg }
func (e *exists) Is(target error) bool { return target == ErrExists }

// write runs fn in a write transaction (BEGIN IMMEDIATE on the single write
// connection) and commits it. Errors are wrapped with the catalog and op.
// fn must not call other Catalog methods that write: there is only one write
// connection and they would wait for it forever.
//
// ctx is honoured only until the transaction starts: a ctx that is already
// done, or ends while this write waits for the write connection, fails the
// write with nothing written. Once the transaction has begun it runs to its
// commit whatever ctx does, so a write is never cut off half-way: what the
// caller was told is committed, is.
func (c *Catalog) write(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	if ctx.Err() != nil {
		return c.fail(op, stopped(ctx))
	}
	conn, err := c.w.Conn(ctx)
	if err != nil {
		if ctx.Err() != nil {
			err = stopped(ctx)
		}
		return c.fail(op, err)
	}
	defer conn.Close()
	c.cur = conn
	defer func() { c.cur = nil }()
	// On PostgreSQL writers of other processes run at the same time: a
	// write transaction is SERIALIZABLE, so that one that reads then
	// writes sees what SQLite's single writer would, and one that lost a
	// race (serialization failure, deadlock) is run again from the start.
	var opts *sql.TxOptions
	if c.d.pg {
		opts = &sql.TxOptions{Isolation: sql.LevelSerializable}
	}
	for attempt := 1; ; attempt++ {
		err := c.writeOnce(context.WithoutCancel(ctx), conn, opts, fn)
		if err == nil {
			return nil
		}
		if c.d.pg && isRetryable(err) && attempt < pgWriteAttempts {
			time.Sleep(time.Duration(attempt) * time.Millisecond)
			continue
		}
		if c.d.pg && isRetryable(err) {
			err = fmt.Errorf("%w (other writers won the race %d times; retry when they have finished)", err, attempt)
		}
		return c.fail(op, err)
	}
}

// pgWriteAttempts is how many times a PostgreSQL write transaction that
// lost a race with another writer is run before its error is returned.
const pgWriteAttempts = 50

func (c *Catalog) writeOnce(ctx context.Context, conn *sql.Conn, opts *sql.TxOptions, fn func(tx *sql.Tx) error) error {
	tx, err := conn.BeginTx(ctx, opts)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// read runs fn in a read transaction on a reader connection, so that all its
// queries see one consistent snapshot. The transaction ends (is rolled back)
// when ctx is done: the statement in progress or the next one fails, and
// the error matches ctx.Err().
func (c *Catalog) read(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	if ctx.Err() != nil {
		return c.fail(op, stopped(ctx))
	}
	// A read sees one snapshot: SQLite's read transaction gives it, on
	// PostgreSQL it takes REPEATABLE READ.
	var opts *sql.TxOptions
	if c.d.pg {
		opts = &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}
	}
	tx, err := c.r.BeginTx(ctx, opts)
	if err != nil {
		if ctx.Err() != nil {
			err = stopped(ctx)
		}
		return c.fail(op, err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			// The transaction was rolled back under fn: its error is
			// sql.ErrTxDone or SQLite's "interrupted", not why.
			err = stopped(ctx)
		}
		return c.fail(op, err)
	}
	return nil
}

// stopped is the error of work that ended because ctx did. It matches
// ctx.Err() (context.Canceled or context.DeadlineExceeded) and names the
// cause when the context was given one.
func stopped(ctx context.Context) error {
	err := ctx.Err()
	if cause := context.Cause(ctx); cause != nil && cause != err {
		return fmt.Errorf("stopped: %w (%w)", cause, err)
	}
	return fmt.Errorf("stopped: %w", err)
}

// Times are stored as Unix nanoseconds; the zero time is stored as NULL.
// Times outside the int64 nanosecond range (years 1678..2262) are clamped.
var (
	minTime = time.Unix(0, -1<<63)
	maxTime = time.Unix(0, 1<<63-1)
)

func toNS(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return clampNS(t)
}

func clampNS(t time.Time) int64 {
	switch {
	case t.Before(minTime):
		return -1 << 63
	case t.After(maxTime):
		return 1<<63 - 1
	}
	return t.UnixNano()
}

func fromNS(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64)
}

type scanner interface{ Scan(dest ...any) error }
