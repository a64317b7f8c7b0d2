package catalog

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"

	"github.com/klauspost/compress/zstd"
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
		if err := deleteListingsTx(tx, dumpID); err != nil {
			return err
		}
		ins, err := tx.Prepare(`INSERT INTO listings(dump_id, dir_id, dumpdir_id) VALUES (?, ?, ?)`)
		if err != nil {
			return err
		}
		defer ins.Close()
		st := newDumpdirStore(tx)
		defer st.close()
		for _, d := range dirs {
			id, err := internDir(tx, d)
			if err != nil {
				return err
			}
			vid, err := st.put(listings[d])
			if err != nil {
				return err
			}
			if _, err := ins.Exec(dumpID, id, vid); err != nil {
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
		err := tx.QueryRow(`SELECT v.packed FROM listings l JOIN dirs d ON d.id = l.dir_id
			JOIN dumpdirs v ON v.id = l.dumpdir_id
			WHERE l.dump_id = ? AND d.path = ?`, dumpID, d).Scan(&b)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		u, err := unpackDumpdir(b)
		if err != nil {
			return err
		}
		value, ok = string(u), true
		return nil
	})
	return value, ok, err
}

// Directory listings are stored once per distinct value (schema 7): the
// dumpdirs table holds each GNU.dumpdir value zstd-compressed under a key
// drawn from its SHA-256 (the first 8 bytes, as a positive integer); a
// value whose key is taken by a different one goes to the next free key.
// A listing row names the value by its key. Incrementals of a directory
// that did not change share one value.

var (
	dumpdirEnc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	dumpdirDec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(1<<30))
)

// packDumpdir is the stored form of a GNU.dumpdir value.
func packDumpdir(v string) []byte { return dumpdirEnc.EncodeAll([]byte(v), nil) }

// unpackDumpdir is the value of a stored form.
func unpackDumpdir(b []byte) ([]byte, error) {
	u, err := dumpdirDec.DecodeAll(b, nil)
	if err != nil {
		return nil, fmt.Errorf("a directory listing in the catalog does not decompress (%v); rebuild the catalog's listings from the images", err)
	}
	return u, nil
}

// dumpdirKey is where a value is first looked for in dumpdirs.
func dumpdirKey(v string) int64 {
	s := sha256.Sum256([]byte(v))
	return int64(binary.BigEndian.Uint64(s[:8]) & (1<<63 - 1))
}

// dumpdirStore puts values into dumpdirs within one transaction.
type dumpdirStore struct {
	tx       *sql.Tx
	sel, ins *sql.Stmt
	known    map[string]int64 // values put by this store
}

func newDumpdirStore(tx *sql.Tx) *dumpdirStore {
	return &dumpdirStore{tx: tx, known: map[string]int64{}}
}

func (s *dumpdirStore) close() {
	if s.sel != nil {
		s.sel.Close()
	}
	if s.ins != nil {
		s.ins.Close()
	}
}

// put returns the key of v in dumpdirs, adding it when new.
func (s *dumpdirStore) put(v string) (int64, error) {
	if id, ok := s.known[v]; ok {
		return id, nil
	}
	var err error
	if s.sel == nil {
		if s.sel, err = s.tx.Prepare(`SELECT packed FROM dumpdirs WHERE id = ?`); err != nil {
			return 0, err
		}
		if s.ins, err = s.tx.Prepare(`INSERT INTO dumpdirs(id, packed) VALUES (?, ?)`); err != nil {
			return 0, err
		}
	}
	packed := packDumpdir(v)
	for id := dumpdirKey(v); ; id = (id + 1) & (1<<63 - 1) {
		var b []byte
		err := s.sel.QueryRow(id).Scan(&b)
		if errors.Is(err, sql.ErrNoRows) {
			if _, err := s.ins.Exec(id, packed); err != nil {
				return 0, err
			}
			s.remember(v, id)
			return id, nil
		}
		if err != nil {
			return 0, err
		}
		if string(b) == string(packed) {
			s.remember(v, id)
			return id, nil
		}
		if u, err := unpackDumpdir(b); err == nil && string(u) == v {
			s.remember(v, id)
			return id, nil
		}
	}
}

func (s *dumpdirStore) remember(v string, id int64) {
	if len(s.known) > 4096 {
		clear(s.known)
	}
	s.known[v] = id
}

// deleteListingsTx deletes the listings of a dump and the values no other
// listing refers to.
func deleteListingsTx(tx *sql.Tx, dumpID int64) error {
	rows, err := tx.Query(`SELECT DISTINCT dumpdir_id FROM listings WHERE dump_id = ?`, dumpID)
	if err != nil {
		return err
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if _, err := tx.Exec(`DELETE FROM listings WHERE dump_id = ?`, dumpID); err != nil {
		return err
	}
	for _, id := range ids {
		if _, err := tx.Exec(`DELETE FROM dumpdirs WHERE id = ?
			AND NOT EXISTS (SELECT 1 FROM listings l WHERE l.dumpdir_id = ?)`, id, id); err != nil {
			return err
		}
	}
	return nil
}

// sweepDumpdirsTx deletes the values no listing refers to (after dumps
// left the catalog).
func sweepDumpdirsTx(tx *sql.Tx) error {
	_, err := tx.Exec(`DELETE FROM dumpdirs WHERE NOT EXISTS (SELECT 1 FROM listings l WHERE l.dumpdir_id = dumpdirs.id)`)
	return err
}
