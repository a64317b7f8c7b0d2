package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/image/crypt"
)

// Dump is one image of one DLE at one level.
type Dump struct {
	ID, RunID             int64
	Host, Path            string
	Level                 int
	Datestamp, Status     string
	OrigSize, PayloadSize int64  // tar bytes; payload bytes (compressed, after the 32 KiB header)
	SHA256, Comp          string // SHA-256 of the payload (lower-case hex); zst, gz or none
	FrameSize, Files      int64  // tar bytes per frame; number of index entries
	HoldingPath, Error    string // holding file while not on tape; why it failed
	Started, Finished     time.Time
	Taped                 time.Time // when CommitTaped made it good; zero before
	// Listed says the directory listings of the image (GNU.dumpdir) are in
	// the catalog (SetListings); a view at a date needs them for every
	// incremental it applies.
	Listed bool
	// Encryption is "none" or "age" (image.EncAge): the payload is an age
	// file whose plaintext is the framed payload; the frames' offsets and
	// sizes are in the plaintext, PayloadSize and SHA256 of the bytes on
	// the volume. Recipients are the fingerprints of its age recipients;
	// CryptHeader the age header and nonce (the payload's first bytes),
	// which a restore needs to unwrap the key without reading them from
	// the first part.
	Encryption  string
	Recipients  []string
	CryptHeader []byte
	// Server is the tapir server whose run made the dump: its holding disk
	// or its volumes hold the image (servers.go).
	Server string
	// Payload is what the plaintext of the frames is: PayloadTar (a pax
	// archive, its entries in the index) or PayloadCommand (the standard
	// output of a command DLE, no index). "" is taken as PayloadTar.
	Payload string
}

// Payload kinds of Dump.Payload (image.Header.Payload).
const (
	PayloadTar     = image.PayloadTar
	PayloadCommand = image.PayloadCommand
)

// IsCommand says the payload is a command's output, not a tar archive.
func (d *Dump) IsCommand() bool { return d.Payload == PayloadCommand }

// Encrypted says the payload is an age file.
func (d *Dump) Encrypted() bool { return d.Encryption == image.EncAge }

const dumpCols = `id, run_id, host, path, level, datestamp, status, orig_size, payload_size, sha256, comp, frame_size, files, holding_path, error, started, finished, taped, listed, encryption, recipients, crypt_header, server, payload`

// dumpColsAs is dumpCols with every column qualified by alias a.
func dumpColsAs(a string) string {
	return a + "." + strings.ReplaceAll(dumpCols, ", ", ", "+a+".")
}

func scanDump(s scanner, extra ...any) (Dump, error) {
	var d Dump
	var started, finished, taped sql.NullInt64
	var recips string
	dest := []any{&d.ID, &d.RunID, &d.Host, &d.Path, &d.Level, &d.Datestamp, &d.Status,
		&d.OrigSize, &d.PayloadSize, &d.SHA256, &d.Comp, &d.FrameSize, &d.Files,
		&d.HoldingPath, &d.Error, &started, &finished, &taped, &d.Listed,
		&d.Encryption, &recips, &d.CryptHeader, &d.Server, &d.Payload}
	err := s.Scan(append(dest, extra...)...)
	d.Started, d.Finished, d.Taped = fromNS(started), fromNS(finished), fromNS(taped)
	if recips != "" {
		d.Recipients = strings.Fields(recips)
	}
	if len(d.CryptHeader) == 0 {
		d.CryptHeader = nil
	}
	return d, err
}

func checkSHA256(s string) error {
	if len(s) != 64 || strings.Trim(s, "0123456789abcdef") != "" {
		return fmt.Errorf("SHA-256 %q is not 64 lower-case hex digits", s)
	}
	return nil
}

func checkComp(s string) error {
	switch s {
	case "zst", "gz", "none":
		return nil
	}
	return fmt.Errorf("compression %q is not one of zst, gz, none", s)
}

// CreateDump records a new dump and returns its id (also stored in d.ID).
// Status defaults to "dumping" ("good" and "partial" are set only by
// CommitTaped), Comp to "zst", and Datestamp to the datestamp of the run.
func (c *Catalog) CreateDump(ctx context.Context, d *Dump) (int64, error) {
	if d == nil {
		return 0, c.fail("create dump", errors.New("no dump given"))
	}
	op := fmt.Sprintf("create dump %s:%s level %d", d.Host, d.Path, d.Level)
	status, comp := d.Status, d.Comp
	if status == "" {
		status = DumpDumping
	}
	if comp == "" {
		comp = "zst"
	}
	var problems []error
	if err := checkName("host", d.Host, false); err != nil {
		problems = append(problems, err)
	}
	if err := checkName("DLE path", d.Path, true); err != nil {
		problems = append(problems, err)
	}
	if d.Level < 0 || d.Level > 99 {
		problems = append(problems, fmt.Errorf("level %d is outside 0..99", d.Level))
	}
	if d.Datestamp != "" {
		if err := checkDatestamp(d.Datestamp); err != nil {
			problems = append(problems, err)
		}
	}
	switch status {
	case DumpDumping, DumpHolding, DumpFailed:
	case DumpGood, DumpPartial:
		problems = append(problems, fmt.Errorf("status %q can only be reached through CommitTaped", status))
	default:
		problems = append(problems, checkDumpStatus(status))
	}
	if err := checkComp(comp); err != nil {
		problems = append(problems, err)
	}
	if d.SHA256 != "" {
		if err := checkSHA256(d.SHA256); err != nil {
			problems = append(problems, err)
		}
	}
	if d.OrigSize < 0 || d.PayloadSize < 0 || d.FrameSize < 0 || d.Files < 0 {
		problems = append(problems, errors.New("sizes and counts must not be negative"))
	}
	enc := d.Encryption
	if enc == "" {
		enc = "none"
	}
	if err := checkEncryption(enc, d.Recipients, d.CryptHeader); err != nil {
		problems = append(problems, err)
	}
	payload := d.Payload
	switch payload {
	case "":
		payload = PayloadTar
	case PayloadTar, PayloadCommand:
	default:
		problems = append(problems, fmt.Errorf("payload %q is not one of %s, %s", payload, PayloadTar, PayloadCommand))
	}
	if payload == PayloadCommand && (d.Level != 0 || d.Files != 0) {
		problems = append(problems, errors.New("a command payload is a level-0 image with no index entries"))
	}
	if err := errors.Join(problems...); err != nil {
		return 0, c.fail(op, err)
	}
	var id int64
	datestamp := d.Datestamp
	err := c.write(ctx, op, func(tx *sql.Tx) error {
		var runDatestamp, server string
		err := tx.QueryRow(`SELECT datestamp, server FROM runs WHERE id = ?`, d.RunID).Scan(&runDatestamp, &server)
		if errors.Is(err, sql.ErrNoRows) {
			return notFoundf("no run with id %d (BeginRun first)", d.RunID)
		}
		if err != nil {
			return err
		}
		if datestamp == "" {
			datestamp = runDatestamp
		}
		err = tx.QueryRow(`INSERT INTO dumps(run_id, host, path, level, datestamp, status, orig_size,
			payload_size, sha256, comp, frame_size, files, holding_path, error, started, finished,
			encryption, recipients, crypt_header, server, payload)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			d.RunID, d.Host, d.Path, d.Level, datestamp, status, d.OrigSize, d.PayloadSize,
			d.SHA256, comp, d.FrameSize, d.Files, d.HoldingPath, d.Error, toNS(d.Started), toNS(d.Finished),
			enc, strings.Join(d.Recipients, " "), nilIfEmpty(d.CryptHeader), server, payload).Scan(&id)
		d.Server = server
		return err
	})
	if err != nil {
		return 0, err
	}
	d.ID, d.Status, d.Comp, d.Datestamp, d.Encryption, d.Payload = id, status, comp, datestamp, enc, payload
	return id, nil
}

func nilIfEmpty(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// checkEncryption: "none" with no recipients and no header, or "age" with
// recipient fingerprints and, when given, an age header and nonce.
func checkEncryption(enc string, recipients []string, hdr []byte) error {
	switch enc {
	case "none":
		if len(recipients) > 0 || len(hdr) > 0 {
			return errors.New("recipients or an age header given for an image that is not encrypted")
		}
		return nil
	case image.EncAge:
	default:
		return fmt.Errorf("encryption %q: want none or age", enc)
	}
	if len(recipients) == 0 {
		return errors.New("an encrypted image needs the fingerprints of its recipients")
	}
	for _, r := range recipients {
		if len(r) != 16 || strings.Trim(r, "0123456789abcdef") != "" {
			return fmt.Errorf("recipient fingerprint %q: want 16 lower-case hex digits", r)
		}
	}
	if len(hdr) > 0 {
		if n, err := crypt.HeaderLen(hdr); err != nil {
			return fmt.Errorf("age header: %v", err)
		} else if n != len(hdr) {
			return fmt.Errorf("age header: %d stray bytes after the nonce", len(hdr)-n)
		}
	}
	return nil
}

// SetDumpCryptHeader records the age header and nonce of an encrypted dump
// being dumped (the first bytes of its payload), before SetDumpHolding.
func (c *Catalog) SetDumpCryptHeader(ctx context.Context, id int64, hdr []byte) error {
	op := fmt.Sprintf("set dump %d age header", id)
	if len(hdr) == 0 {
		return c.fail(op, errors.New("no header given"))
	}
	return c.write(ctx, op, func(tx *sql.Tx) error {
		var status, enc string
		var recips string
		err := tx.QueryRow(`SELECT status, encryption, recipients FROM dumps WHERE id = ?`, id).Scan(&status, &enc, &recips)
		if errors.Is(err, sql.ErrNoRows) {
			return notFoundf("no dump with id %d", id)
		}
		if err != nil {
			return err
		}
		if status != DumpDumping {
			return fmt.Errorf("dump is %q, not %q; the age header is set while the image is dumped", status, DumpDumping)
		}
		if enc != image.EncAge {
			return fmt.Errorf("dump is not encrypted (encryption %q)", enc)
		}
		if err := checkEncryption(enc, strings.Fields(recips), hdr); err != nil {
			return err
		}
		_, err = tx.Exec(`UPDATE dumps SET crypt_header = ? WHERE id = ?`, hdr, id)
		return err
	})
}

// checkFrames checks that frames describe a payload cut every frameSize tar
// bytes: indexes 0..n-1, tar and payload ranges contiguous from 0, every frame
// but the last exactly frameSize tar bytes, the tar ranges ending at orig and
// the payload ranges inside payload (a zstd payload ends with its seek table).
func checkFrames(frames []image.Frame, frameSize, orig, payload int64) error {
	if len(frames) == 0 {
		return nil
	}
	if frameSize <= 0 {
		return errors.New("the dump has no frame size (set Dump.FrameSize at CreateDump or open a FileWriter first)")
	}
	var tarEnd, end int64
	for i, f := range frames {
		switch {
		case f.Index != i:
			return fmt.Errorf("frame %d has index %d; frames must be numbered 0..%d in order", i, f.Index, len(frames)-1)
		case f.TarOffset != tarEnd:
			return fmt.Errorf("frame %d starts at tar offset %d, expected %d (frames are contiguous)", i, f.TarOffset, tarEnd)
		case f.Offset != end:
			return fmt.Errorf("frame %d starts at payload offset %d, expected %d (frames are contiguous)", i, f.Offset, end)
		case f.TarSize <= 0 || f.Size <= 0:
			return fmt.Errorf("frame %d is empty or negative (tar size %d, size %d)", i, f.TarSize, f.Size)
		case f.TarSize > frameSize || (i < len(frames)-1 && f.TarSize != frameSize):
			return fmt.Errorf("frame %d holds %d tar bytes; every frame but the last holds exactly the frame size %d", i, f.TarSize, frameSize)
		}
		tarEnd += f.TarSize
		end += f.Size
	}
	if tarEnd != orig {
		return fmt.Errorf("frames hold %d tar bytes but the original size is %d", tarEnd, orig)
	}
	if end > payload {
		return fmt.Errorf("frames end at payload offset %d, past the payload size %d", end, payload)
	}
	return nil
}

// SetDumpHolding records that the image of a "dumping" dump is complete (on
// the holding disk at holdingPath, or "" when it went straight to the taper):
// its sizes, SHA-256, number of index entries, frame list and finish time.
// The status becomes "holding".
func (c *Catalog) SetDumpHolding(ctx context.Context, id int64, orig, payload int64, sha string, files int64, holdingPath string, frames []image.Frame, finished time.Time) error {
	op := fmt.Sprintf("set dump %d holding", id)
	var problems []error
	if orig < 0 || payload < 0 || files < 0 {
		problems = append(problems, fmt.Errorf("negative size or count (original %d, payload %d, files %d)", orig, payload, files))
	}
	if err := checkSHA256(sha); err != nil {
		problems = append(problems, err)
	}
	if finished.IsZero() {
		problems = append(problems, errors.New("finish time is missing"))
	}
	if err := errors.Join(problems...); err != nil {
		return c.fail(op, err)
	}
	return c.write(ctx, op, func(tx *sql.Tx) error {
		var status, enc string
		var frameSize int64
		var hdr []byte
		err := tx.QueryRow(`SELECT status, frame_size, encryption, crypt_header FROM dumps WHERE id = ?`, id).Scan(&status, &frameSize, &enc, &hdr)
		if errors.Is(err, sql.ErrNoRows) {
			return notFoundf("no dump with id %d", id)
		}
		if err != nil {
			return err
		}
		if status != DumpDumping {
			return fmt.Errorf("dump is %q, not %q; only a dump being dumped can become holding", status, DumpDumping)
		}
		framed := payload
		if enc == image.EncAge {
			if len(hdr) == 0 {
				return errors.New("the encrypted dump has no age header (SetDumpCryptHeader first)")
			}
			l, err := crypt.NewLayout(int64(len(hdr)), payload)
			if err != nil {
				return fmt.Errorf("the encrypted payload: %v", err)
			}
			framed = l.PlainSize()
		}
		if err := checkFrames(frames, frameSize, orig, framed); err != nil {
			return err
		}
		if _, err := tx.Exec(`UPDATE dumps SET status = 'holding', orig_size = ?, payload_size = ?, sha256 = ?,
			files = ?, holding_path = ?, finished = ? WHERE id = ?`,
			orig, payload, sha, files, holdingPath, clampNS(finished), id); err != nil {
			return err
		}
		if _, err := tx.Exec(`DELETE FROM frames WHERE dump_id = ?`, id); err != nil {
			return err
		}
		stmt, err := tx.Prepare(`INSERT INTO frames(dump_id, idx, tar_offset, tar_size, "offset", size) VALUES (?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, f := range frames {
			if _, err := stmt.Exec(id, f.Index, f.TarOffset, f.TarSize, f.Offset, f.Size); err != nil {
				return err
			}
		}
		return nil
	})
}

// FailDump marks a dump that is not on tape as failed with the reason, and
// deletes its file index, frame and listing rows (also those an aborted or running
// FileWriter already committed). A good dump cannot fail: it is on tape.
func (c *Catalog) FailDump(ctx context.Context, id int64, reason string) error {
	op := fmt.Sprintf("fail dump %d", id)
	if reason == "" {
		return c.fail(op, errors.New("no reason given; the report needs one"))
	}
	return c.write(ctx, op, func(tx *sql.Tx) error {
		var status string
		err := tx.QueryRow(`SELECT status FROM dumps WHERE id = ?`, id).Scan(&status)
		if errors.Is(err, sql.ErrNoRows) {
			return notFoundf("no dump with id %d", id)
		}
		if err != nil {
			return err
		}
		if status == DumpGood || status == DumpPartial {
			return fmt.Errorf("dump is %q: it is on tape and cannot fail (it leaves the catalog when its volume is overwritten)", status)
		}
		if _, err := tx.Exec(`UPDATE dumps SET status = 'failed', error = ? WHERE id = ?`, reason, id); err != nil {
			return err
		}
		for _, table := range []string{"files", "frames"} {
			if _, err := tx.Exec(`DELETE FROM `+table+` WHERE dump_id = ?`, id); err != nil {
				return err
			}
		}
		if err := deleteListingsTx(tx, id); err != nil {
			return err
		}
		_, err = tx.Exec(`UPDATE dumps SET listed = 0 WHERE id = ?`, id)
		return err
	})
}

// Dump returns one dump; an error matching ErrNotFound when there is none.
func (c *Catalog) Dump(ctx context.Context, id int64) (*Dump, error) {
	var d Dump
	err := c.read(ctx, fmt.Sprintf("read dump %d", id), func(tx *sql.Tx) error {
		var err error
		d, err = scanDump(tx.QueryRow(`SELECT `+dumpCols+` FROM dumps WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return notFoundf("no dump with id %d", id)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &d, nil
}

// Dumps returns the dumps of host and DLE path, newest first (by datestamp,
// then id). path "" means every DLE of host; host "" means every host.
func (c *Catalog) Dumps(ctx context.Context, host, path string) ([]Dump, error) {
	q := `SELECT ` + dumpCols + ` FROM dumps WHERE 1 = 1`
	var args []any
	if host != "" {
		q += ` AND host = ?`
		args = append(args, host)
	}
	if path != "" {
		q += ` AND path = ?`
		args = append(args, path)
	}
	q += ` ORDER BY datestamp DESC, id DESC`
	return c.queryDumps(ctx, fmt.Sprintf("list dumps of %q:%q", host, path), q, args...)
}

// RunDumps returns the dumps made by a run, in the order they were created.
func (c *Catalog) RunDumps(ctx context.Context, runID int64) ([]Dump, error) {
	q := `SELECT ` + dumpCols + ` FROM dumps WHERE run_id = ? ORDER BY id`
	return c.queryDumps(ctx, fmt.Sprintf("list dumps of run %d", runID), q, runID)
}

// DumpsWithStatus returns the dumps of the catalog's server (of every
// server when it is opened for none) in one status, oldest first (by
// datestamp, then id): for example the "holding" dumps an autoflush puts on
// tape, which are on this server's holding disk.
func (c *Catalog) DumpsWithStatus(ctx context.Context, status string) ([]Dump, error) {
	op := fmt.Sprintf("list %s dumps", status)
	if err := checkDumpStatus(status); err != nil {
		return nil, c.fail(op, err)
	}
	where, args := c.serverFilter("server")
	q := `SELECT ` + dumpCols + ` FROM dumps WHERE status = ?` + where + ` ORDER BY datestamp, id`
	return c.queryDumps(ctx, op, q, append([]any{status}, args...)...)
}

// LastFull returns the newest level-0 dump of host:path that can be
// restored (good on a volume, or whole on the holding disk); nil, nil when
// there is none. Its Encryption and Recipients are what an incremental's
// restore needs besides its own keys.
func (c *Catalog) LastFull(ctx context.Context, host, path string) (*Dump, error) {
	return c.newestRestorable(ctx, fmt.Sprintf("find the last full of %s:%s", host, path), host, path, true)
}

// NewestRestorable returns the newest dump of host:path at any level that
// can be restored (good on a volume, or whole on the holding disk); nil,
// nil when there is none.
func (c *Catalog) NewestRestorable(ctx context.Context, host, path string) (*Dump, error) {
	return c.newestRestorable(ctx, fmt.Sprintf("find the newest image of %s:%s", host, path), host, path, false)
}

func (c *Catalog) newestRestorable(ctx context.Context, op, host, path string, full bool) (*Dump, error) {
	q := `SELECT ` + dumpCols + ` FROM dumps WHERE host = ? AND path = ?
		AND (status = 'good' OR (status = 'holding' AND holding_path != ''))`
	if full {
		q += ` AND level = 0`
	}
	q += ` ORDER BY datestamp DESC, id DESC LIMIT 1`
	ds, err := c.queryDumps(ctx, op, q, host, path)
	if err != nil || len(ds) == 0 {
		return nil, err
	}
	return &ds[0], nil
}

func (c *Catalog) queryDumps(ctx context.Context, op, q string, args ...any) ([]Dump, error) {
	var dumps []Dump
	err := c.read(ctx, op, func(tx *sql.Tx) error {
		var err error
		dumps, err = queryDumpsTx(tx, q, args...)
		return err
	})
	return dumps, err
}

func queryDumpsTx(tx *sql.Tx, q string, args ...any) ([]Dump, error) {
	rows, err := tx.Query(q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var dumps []Dump
	for rows.Next() {
		d, err := scanDump(rows)
		if err != nil {
			return nil, err
		}
		dumps = append(dumps, d)
	}
	return dumps, rows.Err()
}

// Frames returns the frame list of a dump, in order; an error matching
// ErrNotFound when the dump is not in the catalog.
func (c *Catalog) Frames(ctx context.Context, dumpID int64) ([]image.Frame, error) {
	var frames []image.Frame
	err := c.read(ctx, fmt.Sprintf("read frames of dump %d", dumpID), func(tx *sql.Tx) error {
		if err := dumpExists(tx, dumpID); err != nil {
			return err
		}
		var err error
		frames, err = framesTx(tx, dumpID, 0, -1)
		return err
	})
	return frames, err
}

// framesTx returns frames first..last of a dump (last < 0: to the end).
func framesTx(tx *sql.Tx, dumpID int64, first, last int64) ([]image.Frame, error) {
	if last < 0 {
		last = 1<<63 - 1
	}
	rows, err := tx.Query(`SELECT idx, tar_offset, tar_size, "offset", size FROM frames
		WHERE dump_id = ? AND idx BETWEEN ? AND ? ORDER BY idx`, dumpID, first, last)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var frames []image.Frame
	for rows.Next() {
		var f image.Frame
		if err := rows.Scan(&f.Index, &f.TarOffset, &f.TarSize, &f.Offset, &f.Size); err != nil {
			return nil, err
		}
		frames = append(frames, f)
	}
	return frames, rows.Err()
}

func dumpExists(tx *sql.Tx, id int64) error {
	var one int
	err := tx.QueryRow(`SELECT 1 FROM dumps WHERE id = ?`, id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return notFoundf("no dump with id %d", id)
	}
	return err
}

// FailInterrupted cleans up after a run that was killed: every dump still
// "dumping" becomes "failed" with the reason (its index and frame rows are
// deleted) and every run still "running" becomes "failed", finished at the
// given time, with the reason as its report if it had none. "holding" dumps are
// left alone: their holding files are flushed by the next run. It returns the
// dumps it failed. Call it only while holding the run lock, before a run
// starts: a dump of a live run is "dumping" too. A catalog opened for a
// server (SetServer) cleans up only that server's runs and dumps: another
// server's night may be running.
func (c *Catalog) FailInterrupted(ctx context.Context, reason string, finished time.Time) ([]Dump, error) {
	op := "fail interrupted runs and dumps"
	if reason == "" || finished.IsZero() {
		return nil, c.fail(op, errors.New("a reason and a finish time are needed"))
	}
	var failed []Dump
	where, args := c.serverFilter("server")
	err := c.write(ctx, op, func(tx *sql.Tx) error {
		var err error
		failed, err = queryDumpsTx(tx, `SELECT `+dumpCols+` FROM dumps WHERE status = 'dumping'`+where+` ORDER BY datestamp, id`, args...)
		if err != nil {
			return err
		}
		for _, d := range failed {
			if _, err := tx.Exec(`DELETE FROM files WHERE dump_id = ?`, d.ID); err != nil {
				return err
			}
			if _, err := tx.Exec(`DELETE FROM frames WHERE dump_id = ?`, d.ID); err != nil {
				return err
			}
			if err := deleteListingsTx(tx, d.ID); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(`UPDATE dumps SET status = 'failed', error = ? WHERE status = 'dumping'`+where, append([]any{reason}, args...)...); err != nil {
			return err
		}
		_, err = tx.Exec(`UPDATE runs SET status = 'failed', finished = ?,
			report = CASE report WHEN '' THEN ? ELSE report END WHERE status = 'running'`+where, append([]any{clampNS(finished), reason}, args...)...)
		return err
	})
	if err != nil {
		return nil, err
	}
	return failed, nil
}
