package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Volume is a tape cartridge or a virtual tape.
type Volume struct {
	ID        int64
	Label     string
	Slot      int
	Blocksize int64
	Written   string // datestamp of the run that last wrote it from its start; "" if never
	Created   time.Time
	Reuse     bool  // false: never overwrite (set with SetVolumeReuse)
	Bytes     int64 // payload bytes of the parts written since Written
	// Overwriting is set while a new label is being written over the
	// volume (BeginOverwrite): the datestamp of the new label ("X" for
	// tapir label) and the label being written (OverwritingAs). The old
	// images stay in the catalog until the new label is on the volume.
	Overwriting, OverwritingAs string
	// Server is the tapir server whose changer holds the volume, the only
	// one that may write it; "" until a server labels or writes it
	// (servers.go).
	Server string
}

const volumeCols = `id, label, slot, blocksize, written, created, reuse, bytes, overwriting, overwriting_as, server`

func scanVolume(s scanner) (Volume, error) {
	var v Volume
	var created sql.NullInt64
	err := s.Scan(&v.ID, &v.Label, &v.Slot, &v.Blocksize, &v.Written, &created, &v.Reuse, &v.Bytes, &v.Overwriting, &v.OverwritingAs, &v.Server)
	v.Created = fromNS(created)
	return v, err
}

// Volumes returns the volumes of the catalog's server and those no server
// owns yet (every volume when it is opened for none), most recently
// written first, then by label; volumes never written come last.
func (c *Catalog) Volumes(ctx context.Context) ([]Volume, error) {
	where, args := "", []any(nil)
	if c.server != "" {
		where, args = ` AND server IN ('', ?)`, []any{c.server}
	}
	return c.volumes(ctx, where, args)
}

// AllVolumes returns the volumes of every server, in the order of Volumes.
func (c *Catalog) AllVolumes(ctx context.Context) ([]Volume, error) { return c.volumes(ctx, "", nil) }

func (c *Catalog) volumes(ctx context.Context, where string, args []any) ([]Volume, error) {
	var vols []Volume
	err := c.read(ctx, "list volumes", func(tx *sql.Tx) error {
		rows, err := tx.Query(`SELECT `+volumeCols+` FROM volumes WHERE 1 = 1`+where+` ORDER BY written DESC, label`, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			v, err := scanVolume(rows)
			if err != nil {
				return err
			}
			vols = append(vols, v)
		}
		return rows.Err()
	})
	return vols, err
}

// Volume returns the volume with a label; an error matching ErrNotFound when
// there is none.
func (c *Catalog) Volume(ctx context.Context, label string) (*Volume, error) {
	var v Volume
	err := c.read(ctx, fmt.Sprintf("read volume %q", label), func(tx *sql.Tx) error {
		var err error
		v, err = scanVolume(tx.QueryRow(`SELECT `+volumeCols+` FROM volumes WHERE label = ?`, label))
		if errors.Is(err, sql.ErrNoRows) {
			return notFoundf("no volume labelled %q", label)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &v, nil
}

// AddVolume records a newly labelled volume and returns its id. v.Written is
// normally "" (a rebuild from volumes may give the datestamp found on it).
// v.Reuse and v.Bytes are ignored: a new volume is reusable and holds nothing
// (use SetVolumeReuse to retire one). A label already in the catalog is an
// error matching ErrExists.
func (c *Catalog) AddVolume(ctx context.Context, v Volume) (int64, error) {
	op := fmt.Sprintf("add volume %q", v.Label)
	var problems []error
	if err := checkName("volume label", v.Label, false); err != nil {
		problems = append(problems, err)
	}
	if v.Slot < 0 || v.Blocksize < 0 {
		problems = append(problems, fmt.Errorf("slot %d or block size %d is negative", v.Slot, v.Blocksize))
	}
	if v.Written != "" {
		if err := checkDatestamp(v.Written); err != nil {
			problems = append(problems, err)
		}
	}
	if err := errors.Join(problems...); err != nil {
		return 0, c.fail(op, err)
	}
	var id int64
	err := c.write(ctx, op, func(tx *sql.Tx) error {
		var owner string
		if tx.QueryRow(`SELECT server FROM volumes WHERE label = ?`, v.Label).Scan(&owner) == nil {
			if err := c.owned(v.Label, owner); err != nil {
				return err
			}
		}
		err := tx.QueryRow(`INSERT INTO volumes(label, slot, blocksize, written, created, reuse, bytes, server)
			VALUES (?, ?, ?, ?, ?, 1, 0, ?) RETURNING id`, v.Label, v.Slot, v.Blocksize, v.Written, toNS(v.Created), c.server).Scan(&id)
		if isUnique(err) {
			return &exists{fmt.Sprintf("a volume labelled %q is already in the catalog; labels are unique, choose another", v.Label)}
		}
		return err
	})
	return id, err
}

// SetVolumeReuse marks a volume reusable (true) or retired (false). A
// retired volume that has been written is never started again.
func (c *Catalog) SetVolumeReuse(ctx context.Context, label string, reuse bool) error {
	return c.write(ctx, fmt.Sprintf("set reuse of volume %q", label), func(tx *sql.Tx) error {
		var owner string
		if tx.QueryRow(`SELECT server FROM volumes WHERE label = ?`, label).Scan(&owner) == nil {
			if err := c.owned(label, owner); err != nil {
				return err
			}
		}
		res, err := tx.Exec(`UPDATE volumes SET reuse = ? WHERE label = ?`, reuse, label)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return notFoundf("no volume labelled %q", label)
		}
		return nil
	})
}

// StartVolumeWrite is called once a run's new label is on a volume and was
// read back (the second phase of an overwrite; BeginOverwrite is the
// first). In one transaction it drops from the catalog every dump
// that had a part on the volume, with all its parts (also those on other
// volumes: a dump missing a part is not restorable), files and frames; then it
// records the volume's slot and block size, written = datestamp and bytes = 0.
// It returns the dropped dumps as they were, for the report. The volume must
// be in the catalog (AddVolume) and, if it was written before, reusable.
func (c *Catalog) StartVolumeWrite(ctx context.Context, label string, slot int, blocksize int64, datestamp string) ([]Dump, error) {
	op := fmt.Sprintf("start writing volume %q", label)
	if err := checkDatestamp(datestamp); err != nil {
		return nil, c.fail(op, err)
	}
	if slot < 0 || blocksize <= 0 {
		return nil, c.fail(op, fmt.Errorf("slot %d must not be negative and block size %d must be positive", slot, blocksize))
	}
	var dropped []Dump
	err := c.write(ctx, op, func(tx *sql.Tx) error {
		var volID int64
		var written, owner string
		var reuse bool
		err := tx.QueryRow(`SELECT id, written, reuse, server FROM volumes WHERE label = ?`, label).Scan(&volID, &written, &reuse, &owner)
		if errors.Is(err, sql.ErrNoRows) {
			return notFoundf("no volume labelled %q (label it first)", label)
		}
		if err != nil {
			return err
		}
		if err := c.owned(label, owner); err != nil {
			return err
		}
		if !reuse && written != "" {
			return fmt.Errorf("volume is marked not reusable (last written %s); it is never overwritten unless an administrator marks it reusable", written)
		}
		if dropped, err = dropVolumeDumpsTx(tx, volID); err != nil {
			return err
		}
		if owner == "" {
			owner = c.server
		}
		_, err = tx.Exec(`UPDATE volumes SET slot = ?, blocksize = ?, written = ?, bytes = 0, overwriting = '', overwriting_as = '', server = ? WHERE id = ?`,
			slot, blocksize, datestamp, owner, volID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return dropped, nil
}

// Part is a piece of a dump's payload on one volume: payload bytes [Offset,
// Offset+Length) are in tape file FileNo of Volume, starting at record Record
// (the 32 KiB header record of that file) and drive logical position
// LogicalPos (-1 when unknown). Parts count from 1.
type Part struct {
	DumpID                                     int64
	Volume                                     string
	Part                                       int
	FileNo, Record, LogicalPos, Offset, Length int64
}

// CommitTaped records, in one durable (synchronous=FULL) transaction, that a
// "holding" dump is wholly on tape: it inserts the parts, adds their lengths
// to their volumes' bytes, sets the status to "good", the taped time to
// finished, and clears holding_path. The parts must be numbered 1..n and cover
// the payload exactly, in order; every volume must have been started with
// StartVolumeWrite. A good level 0 clears the force flag of its DLE
// (SetForce). Only after it returns nil may the holding file be deleted.
func (c *Catalog) CommitTaped(ctx context.Context, dumpID int64, parts []Part, finished time.Time) error {
	op := fmt.Sprintf("commit taped dump %d", dumpID)
	if len(parts) == 0 {
		return c.fail(op, errors.New("no parts given"))
	}
	if finished.IsZero() {
		return c.fail(op, errors.New("finish time is missing"))
	}
	return c.write(ctx, op, func(tx *sql.Tx) error {
		var status, host, path string
		var payload int64
		var level int
		err := tx.QueryRow(`SELECT status, payload_size, host, path, level FROM dumps WHERE id = ?`, dumpID).Scan(&status, &payload, &host, &path, &level)
		if errors.Is(err, sql.ErrNoRows) {
			return notFoundf("no dump with id %d", dumpID)
		}
		if err != nil {
			return err
		}
		if status != DumpHolding {
			return fmt.Errorf("dump is %q, not %q (SetDumpHolding comes first; a dump is taped once)", status, DumpHolding)
		}
		vols, err := checkPartsTx(tx, dumpID, parts, payload, "dump is committed", nil)
		if err != nil {
			return err
		}
		for _, p := range parts {
			if _, err := tx.Exec(`INSERT INTO parts(dump_id, volume_id, part, fileno, record, logical_pos, "offset", length)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
				dumpID, vols[p.Volume], p.Part, p.FileNo, p.Record, p.LogicalPos, p.Offset, p.Length); err != nil {
				return err
			}
			if _, err := tx.Exec(`UPDATE volumes SET bytes = bytes + ? WHERE id = ?`, p.Length, vols[p.Volume]); err != nil {
				return err
			}
		}
		return markTapedTx(tx, dumpID, host, path, level, finished)
	})
}

// markTapedTx makes a dump whose parts are recorded good, taped at when,
// off the holding disk; a good full ends its DLE's forced full.
func markTapedTx(tx *sql.Tx, dumpID int64, host, path string, level int, when time.Time) error {
	if _, err := tx.Exec(`UPDATE dumps SET status = 'good', holding_path = '', taped = ? WHERE id = ?`,
		clampNS(when), dumpID); err != nil {
		return err
	}
	if level == 0 {
		if _, err := tx.Exec(`DELETE FROM force WHERE host = ? AND path = ?`, host, path); err != nil {
			return err
		}
	}
	return nil
}

// Parts returns the parts of a dump in order; an error matching ErrNotFound
// when the dump is not in the catalog.
func (c *Catalog) Parts(ctx context.Context, dumpID int64) ([]Part, error) {
	var parts []Part
	err := c.read(ctx, fmt.Sprintf("read parts of dump %d", dumpID), func(tx *sql.Tx) error {
		if err := dumpExists(tx, dumpID); err != nil {
			return err
		}
		var err error
		parts, err = partsTx(tx, dumpID)
		return err
	})
	return parts, err
}

func partsTx(tx *sql.Tx, dumpID int64) ([]Part, error) {
	rows, err := tx.Query(`SELECT p.dump_id, v.label, p.part, p.fileno, p.record, p.logical_pos, p."offset", p.length
		FROM parts p JOIN volumes v ON v.id = p.volume_id WHERE p.dump_id = ? ORDER BY p.part`, dumpID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var parts []Part
	for rows.Next() {
		var p Part
		if err := rows.Scan(&p.DumpID, &p.Volume, &p.Part, &p.FileNo, &p.Record, &p.LogicalPos, &p.Offset, &p.Length); err != nil {
			return nil, err
		}
		parts = append(parts, p)
	}
	return parts, rows.Err()
}

// LabelVolume records that a volume was (re)labelled newLabel in slot:
// whatever the catalog knew of the volume before — under oldLabel, ""
// when it was blank or foreign — is forgotten in one transaction: every
// dump with a part on it (with all its parts, files and frames), and the old
// volume row. The new volume is reusable, never written, empty. It returns
// the dumps that were dropped, for the person who asked. A newLabel that
// another volume already carries is an error matching ErrExists.
func (c *Catalog) LabelVolume(ctx context.Context, oldLabel, newLabel string, slot int, blocksize int64, created time.Time) ([]Dump, error) {
	op := fmt.Sprintf("label volume %q", newLabel)
	if err := checkName("volume label", newLabel, false); err != nil {
		return nil, c.fail(op, err)
	}
	if slot < 0 || blocksize < 0 {
		return nil, c.fail(op, fmt.Errorf("slot %d or block size %d is negative", slot, blocksize))
	}
	var dropped []Dump
	err := c.write(ctx, op, func(tx *sql.Tx) error {
		if newLabel != oldLabel {
			var owner string
			err := tx.QueryRow(`SELECT server FROM volumes WHERE label = ?`, newLabel).Scan(&owner)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			if err == nil {
				if err := c.owned(newLabel, owner); err != nil {
					return err
				}
				return &exists{fmt.Sprintf("a volume labelled %q is already in the catalog; labels are unique, choose another (or relabel that volume)", newLabel)}
			}
		}
		if oldLabel != "" {
			var volID int64
			var owner string
			err := tx.QueryRow(`SELECT id, server FROM volumes WHERE label = ?`, oldLabel).Scan(&volID, &owner)
			switch {
			case errors.Is(err, sql.ErrNoRows):
			case err != nil:
				return err
			default:
				if err := c.owned(oldLabel, owner); err != nil {
					return err
				}
				if dropped, err = dropVolumeDumpsTx(tx, volID); err != nil {
					return err
				}
				if _, err := tx.Exec(`DELETE FROM volumes WHERE id = ?`, volID); err != nil {
					return err
				}
			}
		}
		_, err := tx.Exec(`INSERT INTO volumes(label, slot, blocksize, written, created, reuse, bytes, server) VALUES (?, ?, ?, '', ?, 1, 0, ?)`,
			newLabel, slot, blocksize, toNS(created), c.server)
		return err
	})
	if err != nil {
		return nil, err
	}
	return dropped, nil
}

// DumpsOnVolume returns the dumps with a part on the volume, oldest first.
func (c *Catalog) DumpsOnVolume(ctx context.Context, label string) ([]Dump, error) {
	return c.queryDumps(ctx, fmt.Sprintf("list dumps on volume %q", label), `SELECT `+dumpCols+` FROM dumps
		WHERE id IN (SELECT dump_id FROM parts JOIN volumes ON volumes.id = parts.volume_id WHERE volumes.label = ?)
		ORDER BY datestamp, id`, label)
}

// dropVolumeDumpsTx forgets every dump with a part on the volume (the
// delete cascades to parts, files and frames) and the failed tape files
// recorded on it, and returns what it forgot,
// oldest first, for the caller to report.
//
// Copies (vault.go) come first: a copy with a part on the volume is
// forgotten whole, and a dump that has a whole copy elsewhere is not
// forgotten: that copy becomes its parts.
func dropVolumeDumpsTx(tx *sql.Tx, volID int64) ([]Dump, error) {
	if _, err := dropVolumeCopiesTx(tx, volID); err != nil {
		return nil, err
	}
	dropped, err := queryDumpsTx(tx, `SELECT `+dumpCols+` FROM dumps
		WHERE id IN (SELECT dump_id FROM parts WHERE volume_id = ?) ORDER BY datestamp, id`, volID)
	if err != nil {
		return nil, err
	}
	if _, err := tx.Exec(`DELETE FROM dumps WHERE id IN (SELECT dump_id FROM parts WHERE volume_id = ?)`, volID); err != nil {
		return nil, err
	}
	if len(dropped) > 0 {
		if err := sweepDumpdirsTx(tx); err != nil {
			return nil, err
		}
	}
	if _, err := tx.Exec(`DELETE FROM failed_files WHERE volume_id = ?`, volID); err != nil {
		return nil, err
	}
	return dropped, nil
}

// checkPartsTx checks that parts are the whole payload of dump dumpID, in
// order and contiguous, on volumes of the catalog started for writing,
// and returns those volumes' ids by label. also, when not nil, adds a check
// of each part. whole ends the error of parts that do not cover the
// payload ("only a whole " + whole).
func checkPartsTx(tx *sql.Tx, dumpID int64, parts []Part, payload int64, whole string, also func(Part) error) (map[string]int64, error) {
	var end int64
	vols := map[string]int64{}
	for i, p := range parts {
		switch {
		case p.DumpID != 0 && p.DumpID != dumpID:
			return nil, fmt.Errorf("part %d belongs to dump %d", p.Part, p.DumpID)
		case p.Part != i+1:
			return nil, fmt.Errorf("part %d of %d is numbered %d; parts are numbered 1..%d in order", i+1, len(parts), p.Part, len(parts))
		case p.Offset != end:
			return nil, fmt.Errorf("part %d starts at payload offset %d, expected %d (parts are contiguous)", p.Part, p.Offset, end)
		case p.Length <= 0:
			return nil, fmt.Errorf("part %d has length %d", p.Part, p.Length)
		case p.FileNo < 1 || p.Record < 0 || p.LogicalPos < -1:
			return nil, fmt.Errorf("part %d has tape file %d, record %d, logical position %d (file 0 is the label; -1 means unknown position)", p.Part, p.FileNo, p.Record, p.LogicalPos)
		}
		if also != nil {
			if err := also(p); err != nil {
				return nil, err
			}
		}
		end += p.Length
		if err := partVolumeTx(tx, vols, p); err != nil {
			return nil, err
		}
	}
	if end != payload {
		return nil, fmt.Errorf("parts cover %d payload bytes but the payload is %d bytes; only a whole %s", end, payload, whole)
	}
	return vols, nil
}

// partVolumeTx puts the id of the volume of part p into vols (by label),
// unless it is there already: the volume must be in the catalog and
// started for writing.
func partVolumeTx(tx *sql.Tx, vols map[string]int64, p Part) error {
	if _, ok := vols[p.Volume]; ok {
		return nil
	}
	var id int64
	var written string
	err := tx.QueryRow(`SELECT id, written FROM volumes WHERE label = ?`, p.Volume).Scan(&id, &written)
	if errors.Is(err, sql.ErrNoRows) {
		return notFoundf("part %d is on volume %q, which is not in the catalog", p.Part, p.Volume)
	}
	if err != nil {
		return err
	}
	if written == "" {
		return fmt.Errorf("part %d is on volume %q, which was never started for writing (StartVolumeWrite)", p.Part, p.Volume)
	}
	vols[p.Volume] = id
	return nil
}
