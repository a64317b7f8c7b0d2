package catalog

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
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

// holdBack is the most records a batch commit keeps back for the next one
// (flush).
const holdBack = 1 << 20

// headerAllowance is how many tar bytes past the end of an entry's data
// Location.Frames covers, for the pax and ustar headers before the data.
const headerAllowance = 64 << 10

type pendingFile struct {
	dir string
	entry
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
	// buf holds the records not yet committed. A batch commit keeps the
	// last one back: its span is known only when the next record comes,
	// and a chunk is written once.
	buf       []pendingFile
	dirs      map[string]int64 // interned directories known to be committed
	added     int64
	seq       int64 // the next chunk's number
	retryAt   int   // the buffer length at which a batch commit that waited tries again
	lastOff   int64 // the tar offset of the last record added
	unordered bool  // a record came with an offset not after its predecessor's
	err       error // sticky: the first flush failure
	state     writerState
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
	if n := len(w.buf); n > 0 && !w.unordered {
		w.buf[n-1].span = r.TarOffset - w.lastOff
	}
	p := pendingFile{dir: dir, entry: entry{name: name, typ: r.Type, size: r.Size, mode: r.Mode,
		uid: int64(r.UID), gid: int64(r.GID), link: r.Link, tarOff: r.TarOffset}}
	if !r.Mtime.IsZero() {
		p.mtime, p.hasMtime = clampNS(r.Mtime), true
	}
	w.buf = append(w.buf, p)
	w.lastOff = r.TarOffset
	w.added++
	if len(w.buf) > max(w.batch, w.retryAt) {
		return w.flush(ctx, false)
	}
	return nil
}

// flush commits the buffered records in one transaction: all of them
// when final. Otherwise it keeps back the last record (its span is not
// known yet) and the records of its directory just before it: a large
// directory's entries, which a walk gives one after the other, then go
// into one sorted run of chunks, not two that every ls has to merge. It
// keeps back no more than holdBack records.
func (w *FileWriter) flush(ctx context.Context, final bool) error {
	todo := w.buf
	if !final && len(todo) > 0 {
		k := len(todo) - 1
		last := todo[k].dir
		for k > 0 && todo[k-1].dir == last && len(todo)-k < holdBack {
			k--
		}
		if k == 0 && len(todo) < holdBack {
			w.retryAt = len(todo) + w.batch // one directory so far: wait for more
			return nil
		}
		todo = todo[:max(k, 1)]
		if k == 0 {
			todo = w.buf[:len(w.buf)-1]
		}
	}
	if len(todo) == 0 {
		return nil
	}
	fresh := map[string]int64{} // directories interned by this transaction
	var written int64           // chunks
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
		rows, err := sortedRows(todo, intern)
		if err != nil {
			return err
		}
		if err := insertNames(tx, rows); err != nil {
			return err
		}
		written, err = insertChunks(tx, "files", w.dumpID, w.seq, rows)
		return err
	})
	if err != nil {
		w.err = err
		return err
	}
	for d, id := range fresh {
		w.dirs[d] = id
	}
	w.seq += written
	w.retryAt = 0
	rest := copy(w.buf, w.buf[len(todo):])
	clear(w.buf[rest:])
	w.buf = w.buf[:rest]
	return nil
}

// chunksPerInsert is how many chunk rows one INSERT statement carries:
// far fewer round trips (PostgreSQL) and cgo calls (SQLite) than one
// statement per chunk, when most directories are one small chunk.
const chunksPerInsert = 64

// insertChunks writes rows (sorted by sortedRows) as the chunks of a
// dump's index in table, numbered from seq on, and returns how many it
// wrote.
func insertChunks(tx *sql.Tx, table string, dumpID, seq int64, rows []sortedRow) (int64, error) {
	stmts := map[int]*sql.Stmt{}
	defer func() {
		for _, st := range stmts {
			st.Close()
		}
	}()
	var args []any
	pending := 0
	flush := func() error {
		if pending == 0 {
			return nil
		}
		st := stmts[pending]
		if st == nil {
			var err error
			q := `INSERT INTO ` + table + `(dump_id, dir_id, seq, lo, hi, n, packed) VALUES (?, ?, ?, ?, ?, ?, ?)` +
				strings.Repeat(`, (?, ?, ?, ?, ?, ?, ?)`, pending-1)
			if st, err = tx.Prepare(q); err != nil {
				return err
			}
			stmts[pending] = st
		}
		_, err := st.Exec(args...)
		args, pending = args[:0], 0
		return err
	}
	var written int64
	es := make([]*entry, 0, chunkEntries)
	for i := 0; i < len(rows); {
		j := i
		es = es[:0]
		for j < len(rows) && rows[j].dirID == rows[i].dirID {
			es = append(es, &rows[j].f.entry)
			j++
		}
		for _, ch := range chunksOf(es) {
			args = append(args, dumpID, rows[i].dirID, seq+written, ch.lo, ch.hi, ch.n, ch.packed)
			written++
			if pending++; pending == chunksPerInsert {
				if err := flush(); err != nil {
					return 0, err
				}
			}
		}
		i = j
	}
	return written, flush()
}

// sortedRow is a buffered record with its directory's id.
type sortedRow struct {
	dirID int64
	f     *pendingFile
}

// sortedRows interns the directories of the records and returns them
// in key order (directory, name, position). Two records with one key
// (the same entry added twice) count once, the later one.
func sortedRows(buf []pendingFile, intern func(string) (int64, error)) ([]sortedRow, error) {
	rows := make([]sortedRow, len(buf))
	lastDir, lastID := "", int64(-1)
	for i := range buf {
		f := &buf[i]
		if f.dir != lastDir || lastID < 0 {
			var err error
			if lastID, err = intern(f.dir); err != nil {
				return nil, err
			}
			lastDir = f.dir
		}
		rows[i] = sortedRow{lastID, f}
	}
	slices.SortStableFunc(rows, func(a, b sortedRow) int {
		if c := cmp.Compare(a.dirID, b.dirID); c != 0 {
			return c
		}
		return compareEntries(&a.f.entry, &b.f.entry)
	})
	out := rows[:0]
	for _, r := range rows {
		if n := len(out); n > 0 && out[n-1].dirID == r.dirID && compareEntries(&out[n-1].f.entry, &r.f.entry) == 0 {
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
	if err := w.flush(ctx, true); err != nil {
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
