package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Run is one nightly run (or flush), named by its datestamp.
type Run struct {
	ID                int64
	Datestamp, Org    string
	Server            string    // the tapir server that made it (servers.go)
	Started, Finished time.Time // Finished is zero while the run is running
	Status            string
	Report            string // the report as JSON (report.Run.JSON); plain text for old runs; "" while running
}

// BeginRun records a new run with status "running" and returns its id.
// A run with the same datestamp already in the catalog is an error matching
// ErrExists.
func (c *Catalog) BeginRun(ctx context.Context, datestamp, org string, started time.Time) (int64, error) {
	op := fmt.Sprintf("begin run %s", datestamp)
	if err := checkDatestamp(datestamp); err != nil {
		return 0, c.fail(op, err)
	}
	if started.IsZero() {
		return 0, c.fail(op, errors.New("start time is missing"))
	}
	var id int64
	err := c.write(ctx, op, func(tx *sql.Tx) error {
		err := tx.QueryRow(`INSERT INTO runs(datestamp, org, started, status, server) VALUES (?, ?, ?, 'running', ?) RETURNING id`,
			datestamp, org, clampNS(started), c.server).Scan(&id)
		if isUnique(err) {
			return &exists{fmt.Sprintf("a run with datestamp %s is already in the catalog; wait a second and start again", datestamp)}
		}
		return err
	})
	return id, err
}

// FinishRun sets the final status (ok, strange, failed or degraded), the
// finish time and the stored report of a run: the report as JSON
// (report.Run.JSON, what the server stores), or plain text when that
// could not be made. The catalog does not look inside it.
func (c *Catalog) FinishRun(ctx context.Context, id int64, status string, finished time.Time, report string) error {
	op := fmt.Sprintf("finish run %d", id)
	if err := checkRunStatus(status, false); err != nil {
		return c.fail(op, err)
	}
	if finished.IsZero() {
		return c.fail(op, errors.New("finish time is missing"))
	}
	return c.write(ctx, op, func(tx *sql.Tx) error {
		res, err := tx.Exec(`UPDATE runs SET status = ?, finished = ?, report = ? WHERE id = ?`,
			status, clampNS(finished), report, id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return notFoundf("no run with id %d", id)
		}
		return nil
	})
}

const runCols = `id, datestamp, org, started, finished, status, report, server`

func scanRun(s scanner) (Run, error) {
	var r Run
	var started, finished sql.NullInt64
	err := s.Scan(&r.ID, &r.Datestamp, &r.Org, &started, &finished, &r.Status, &r.Report, &r.Server)
	r.Started, r.Finished = fromNS(started), fromNS(finished)
	return r, err
}

// Run returns the run with the given datestamp; an error matching ErrNotFound
// when there is none.
func (c *Catalog) Run(ctx context.Context, datestamp string) (*Run, error) {
	var r Run
	err := c.read(ctx, "read run "+datestamp, func(tx *sql.Tx) error {
		var err error
		r, err = scanRun(tx.QueryRow(`SELECT `+runCols+` FROM runs WHERE datestamp = ?`, datestamp))
		if errors.Is(err, sql.ErrNoRows) {
			return notFoundf("no run with datestamp %q", datestamp)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// Runs returns every run of the catalog's server (every run when it is
// opened for none), newest first.
func (c *Catalog) Runs(ctx context.Context) ([]Run, error) {
	where, args := c.serverFilter("server")
	return c.runs(ctx, where, args)
}

// AllRuns returns the runs of every server, newest first.
func (c *Catalog) AllRuns(ctx context.Context) ([]Run, error) { return c.runs(ctx, "", nil) }

func (c *Catalog) runs(ctx context.Context, where string, args []any) ([]Run, error) {
	var runs []Run
	err := c.read(ctx, "list runs", func(tx *sql.Tx) error {
		rows, err := tx.Query(`SELECT `+runCols+` FROM runs WHERE 1 = 1`+where+` ORDER BY datestamp DESC`, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scanRun(rows)
			if err != nil {
				return err
			}
			runs = append(runs, r)
		}
		return rows.Err()
	})
	return runs, err
}
