package catalog

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"github.com/jackc/pgx/v5"
	"slices"
	"strings"
	"time"
)

// FileRecord is one entry of a dump's file index.
type FileRecord struct {
	// Path is relative to the DLE root, '/'-separated, without a leading "/"
	// or "./" and without a trailing "/" (also for directories); never "".
	Path string
	// Type is the tar typeflag: '0' file, '1' hard link, '2' symlink, '3'
	// char device, '4' block device, '5' directory, '6' FIFO, 'D' GNU dumpdir
	// directory.
	Type      byte
	Size      int64
	Mode      uint32
	Mtime     time.Time
	UID, GID  int
	Link      string
	TarOffset int64 // offset in the tar stream of the entry's first header (its pax header if any)
	// Span is the number of tar bytes from TarOffset to the first header
	// of the next entry of the image: the entry's headers, data and
	// padding. 0 means unknown (the last entry of an image, or records
	// not added in stream order): read to the end of the stream. The
	// FileWriter fills it; a value given to Add is ignored.
	Span int64
}

// ingestBatch is how many records a FileWriter buffers before it commits
// them in one transaction: the write lock is held for one batch at a time.
const ingestBatch = 50000

// rowsPerInsert is how many file rows one INSERT statement carries.
const rowsPerInsert = 64

const fileInsertCols = 13

// insertFilesSQL is an INSERT of n file rows.
func insertFilesSQL(n int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO files(dump_id, dir_id, name, frame, "offset", type, size, mode, mtime, uid, gid, link, span) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
	}
	return b.String()
}

// headerAllowance is how many tar bytes past the end of an entry's data
// Location.Frames covers, for the pax and ustar headers before the data.
const headerAllowance = 64 << 10

type pendingFile struct {
	dir, name   string
	typ         string
	size        int64
	mode        uint32
	mtime       any
	uid, gid    int
	link        string
	frame, offs int64
	tarOff      int64
	span        int64
}

// FileWriter ingests the file index of one dump while its image arrives.
// Records are buffered and committed every 50,000 records, each batch in one
// transaction, so other writers (the taper's CommitTaped) wait for at most one
// batch. Commit writes the rest; Abort removes everything this writer wrote.
// A FileWriter is not safe for concurrent use; use one per dump.
type FileWriter struct {
	c         *Catalog
	dumpID    int64
	frameSize int64
	batch     int
	buf       []pendingFile
	dirs      map[string]int64 // interned directories known to be committed
	added     int64
	// The last record added: its span is known when the next one comes.
	// last is its row once committed (ok false while it is in buf): the
	// row is found by its key, unique while the records come in stream
	// order (the only case in which spans are known), on SQLite and
	// PostgreSQL alike (the latter has no rowid).
	lastOff     int64
	last        rowKey
	pendingSpan int64 // span of the committed row last, to be written by the next flush
	unordered   bool  // a record came with an offset not after its predecessor's
	err         error // sticky: the first flush failure
	state       writerState
}

// NewFileWriter starts the index ingest of a dump whose payload is cut every
// frameSize tar bytes. The dump must exist, must not have failed, and must not
// have index rows yet; only one FileWriter per dump may be open. If the dump
// has no frame size yet, frameSize becomes its frame size; otherwise they must
// agree.
func (c *Catalog) NewFileWriter(ctx context.Context, dumpID int64, frameSize int64) (*FileWriter, error) {
	op := fmt.Sprintf("start index of dump %d", dumpID)
	if frameSize <= 0 {
		return nil, c.fail(op, fmt.Errorf("frame size %d is not positive", frameSize))
	}
	c.mu.Lock()
	if c.writers[dumpID] {
		c.mu.Unlock()
		return nil, c.fail(op, errors.New("another FileWriter is open for this dump; commit or abort it first"))
	}
	c.writers[dumpID] = true
	c.mu.Unlock()
	err := c.write(ctx, op, func(tx *sql.Tx) error {
		var status string
		var fs int64
		err := tx.QueryRow(`SELECT status, frame_size FROM dumps WHERE id = ?`, dumpID).Scan(&status, &fs)
		if errors.Is(err, sql.ErrNoRows) {
			return notFoundf("no dump with id %d", dumpID)
		}
		if err != nil {
			return err
		}
		if status == DumpFailed {
			return errors.New("the dump has failed; its index is not kept")
		}
		if fs != 0 && fs != frameSize {
			return fmt.Errorf("frame size %d differs from the dump's frame size %d", frameSize, fs)
		}
		var one int
		err = tx.QueryRow(`SELECT 1 FROM files WHERE dump_id = ? LIMIT 1`, dumpID).Scan(&one)
		if err == nil {
			return errors.New("the dump already has an index; FailDump it (or abort its writer) before ingesting again")
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if fs == 0 {
			_, err = tx.Exec(`UPDATE dumps SET frame_size = ? WHERE id = ?`, frameSize, dumpID)
			return err
		}
		return nil
	})
	if err != nil {
		c.release(dumpID)
		return nil, err
	}
	return &FileWriter{c: c, dumpID: dumpID, frameSize: frameSize, batch: ingestBatch, dirs: map[string]int64{}}, nil
}

func (c *Catalog) release(dumpID int64) {
	c.mu.Lock()
	delete(c.writers, dumpID)
	c.mu.Unlock()
}

// Add appends one record. It commits a batch when the buffer is full; an
// error from that commit is returned here and by every later Add and Commit
// (call Abort then).
func (w *FileWriter) Add(ctx context.Context, r FileRecord) error {
	if w.state != writerOpen {
		return w.c.fail(fmt.Sprintf("index dump %d", w.dumpID), fmt.Errorf("the FileWriter was already %s", w.state))
	}
	if w.err != nil {
		return w.err
	}
	dir, name, err := splitPath(r.Path)
	if err == nil {
		switch {
		case !validType(r.Type):
			err = fmt.Errorf("entry %q has tar type %q; expected one of 0 1 2 3 4 5 6 D", r.Path, r.Type)
		case r.Size < 0:
			err = fmt.Errorf("entry %q has negative size %d", r.Path, r.Size)
		case r.TarOffset < 0 || r.TarOffset%512 != 0:
			err = fmt.Errorf("entry %q has tar offset %d, which is not a 512-byte block boundary", r.Path, r.TarOffset)
		}
	} else {
		err = fmt.Errorf("entry %w", err)
	}
	if err != nil {
		return w.c.fail(fmt.Sprintf("index dump %d", w.dumpID), err)
	}
	if w.added > 0 && r.TarOffset <= w.lastOff {
		w.unordered = true // spans are only known for records in stream order
	}
	if w.added > 0 && !w.unordered {
		if n := len(w.buf); n > 0 {
			w.buf[n-1].span = r.TarOffset - w.lastOff
		} else {
			w.pendingSpan = r.TarOffset - w.lastOff
		}
	}
	w.buf = append(w.buf, pendingFile{
		dir: dir, name: name, typ: string(r.Type), size: r.Size, mode: r.Mode, mtime: toNS(r.Mtime),
		uid: r.UID, gid: r.GID, link: r.Link,
		frame: r.TarOffset / w.frameSize, offs: r.TarOffset % w.frameSize, tarOff: r.TarOffset,
	})
	w.lastOff = r.TarOffset
	w.added++
	if len(w.buf) >= w.batch {
		return w.flush(ctx)
	}
	return nil
}

// flush commits the buffered records in one transaction.
func (w *FileWriter) flush(ctx context.Context) error {
	if len(w.buf) == 0 {
		return nil
	}
	fresh := map[string]int64{} // directories interned by this transaction
	var last rowKey             // of the last row inserted
	err := w.c.write(ctx, fmt.Sprintf("index dump %d", w.dumpID), func(tx *sql.Tx) error {
		clear(fresh) // a PostgreSQL write that lost a race runs again
		var status string
		err := tx.QueryRow(`SELECT status FROM dumps WHERE id = ?`, w.dumpID).Scan(&status)
		if errors.Is(err, sql.ErrNoRows) {
			return notFoundf("dump %d has left the catalog", w.dumpID)
		}
		if err != nil {
			return err
		}
		if status == DumpFailed {
			return errors.New("the dump was marked failed; its index is discarded")
		}
		if w.pendingSpan > 0 && w.last.ok {
			if _, err := tx.Exec(`UPDATE files SET span = ? WHERE dump_id = ? AND dir_id = ? AND name = ? AND frame = ? AND "offset" = ?`,
				w.pendingSpan, w.dumpID, w.last.dirID, w.last.name, w.last.frame, w.last.offs); err != nil {
				return err
			}
		}
		var selDir, insDir *sql.Stmt
		intern := func(dir string) (int64, error) {
			if id, ok := w.dirs[dir]; ok {
				return id, nil
			}
			if id, ok := fresh[dir]; ok {
				return id, nil
			}
			if selDir == nil {
				if selDir, err = tx.Prepare(`SELECT id FROM dirs WHERE path = ?`); err != nil {
					return 0, err
				}
				if insDir, err = tx.Prepare(`INSERT INTO dirs(path) VALUES (?) RETURNING id`); err != nil {
					return 0, err
				}
			}
			var id int64
			err := selDir.QueryRow(dir).Scan(&id)
			if errors.Is(err, sql.ErrNoRows) {
				if err := insDir.QueryRow(dir).Scan(&id); err != nil {
					return 0, err
				}
			} else if err != nil {
				return 0, err
			}
			fresh[dir] = id
			return id, nil
		}
		defer func() {
			if selDir != nil {
				selDir.Close()
			}
			if insDir != nil {
				insDir.Close()
			}
		}()
		rows, err := w.sorted(intern, &last)
		if err != nil {
			return err
		}
		if err := insertNames(tx, rows); err != nil {
			return err
		}
		if w.c.d.pg {
			return w.copyRows(ctx, rows)
		}
		// Rows go in groups of rowsPerInsert per statement: far fewer trips
		// through database/sql and cgo than one row per statement.
		stmts := map[int]*sql.Stmt{}
		defer func() {
			for _, st := range stmts {
				st.Close()
			}
		}()
		args := make([]any, 0, rowsPerInsert*fileInsertCols)
		for start := 0; start < len(rows); start += rowsPerInsert {
			group := rows[start:min(start+rowsPerInsert, len(rows))]
			st := stmts[len(group)]
			if st == nil {
				if st, err = tx.Prepare(insertFilesSQL(len(group))); err != nil {
					return err
				}
				stmts[len(group)] = st
			}
			args = args[:0]
			for _, r := range group {
				f := r.f
				args = append(args, w.dumpID, r.dirID, f.name, f.frame, f.offs, f.typ, f.size, int64(f.mode), f.mtime,
					f.uid, f.gid, f.link, f.span)
			}
			if _, err := st.Exec(args...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		w.err = err
		return err
	}
	for d, id := range fresh {
		w.dirs[d] = id
	}
	w.last, w.pendingSpan = last, 0
	clear(w.buf)
	w.buf = w.buf[:0]
	return nil
}

// sortedRow is a buffered record with its directory's id.
type sortedRow struct {
	dirID int64
	f     *pendingFile
}

// sorted interns the directories of the buffered records and returns them
// in key order (directory, name, position), the order of the files table:
// each batch then goes into the B-tree in runs of neighbouring keys, which
// keeps its pages full. Two records with one key (the same entry added
// twice) count once, the later one. *last is set to the key of the last
// record added.
func (w *FileWriter) sorted(intern func(string) (int64, error), last *rowKey) ([]sortedRow, error) {
	rows := make([]sortedRow, len(w.buf))
	lastDir, lastID := "", int64(-1)
	for i := range w.buf {
		f := &w.buf[i]
		if f.dir != lastDir || lastID < 0 {
			var err error
			if lastID, err = intern(f.dir); err != nil {
				return nil, err
			}
			lastDir = f.dir
		}
		rows[i] = sortedRow{lastID, f}
	}
	if n := len(rows); n > 0 {
		l := rows[n-1]
		*last = rowKey{ok: true, dirID: l.dirID, name: l.f.name, frame: l.f.frame, offs: l.f.offs}
	}
	slices.SortStableFunc(rows, func(a, b sortedRow) int {
		if c := cmp.Compare(a.dirID, b.dirID); c != 0 {
			return c
		}
		if c := strings.Compare(a.f.name, b.f.name); c != 0 {
			return c
		}
		if c := cmp.Compare(a.f.frame, b.f.frame); c != 0 {
			return c
		}
		return cmp.Compare(a.f.offs, b.f.offs)
	})
	out := rows[:0]
	for _, r := range rows {
		if n := len(out); n > 0 && out[n-1].dirID == r.dirID && out[n-1].f.name == r.f.name &&
			out[n-1].f.frame == r.f.frame && out[n-1].f.offs == r.f.offs {
			out[n-1] = r
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

// insertNames records the (name, directory) pairs of rows (sorted by
// directory and name) in names, for FindVersions.
func insertNames(tx *sql.Tx, rows []sortedRow) error {
	const per = 200
	var args []any
	n := 0
	flush := func() error {
		if n == 0 {
			return nil
		}
		q := `INSERT INTO names(name, dir_id) VALUES (?, ?)` + strings.Repeat(`, (?, ?)`, n-1) + ` ON CONFLICT DO NOTHING`
		_, err := tx.Exec(q, args...)
		args, n = args[:0], 0
		return err
	}
	for i, r := range rows {
		if i > 0 && rows[i-1].dirID == r.dirID && rows[i-1].f.name == r.f.name {
			continue
		}
		args = append(args, r.f.name, r.dirID)
		if n++; n == per {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// copyRows sends the rows to PostgreSQL with COPY (pgx CopyFrom
// on the write connection, inside the write transaction): much faster than
// INSERTs there.
func (w *FileWriter) copyRows(ctx context.Context, sorted []sortedRow) error {
	rows := make([][]any, 0, len(sorted))
	for _, r := range sorted {
		f := r.f
		rows = append(rows, []any{w.dumpID, r.dirID, f.name, f.frame, f.offs, f.typ, f.size, int64(f.mode), f.mtime,
			f.uid, f.gid, f.link, f.span})
	}
	return w.c.cur.Raw(func(dc any) error {
		pc, ok := dc.(*pgConn)
		if !ok {
			return fmt.Errorf("internal error: the write connection is a %T, not a PostgreSQL one", dc)
		}
		_, err := pc.Conn.Conn().CopyFrom(context.WithoutCancel(ctx), pgx.Identifier{"files"},
			[]string{"dump_id", "dir_id", "name", "frame", "offset", "type", "size", "mode", "mtime", "uid", "gid", "link", "span"},
			pgx.CopyFromRows(rows))
		return err
	})
}

// Added returns how many records were added so far.
func (w *FileWriter) Added() int64 { return w.added }

// Commit commits the records not yet committed. After an error, call Abort.
func (w *FileWriter) Commit(ctx context.Context) error {
	if w.state != writerOpen {
		return w.c.fail(fmt.Sprintf("commit index of dump %d", w.dumpID), fmt.Errorf("the FileWriter was already %s", w.state))
	}
	if w.err != nil {
		return w.err
	}
	if err := w.flush(ctx); err != nil {
		return err
	}
	w.state = writerCommitted
	w.buf = nil
	w.c.release(w.dumpID)
	return nil
}

// Abort discards the buffered records and deletes the index rows this writer
// already committed. Aborting an aborted writer does nothing; aborting after
// a successful Commit is an error (FailDump removes a committed index).
func (w *FileWriter) Abort() error {
	op := fmt.Sprintf("abort index of dump %d", w.dumpID)
	switch w.state {
	case writerAborted:
		return nil
	case writerCommitted:
		return w.c.fail(op, errors.New("the index was already committed; FailDump the dump to remove it"))
	}
	w.state = writerAborted
	w.buf = nil
	defer w.c.release(w.dumpID)
	// An abort cleans up after a failure, often one that a cancelled
	// context caused: it runs whatever the context, like sql.Tx.Rollback.
	return w.c.write(context.Background(), op, func(tx *sql.Tx) error {
		_, err := tx.Exec(`DELETE FROM files WHERE dump_id = ?`, w.dumpID)
		return err
	})
}

// rowKey finds one index row of a dump.
type rowKey struct {
	ok          bool
	dirID       int64
	name        string
	frame, offs int64
}

type writerState int

const (
	writerOpen writerState = iota
	writerCommitted
	writerAborted
)

func (s writerState) String() string {
	switch s {
	case writerCommitted:
		return "committed"
	case writerAborted:
		return "aborted"
	}
	return "open"
}
