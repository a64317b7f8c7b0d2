package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// An overwrite happens in two phases, so that the catalog never forgets
// images that are still on a volume, nor keeps images that are gone:
//
//  1. BeginOverwrite marks the volume: a new label (stamp, as) is about to
//     be written over it. Its images stay known.
//  2. The new label is written and read back. Then StartVolumeWrite (a
//     run reusing the volume under its label) or LabelVolume (a new
//     label) drops the old images and clears the mark. If the write
//     failed, EndOverwrite says what the volume holds now: the old label
//     (the mark is cleared, the images stay) or not (the images and the
//     volume leave the catalog).
//
// A kill between the phases leaves the mark; the next look at the volume
// (ResolveOverwrite) finishes or undoes it from what the volume's label
// says.

// NeverWrittenStamp is the datestamp of a label written by tapir label.
const NeverWrittenStamp = "X"

// BeginOverwrite marks the volume label as being overwritten by a new
// label as, with datestamp stamp (a run's, or "X" for tapir label). A
// volume marked no-reuse that was written is refused, as in
// StartVolumeWrite. An error matching ErrNotFound when the catalog does
// not know the volume (then there is nothing to protect: write directly).
func (c *Catalog) BeginOverwrite(ctx context.Context, label, stamp, as string) error {
	op := fmt.Sprintf("begin overwriting volume %q", label)
	if stamp != NeverWrittenStamp {
		if err := checkDatestamp(stamp); err != nil {
			return c.fail(op, err)
		}
	}
	if err := checkName("volume label", as, false); err != nil {
		return c.fail(op, err)
	}
	return c.write(ctx, op, func(tx *sql.Tx) error {
		var written, owner string
		var reuse bool
		err := tx.QueryRow(`SELECT written, reuse, server FROM volumes WHERE label = ?`, label).Scan(&written, &reuse, &owner)
		if errors.Is(err, sql.ErrNoRows) {
			return notFoundf("no volume labelled %q", label)
		}
		if err != nil {
			return err
		}
		if err := c.owned(label, owner); err != nil {
			return err
		}
		if !reuse && written != "" {
			return fmt.Errorf("volume is marked not reusable (last written %s); it is never overwritten unless an administrator marks it reusable (tapir admin reuse %s)", written, label)
		}
		_, err = tx.Exec(`UPDATE volumes SET overwriting = ?, overwriting_as = ? WHERE label = ?`, stamp, as, label)
		return err
	})
}

// EndOverwrite ends an overwrite whose new label was not written. kept
// says the volume still carries its old label (nothing was erased): the
// mark is cleared and the images stay known. Otherwise the old images are
// gone from the media: they and the volume leave the catalog, and the
// dropped dumps are returned for the report.
func (c *Catalog) EndOverwrite(ctx context.Context, label string, kept bool) ([]Dump, error) {
	op := fmt.Sprintf("end the overwrite of volume %q", label)
	var dropped []Dump
	err := c.write(ctx, op, func(tx *sql.Tx) error {
		var id int64
		var owner string
		err := tx.QueryRow(`SELECT id, server FROM volumes WHERE label = ?`, label).Scan(&id, &owner)
		if errors.Is(err, sql.ErrNoRows) {
			return notFoundf("no volume labelled %q", label)
		}
		if err != nil {
			return err
		}
		if err := c.owned(label, owner); err != nil {
			return err
		}
		if kept {
			_, err = tx.Exec(`UPDATE volumes SET overwriting = '', overwriting_as = '' WHERE id = ?`, id)
			return err
		}
		if dropped, err = dropVolumeDumpsTx(tx, id); err != nil {
			return err
		}
		_, err = tx.Exec(`DELETE FROM volumes WHERE id = ?`, id)
		return err
	})
	return dropped, err
}

// RemoveVolume forgets a volume and every dump with a part on it (tapir
// admin rmvolume). It returns the dumps dropped; an error matching
// ErrNotFound when there is no such volume.
func (c *Catalog) RemoveVolume(ctx context.Context, label string) ([]Dump, error) {
	return c.EndOverwrite(ctx, label, false)
}

// FailedFile is a tape file that a failed write left on a volume: not an
// image, not an orphan.
type FailedFile struct {
	Volume     string
	FileNo     int64
	Datestamp  string
	Host, Path string
	Level      int
	Reason     string
}

// RecordFailedFile records that tape file f.FileNo of volume f.Volume was
// left by a failed write. Recording it twice replaces the first record.
func (c *Catalog) RecordFailedFile(ctx context.Context, f FailedFile) error {
	op := fmt.Sprintf("record failed file %d of volume %q", f.FileNo, f.Volume)
	if f.FileNo < 1 {
		return c.fail(op, fmt.Errorf("tape file %d: file 0 is the label", f.FileNo))
	}
	return c.write(ctx, op, func(tx *sql.Tx) error {
		var id int64
		err := tx.QueryRow(`SELECT id FROM volumes WHERE label = ?`, f.Volume).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return notFoundf("no volume labelled %q", f.Volume)
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(`INSERT INTO failed_files(volume_id, fileno, datestamp, host, path, level, reason)
			VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (volume_id, fileno) DO UPDATE SET datestamp = excluded.datestamp, host = excluded.host,
				path = excluded.path, level = excluded.level, reason = excluded.reason`, id, f.FileNo, f.Datestamp, f.Host, f.Path, f.Level, f.Reason)
		return err
	})
}

// FailedFiles returns the failed tape files recorded on a volume, by file
// number.
func (c *Catalog) FailedFiles(ctx context.Context, label string) ([]FailedFile, error) {
	var out []FailedFile
	err := c.read(ctx, fmt.Sprintf("list failed files of volume %q", label), func(tx *sql.Tx) error {
		rows, err := tx.Query(`SELECT v.label, f.fileno, f.datestamp, f.host, f.path, f.level, f.reason
			FROM failed_files f JOIN volumes v ON v.id = f.volume_id WHERE v.label = ? ORDER BY f.fileno`, label)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var f FailedFile
			if err := rows.Scan(&f.Volume, &f.FileNo, &f.Datestamp, &f.Host, &f.Path, &f.Level, &f.Reason); err != nil {
				return err
			}
			out = append(out, f)
		}
		return rows.Err()
	})
	return out, err
}

// Chain is a DLE's newest restorable chain: its newest good full and every
// good incremental after it, oldest first, with the volumes that hold a
// part of any of them.
type Chain struct {
	Host, Path string
	Dumps      []Dump
	Volumes    []string // sorted
}

// Full is the chain's level 0.
func (ch *Chain) Full() Dump { return ch.Dumps[0] }

// Chains returns the newest restorable chain of every DLE the catalog has
// a good full of (DLEs no longer configured included: their last chain is
// still what a restore needs), by host and path.
func (c *Catalog) Chains(ctx context.Context) ([]Chain, error) {
	var out []Chain
	err := c.read(ctx, "list the newest chains", func(tx *sql.Tx) error {
		var err error
		out, err = chainsTx(tx, c.d)
		return err
	})
	return out, err
}

func chainsTx(tx *sql.Tx, d dialect) ([]Chain, error) {
	rows, err := tx.Query(`WITH f AS (
			SELECT host, path, max(datestamp) AS ds FROM dumps WHERE status = 'good' AND level = 0 GROUP BY host, path)
		SELECT ` + dumpColsAs("d") + `, coalesce((SELECT ` + d.strAgg("label", d.newline()) + ` FROM
				(SELECT DISTINCT v.label FROM parts p JOIN volumes v ON v.id = p.volume_id WHERE p.dump_id = d.id) AS l), '')
		FROM dumps d JOIN f ON d.host = f.host AND d.path = f.path AND d.datestamp >= f.ds
		WHERE d.status = 'good' AND (d.level > 0 OR d.datestamp = f.ds)
		ORDER BY d.host, d.path, d.datestamp, d.level, d.id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Chain
	var vols map[string]bool
	flush := func() {
		if len(out) == 0 {
			return
		}
		ch := &out[len(out)-1]
		for l := range vols {
			ch.Volumes = append(ch.Volumes, l)
		}
		sort.Strings(ch.Volumes)
	}
	for rows.Next() {
		var labels string
		d, err := scanDump(rows, &labels)
		if err != nil {
			return nil, err
		}
		if len(out) == 0 || out[len(out)-1].Host != d.Host || out[len(out)-1].Path != d.Path {
			flush()
			out = append(out, Chain{Host: d.Host, Path: d.Path})
			vols = map[string]bool{}
		}
		ch := &out[len(out)-1]
		ch.Dumps = append(ch.Dumps, d)
		for _, l := range strings.Split(labels, "\n") {
			if l != "" {
				vols[l] = true
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	flush()
	return out, nil
}
