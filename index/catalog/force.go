package catalog

import (
	"context"
	"database/sql"
	"fmt"
)

// DLE names one disk-list entry in the catalog.
type DLE struct{ Host, Path string }

// SetForce sets (on) or clears (off) the force flag of a DLE: the planner
// gives a forced DLE a full at its next run (`tapir admin force`). The flag
// is cleared by CommitTaped when a full of the DLE becomes good, or by
// SetForce(host, path, false). Setting a set flag or clearing a clear one
// is not an error.
func (c *Catalog) SetForce(ctx context.Context, host, path string, on bool) error {
	op := fmt.Sprintf("force %s:%s", host, path)
	if !on {
		op = fmt.Sprintf("unforce %s:%s", host, path)
	}
	if err := checkName("host", host, false); err != nil {
		return c.fail(op, err)
	}
	if err := checkName("DLE path", path, true); err != nil {
		return c.fail(op, err)
	}
	return c.write(ctx, op, func(tx *sql.Tx) error {
		if !on {
			_, err := tx.Exec(`DELETE FROM force WHERE host = ? AND path = ?`, host, path)
			return err
		}
		// since is kept for a person reading the catalog; nothing depends on it.
		_, err := tx.Exec(`INSERT INTO force(host, path, since) VALUES (?, ?, 0)
			ON CONFLICT (host, path) DO NOTHING`, host, path)
		return err
	})
}

// Forced returns the DLEs whose force flag is set, sorted by host and path.
func (c *Catalog) Forced(ctx context.Context) ([]DLE, error) {
	var out []DLE
	err := c.read(ctx, "list forced DLEs", func(tx *sql.Tx) error {
		rows, err := tx.Query(`SELECT host, path FROM force ORDER BY host, path`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var d DLE
			if err := rows.Scan(&d.Host, &d.Path); err != nil {
				return err
			}
			out = append(out, d)
		}
		return rows.Err()
	})
	return out, err
}
