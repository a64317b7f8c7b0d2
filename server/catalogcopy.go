package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/internal/dsn"
)

// CopyCatalog copies the catalog of cfg to a new catalog at to (a file
// name, or a postgres:// DSN of a new database), verifies the copy (row
// count and SHA-256 of every table, catalog.Copy) and prints a line per
// table to out. The catalog of cfg is only read: it stays as it is, and
// cfg keeps naming it until the administrator switches it to the copy.
//
// It takes the run lock of cfg (and on PostgreSQL the catalog's lock of
// the server's name), so that no night or tape command of this server
// writes the catalog meanwhile; a copy asked for while one runs is
// refused. A destination file that did not exist before is removed when
// the copy fails. to is never printed with its password.
//
// from, when not "", is copied instead of the catalog of cfg: a catalog
// no night uses, such as the file tapir admin rebuild --out wrote.
func CopyCatalog(ctx context.Context, cfg *config.Config, from, to string, out io.Writer, log *slog.Logger) (catalog.CopyResult, error) {
	var res catalog.CopyResult
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if to == "" {
		return res, errors.New("copy catalog: no destination: give --to with a new file name or a postgres:// DSN of a new database")
	}
	source := cfg.Catalog
	if from != "" {
		source = from
		if !dsn.IsPostgres(from) {
			abs, err := filepath.Abs(from)
			if err != nil {
				return res, fmt.Errorf("copy catalog from %s: %w", from, err)
			}
			if _, err := os.Stat(abs); err != nil {
				return res, fmt.Errorf("copy catalog: the catalog to copy, %s: %w", abs, err)
			}
			source = abs
		}
	}
	shown := dsn.Mask(to)
	created := false
	if !dsn.IsPostgres(to) {
		abs, err := filepath.Abs(to)
		if err != nil {
			return res, fmt.Errorf("copy catalog to %s: %w", to, err)
		}
		to, shown = abs, abs
		if !dsn.IsPostgres(source) && sameCatalogFile(abs, source) {
			return res, fmt.Errorf("copy catalog: %s is the catalog to copy itself; name a new file or a new PostgreSQL database", abs)
		}
		if _, err := os.Lstat(abs); errors.Is(err, os.ErrNotExist) {
			created = true
		}
	} else if to == source {
		return res, fmt.Errorf("copy catalog: %s is the catalog to copy itself; name a new PostgreSQL database", shown)
	}

	var src *catalog.Catalog
	if from != "" {
		var err error
		if src, err = catalog.Open(source); err != nil {
			return res, err
		}
		defer src.Close()
	} else {
		var done func()
		var err error
		src, done, err = openLocked(cfg)
		if err != nil {
			if errors.Is(err, ErrBusy) {
				return res, fmt.Errorf("copy catalog: the catalog is in use: %w; copy it when the night is over (or stop tapir server meanwhile)", err)
			}
			return res, err
		}
		defer done()
	}

	dst, err := catalog.Open(to)
	if err != nil {
		if created {
			removeCatalogFile(to)
		}
		return res, err
	}
	log.Info("copying the catalog", "from", src.Path(), "to", shown)
	res, err = catalog.Copy(ctx, src, dst, log)
	cerr := dst.Close()
	if err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		if created {
			removeCatalogFile(to)
		}
		return res, err
	}

	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "table\trows\tsha256")
	for _, t := range res.Tables {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", t.Table, t.Rows, t.SHA256)
	}
	if err := tw.Flush(); err != nil {
		return res, err
	}
	rate := ""
	if s := res.Copied.Seconds(); s > 0 {
		rate = fmt.Sprintf(", %.0f rows/s", float64(res.Rows)/s)
	}
	fmt.Fprintf(out, "copied %d rows of %d tables from %s to %s in %.1f s%s; verified: every table has the same rows and checksum\n",
		res.Rows, len(res.Tables), src.Path(), shown, res.Copied.Seconds(), rate)
	if res.AnalyzeErr != nil {
		fmt.Fprintf(out, "warning: the copy's query statistics were not gathered (%v): its first queries may be slow until the database's autovacuum gets to it; run VACUUM (ANALYZE) there\n", res.AnalyzeErr)
	}
	if from != "" {
		fmt.Fprintf(out, "%s is unchanged: to use the copy, stop tapir server, set the catalog in %s to it, and start it again\n", src.Path(), cfg.File)
	} else {
		fmt.Fprintf(out, "%s is unchanged and still in use: to switch, stop tapir server, set the catalog in %s to the copy, and start it again\n", src.Path(), cfg.File)
	}
	return res, nil
}

// sameCatalogFile reports whether a and b name one file (or the same absent name).
func sameCatalogFile(a, b string) bool {
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	if errA == nil && errB == nil {
		return os.SameFile(fa, fb)
	}
	ab, _ := filepath.Abs(b)
	return a == ab
}

// removeCatalogFile removes an SQLite catalog that a failed copy created,
// with its WAL files.
func removeCatalogFile(p string) {
	for _, s := range []string{"", "-wal", "-shm"} {
		_ = os.Remove(p + s)
	}
}
