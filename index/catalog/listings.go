package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
)

// SetListings records the directory listings of a dump — for each
// directory (relative to the DLE root, "" for the root) the GNU.dumpdir
// value its tar entry carries — and marks the dump listed, in one
// transaction. Listings already recorded for the dump are replaced. A view
// at a date (View) needs the listings of every incremental it applies, to
// drop what was deleted or renamed; a full needs none. A failed dump cannot
// get listings.
func (c *Catalog) SetListings(ctx context.Context, dumpID int64, listings map[string]string) error {
	op := fmt.Sprintf("record directory listings of dump %d", dumpID)
	dirs := make([]string, 0, len(listings))
	for d := range listings {
		if err := checkRelPath(d); err != nil {
			return c.fail(op, fmt.Errorf("directory %w", err))
		}
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	return c.write(ctx, op, func(tx *sql.Tx) error {
		var status string
		err := tx.QueryRow(`SELECT status FROM dumps WHERE id = ?`, dumpID).Scan(&status)
		if errors.Is(err, sql.ErrNoRows) {
			return notFoundf("no dump with id %d", dumpID)
		}
		if err != nil {
			return err
		}
		if status == DumpFailed {
			return errors.New("the dump has failed; its listings are not kept")
		}
		if _, err := tx.Exec(`DELETE FROM listings WHERE dump_id = ?`, dumpID); err != nil {
			return err
		}
		ins, err := tx.Prepare(`INSERT INTO listings(dump_id, dir_id, dumpdir) VALUES (?, ?, ?)`)
		if err != nil {
			return err
		}
		defer ins.Close()
		for _, d := range dirs {
			id, err := internDir(tx, d)
			if err != nil {
				return err
			}
			if _, err := ins.Exec(dumpID, id, []byte(listings[d])); err != nil {
				return err
			}
		}
		_, err = tx.Exec(`UPDATE dumps SET listed = 1 WHERE id = ?`, dumpID)
		return err
	})
}

// internDir returns the id of a directory path, adding it when new.
func internDir(tx *sql.Tx, dir string) (int64, error) {
	var id int64
	err := tx.QueryRow(`SELECT id FROM dirs WHERE path = ?`, dir).Scan(&id)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, err
	}
	err = tx.QueryRow(`INSERT INTO dirs(path) VALUES (?) RETURNING id`, dir).Scan(&id)
	return id, err
}

// Listing returns the GNU.dumpdir value recorded for a directory of a dump;
// ok is false when the dump has none for it (a directory that could not be
// listed, or not in the image, or a dump whose listings are not recorded).
func (c *Catalog) Listing(ctx context.Context, dumpID int64, dir string) (value string, ok bool, err error) {
	op := fmt.Sprintf("read listing of %q in dump %d", dir, dumpID)
	d, err := cleanLookup(dir)
	if err != nil {
		return "", false, c.fail(op, err)
	}
	err = c.read(ctx, op, func(tx *sql.Tx) error {
		var b []byte
		err := tx.QueryRow(`SELECT l.dumpdir FROM listings l JOIN dirs d ON d.id = l.dir_id
			WHERE l.dump_id = ? AND d.path = ?`, dumpID, d).Scan(&b)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		value, ok = string(b), true
		return nil
	})
	return value, ok, err
}
