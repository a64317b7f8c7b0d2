package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"time"
)

// ImageCopy is one further copy of a good image (tapir vault): its number
// (1, 2, ...; the image's parts are its first location), its parts in
// order, on volumes of another label set, and when it was written.
type ImageCopy struct {
	DumpID int64
	Copy   int
	Parts  []Part
	Copied time.Time
}

// Volumes returns the labels the copy is on, in part order, each once.
func (c ImageCopy) Volumes() []string { return PartVolumes(c.Parts) }

// PartVolumes returns the labels parts are on, in part order, each once.
func PartVolumes(parts []Part) []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range parts {
		if !seen[p.Volume] {
			seen[p.Volume] = true
			out = append(out, p.Volume)
		}
	}
	return out
}

// RecordCopy records, in one durable transaction, a whole copy of the good
// dump dumpID, or of one still waiting on the holding disk, written at
// copied: the parts must be numbered 1..n and cover
// the payload exactly, in order, each on a volume started with
// StartVolumeWrite that holds none of the dump's parts (a copy on the
// image's own volume is no copy). It returns the copy's number.
func (c *Catalog) RecordCopy(ctx context.Context, dumpID int64, parts []Part, copied time.Time) (int, error) {
	op := fmt.Sprintf("record a copy of dump %d", dumpID)
	if len(parts) == 0 {
		return 0, c.fail(op, errors.New("no parts given"))
	}
	if copied.IsZero() {
		return 0, c.fail(op, errors.New("copy time is missing"))
	}
	var n int
	err := c.write(ctx, op, func(tx *sql.Tx) error {
		var status string
		var payload int64
		err := tx.QueryRow(`SELECT status, payload_size FROM dumps WHERE id = ?`, dumpID).Scan(&status, &payload)
		if errors.Is(err, sql.ErrNoRows) {
			return notFoundf("no dump with id %d", dumpID)
		}
		if err != nil {
			return err
		}
		if status != DumpGood && status != DumpHolding {
			return fmt.Errorf("dump is %q: only a good image (wholly on volumes) or one waiting on the holding disk is copied", status)
		}
		own, err := partsTx(tx, dumpID)
		if err != nil {
			return err
		}
		ownVol := map[string]bool{}
		for _, p := range own {
			ownVol[p.Volume] = true
		}
		vols, err := checkPartsTx(tx, dumpID, parts, payload, "copy is recorded", func(p Part) error {
			if ownVol[p.Volume] {
				return fmt.Errorf("part %d is on volume %q, which holds the image itself: a copy must be on other volumes", p.Part, p.Volume)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if err := tx.QueryRow(`SELECT coalesce(max(copy), 0) + 1 FROM copies WHERE dump_id = ?`, dumpID).Scan(&n); err != nil {
			return err
		}
		for _, p := range parts {
			if _, err := tx.Exec(`INSERT INTO copies(dump_id, copy, part, volume_id, fileno, record, logical_pos, "offset", length, copied)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				dumpID, n, p.Part, vols[p.Volume], p.FileNo, p.Record, p.LogicalPos, p.Offset, p.Length, clampNS(copied)); err != nil {
				return err
			}
			if _, err := tx.Exec(`UPDATE volumes SET bytes = bytes + ? WHERE id = ?`, p.Length, vols[p.Volume]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// KeepOnCopy is what becomes of an image waiting on the holding disk
// (status holding) that is lost there — its file vanished, or deleted by
// an administrator — when it has a whole copy (tapir vault copied it
// before any flush): in one durable transaction its lowest-numbered copy
// becomes its parts, and it is good, taped at the copy's time, as if
// flushed onto the copy's volumes. It returns those volumes' labels; none,
// and nothing changed, when the dump is not waiting on the holding disk
// or has no copy (the caller then fails it: FailDump).
func (c *Catalog) KeepOnCopy(ctx context.Context, dumpID int64) ([]string, error) {
	var labels []string
	err := c.write(ctx, fmt.Sprintf("keep dump %d on its copy", dumpID), func(tx *sql.Tx) error {
		var status, host, path string
		var level int
		err := tx.QueryRow(`SELECT status, host, path, level FROM dumps WHERE id = ?`, dumpID).Scan(&status, &host, &path, &level)
		if errors.Is(err, sql.ErrNoRows) {
			return notFoundf("no dump with id %d", dumpID)
		}
		if err != nil || status != DumpHolding {
			return err
		}
		all, err := copiesTx(tx, `WHERE k.dump_id = ?`, dumpID)
		if err != nil || len(all[dumpID]) == 0 {
			return err
		}
		first := all[dumpID][0]
		if err := promoteCopyTx(tx, dumpID, first.Copy); err != nil {
			return err
		}
		if err := markTapedTx(tx, dumpID, host, path, level, first.Copied); err != nil {
			return err
		}
		labels = first.Volumes()
		return nil
	})
	return labels, err
}

// Copies returns the copies of a dump, by number; none when it has none.
func (c *Catalog) Copies(ctx context.Context, dumpID int64) ([]ImageCopy, error) {
	var out []ImageCopy
	err := c.read(ctx, fmt.Sprintf("read the copies of dump %d", dumpID), func(tx *sql.Tx) error {
		all, err := copiesTx(tx, `WHERE k.dump_id = ?`, dumpID)
		out = all[dumpID]
		return err
	})
	return out, err
}

// AllCopies returns every copy the catalog knows, by dump id.
func (c *Catalog) AllCopies(ctx context.Context) (map[int64][]ImageCopy, error) {
	var out map[int64][]ImageCopy
	err := c.read(ctx, "read the copies", func(tx *sql.Tx) error {
		var err error
		out, err = copiesTx(tx, "")
		return err
	})
	return out, err
}

// DumpsCopiedOnVolume returns the dumps with a part of a copy on the
// volume, oldest first.
func (c *Catalog) DumpsCopiedOnVolume(ctx context.Context, label string) ([]Dump, error) {
	return c.queryDumps(ctx, fmt.Sprintf("list the copies on volume %q", label), `SELECT `+dumpCols+` FROM dumps
		WHERE id IN (SELECT dump_id FROM copies JOIN volumes ON volumes.id = copies.volume_id WHERE volumes.label = ?)
		ORDER BY datestamp, id`, label)
}

func copiesTx(tx *sql.Tx, where string, args ...any) (map[int64][]ImageCopy, error) {
	rows, err := tx.Query(`SELECT k.dump_id, k.copy, v.label, k.part, k.fileno, k.record, k.logical_pos, k."offset", k.length, k.copied
		FROM copies k JOIN volumes v ON v.id = k.volume_id `+where+` ORDER BY k.dump_id, k.copy, k.part`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int64][]ImageCopy{}
	for rows.Next() {
		var p Part
		var n int
		var copied sql.NullInt64
		if err := rows.Scan(&p.DumpID, &n, &p.Volume, &p.Part, &p.FileNo, &p.Record, &p.LogicalPos, &p.Offset, &p.Length, &copied); err != nil {
			return nil, err
		}
		cs := out[p.DumpID]
		if len(cs) == 0 || cs[len(cs)-1].Copy != n {
			cs = append(cs, ImageCopy{DumpID: p.DumpID, Copy: n, Copied: fromNS(copied)})
		}
		cs[len(cs)-1].Parts = append(cs[len(cs)-1].Parts, p)
		out[p.DumpID] = cs
	}
	return out, rows.Err()
}

// dropVolumeCopiesTx is the part of dropVolumeDumpsTx that knows copies:
// every copy with a part on the volume is forgotten whole; then every
// dump with a part of its own on the volume that has a whole copy
// elsewhere keeps living on that copy (its lowest-numbered one becomes
// its parts). It returns the ids of the dumps kept so.
func dropVolumeCopiesTx(tx *sql.Tx, volID int64) ([]int64, error) {
	if _, err := tx.Exec(`DELETE FROM copies WHERE EXISTS (SELECT 1 FROM copies o
		WHERE o.volume_id = ? AND o.dump_id = copies.dump_id AND o.copy = copies.copy)`, volID); err != nil {
		return nil, err
	}
	ids, err := queryInts(tx, `SELECT DISTINCT p.dump_id FROM parts p WHERE p.volume_id = ?
		AND EXISTS (SELECT 1 FROM copies k WHERE k.dump_id = p.dump_id)`, volID)
	if err != nil {
		return nil, err
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		var n int
		if err := tx.QueryRow(`SELECT min(copy) FROM copies WHERE dump_id = ?`, id).Scan(&n); err != nil {
			return nil, err
		}
		if err := promoteCopyTx(tx, id, n); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// promoteCopyTx makes copy n of dump id its parts: the parts it had are
// dropped, the copy's rows move. The volumes' byte counts stay: the
// bytes were counted when the copy was recorded.
func promoteCopyTx(tx *sql.Tx, id int64, n int) error {
	if _, err := tx.Exec(`DELETE FROM parts WHERE dump_id = ?`, id); err != nil {
		return err
	}
	if _, err := tx.Exec(`INSERT INTO parts(dump_id, volume_id, part, fileno, record, logical_pos, "offset", length)
		SELECT dump_id, volume_id, part, fileno, record, logical_pos, "offset", length FROM copies
		WHERE dump_id = ? AND copy = ? ORDER BY part`, id, n); err != nil {
		return err
	}
	_, err := tx.Exec(`DELETE FROM copies WHERE dump_id = ? AND copy = ?`, id, n)
	return err
}
