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

const fileCols = `f.name, f.type, f.size, f.mode, f.mtime, f.uid, f.gid, f.link, f.frame, f."offset", f.span`

// scanFileInto returns the scan destinations for fileCols and a function that
// fills r from them once scanned; dir is the entry's directory and *frameSize
// the dump's frame size (read when finish runs).
func scanFileInto(r *FileRecord, dir string, frameSize *int64) (dest []any, finish func()) {
	var name, typ string
	var mode int64
	var mtime sql.NullInt64
	var frame, off int64
	dest = []any{&name, &typ, &r.Size, &mode, &mtime, &r.UID, &r.GID, &r.Link, &frame, &off, &r.Span}
	return dest, func() {
		r.Path = name
		if dir != "" {
			r.Path = dir + "/" + name
		}
		if len(typ) > 0 {
			r.Type = typ[0]
		}
		r.Mode = uint32(mode)
		r.Mtime = fromNS(mtime)
		r.TarOffset = frame*(*frameSize) + off
	}
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
		var f FileRecord
		var frameSize int64
		fdest, finish := scanFileInto(&f, dir, &frameSize)
		row := tx.QueryRow(`SELECT `+dumpColsAs("d")+`, `+fileCols+`
			FROM dumps d JOIN files f ON f.dump_id = d.id
			WHERE d.host = ? AND d.path = ? AND d.status = 'good' AND d.datestamp <= ?
			  AND f.dir_id = ? AND f.name = ?
			ORDER BY d.datestamp DESC, d.id DESC, f.frame DESC, f."offset" DESC LIMIT 1`,
			host, dlePath, bound, dirID, name)
		d, err := scanDump(row, fdest...)
		if errors.Is(err, sql.ErrNoRows) {
			return missing()
		}
		if err != nil {
			return err
		}
		frameSize = d.FrameSize
		finish()
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
		var frameSize int64
		err := tx.QueryRow(`SELECT frame_size FROM dumps WHERE id = ?`, dumpID).Scan(&frameSize)
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
		rows, err := tx.Query(`SELECT `+fileCols+` FROM files f WHERE f.dump_id = ? AND f.dir_id = ?
			ORDER BY f.name, f.frame, f."offset"`, dumpID, dirID)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r FileRecord
			dest, finish := scanFileInto(&r, d, &frameSize)
			if err := rows.Scan(dest...); err != nil {
				return err
			}
			finish()
			if n := len(out); n > 0 && out[n-1].Path == r.Path {
				out[n-1] = r
				continue
			}
			out = append(out, r)
		}
		return rows.Err()
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
		var frameSize int64
		dest, finish := scanFileInto(&r, dir, &frameSize)
		err := tx.QueryRow(`SELECT d.frame_size, `+fileCols+` FROM files f JOIN dumps d ON d.id = f.dump_id
			WHERE f.dump_id = ? AND f.dir_id = (SELECT id FROM dirs WHERE path = ?) AND f.name = ?
			ORDER BY f.frame DESC, f."offset" DESC LIMIT 1`, dumpID, dir, name).Scan(append([]any{&frameSize}, dest...)...)
		if errors.Is(err, sql.ErrNoRows) {
			return notFoundf("image %d holds no entry %q", dumpID, clean)
		}
		if err != nil {
			return err
		}
		finish()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &r, nil
}
