package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/tapir-backup/tapir/image"
)

// Location is where a file of a dump is: the dump, the index entry, every
// part of the dump, and the frames that hold the entry.
type Location struct {
	Dump  Dump
	File  FileRecord
	Parts []Part
	// Frames are the frames from the one holding the entry's first header
	// through the one holding its last byte (File.Span known), or else
	// through the one holding tar byte File.TarOffset+File.Size+64 KiB (room
	// for the headers), clipped to the payload.
	Frames []image.Frame
}

// FindFile returns the newest good dump of (host, dlePath) whose index holds
// filePath (relative to the DLE root; a leading "/" or "./" and a trailing "/"
// are ignored), considering only dumps with datestamp <= asOf when asOf is
// not "". asOf may be a datestamp prefix ("20250301" = up to the end of that
// day). When no dump holds the file the error matches ErrNotFound.
//
// The index records what each image contains, not what was deleted: a file
// deleted after a full is still found in that full. Applying deletions
// (dumpdir listings of later incrementals) is the recover side's job.
func (c *Catalog) FindFile(ctx context.Context, host, dlePath, filePath, asOf string) (*Location, error) {
	op := fmt.Sprintf("find %s:%s %s", host, dlePath, filePath)
	if asOf != "" {
		op += " as of " + asOf
	}
	p, err := cleanLookup(filePath)
	if err != nil {
		return nil, c.fail(op, err)
	}
	dir, name, err := splitPath(p)
	if err != nil {
		return nil, c.fail(op, err)
	}
	bound, err := normalizeAsOf(asOf)
	if err != nil {
		return nil, c.fail(op, err)
	}
	var loc Location
	err = c.read(ctx, op, func(tx *sql.Tx) error {
		missing := func() error {
			when := ""
			if asOf != "" {
				when = " up to " + asOf
			}
			return notFoundf("no good dump of %s:%s%s holds %q", host, dlePath, when, p)
		}
		var dirID int64
		err := tx.QueryRow(`SELECT id FROM dirs WHERE path = ?`, dir).Scan(&dirID)
		if errors.Is(err, sql.ErrNoRows) {
			return missing()
		}
		if err != nil {
			return err
		}
		// The newest image first; a DLE has hundreds of images at most,
		// and each costs one lookup by the files key.
		dumps, err := queryDumpsTx(tx, `SELECT `+dumpCols+` FROM dumps
			WHERE host = ? AND path = ? AND status = 'good' AND datestamp <= ?
			ORDER BY datestamp DESC, id DESC`, host, dlePath, bound)
		if err != nil {
			return err
		}
		var d Dump
		var f FileRecord
		found := false
		for _, cand := range dumps {
			es, err := dirEntries(tx, cand.ID, dirID, name)
			if err != nil {
				return fmt.Errorf("image %s of %s:%s: %w", cand.Datestamp, host, dlePath, err)
			}
			if len(es) > 0 {
				d, f, found = cand, es[len(es)-1].record(dir), true
				break
			}
		}
		if !found {
			return missing()
		}
		frameSize := d.FrameSize
		loc.Dump, loc.File = d, f
		if loc.Parts, err = partsTx(tx, d.ID); err != nil {
			return err
		}
		if frameSize <= 0 { // cannot happen for an indexed dump; no frames to give
			return nil
		}
		loc.Frames, err = framesTx(tx, d.ID, f.TarOffset/frameSize, lastFrame(f, frameSize))
		return err
	})
	if err != nil {
		return nil, err
	}
	return &loc, nil
}

// lastFrame is the index of the last frame that holds part of the entry:
// up to the next entry's first header when the span is known, otherwise
// 64 KiB of headers past the end of its data (clipped by the caller).
func lastFrame(f FileRecord, frameSize int64) int64 {
	if f.Span > 0 {
		return (f.TarOffset + f.Span - 1) / frameSize
	}
	return (f.TarOffset + f.Size + headerAllowance) / frameSize
}

// ListDir returns the entries directly in dir (relative to the DLE root, ""
// for the root; a leading "/" or "./" and a trailing "/" are ignored) of a
// dump, sorted by name. When a name occurs more than once in the image the
// last occurrence wins, as when tar extracts it. A directory without entries
// gives an empty list; a missing dump an error matching ErrNotFound.
func (c *Catalog) ListDir(ctx context.Context, dumpID int64, dir string) ([]FileRecord, error) {
	op := fmt.Sprintf("list directory %q of dump %d", dir, dumpID)
	d, err := cleanLookup(dir)
	if err != nil {
		return nil, c.fail(op, err)
	}
	var out []FileRecord
	err = c.read(ctx, op, func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRow(`SELECT 1 FROM dumps WHERE id = ?`, dumpID).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return notFoundf("no dump with id %d", dumpID)
		}
		if err != nil {
			return err
		}
		var dirID int64
		err = tx.QueryRow(`SELECT id FROM dirs WHERE path = ?`, d).Scan(&dirID)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		es, err := dirEntries(tx, dumpID, dirID, "")
		if err != nil {
			return err
		}
		out = make([]FileRecord, 0, len(es))
		for i := range es {
			if n := len(out); n > 0 && es[i-1].name == es[i].name {
				out[n-1] = es[i].record(d) // the latest occurrence in the stream
				continue
			}
			out = append(out, es[i].record(d))
		}
		return nil
	})
	return out, err
}

// Entry returns the index record of one path of a dump (its latest
// occurrence in the stream); an error matching ErrNotFound when the image
// does not hold it.
func (c *Catalog) Entry(ctx context.Context, dumpID int64, p string) (*FileRecord, error) {
	op := fmt.Sprintf("read entry %q of dump %d", p, dumpID)
	clean, err := cleanLookup(p)
	if err != nil {
		return nil, c.fail(op, err)
	}
	dir, name, err := splitPath(clean)
	if err != nil {
		return nil, c.fail(op, err)
	}
	var r FileRecord
	err = c.read(ctx, op, func(tx *sql.Tx) error {
		var dirID int64
		err := tx.QueryRow(`SELECT id FROM dirs WHERE path = ?`, dir).Scan(&dirID)
		if err == nil {
			var es []entry
			if es, err = dirEntries(tx, dumpID, dirID, name); err != nil {
				return err
			}
			if len(es) == 0 {
				err = sql.ErrNoRows
			} else {
				r = es[len(es)-1].record(dir)
			}
		}
		if errors.Is(err, sql.ErrNoRows) {
			return notFoundf("image %d holds no entry %q", dumpID, clean)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &r, nil
}
