package catalog

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"
)

// Version is one version of a file: its index record in one image.
type Version struct {
	Dump Dump // the image (its datestamp, level, id, status...)
	FileRecord
}

// FindVersions returns every version of the files of a DLE whose last
// path component (or, when the pattern holds a '/', whose whole path
// relative to the DLE root) matches the shell pattern (* ? [...], as
// View.Find), across all the restorable (good or holding) images of the
// DLE, whatever their chain: sorted by path, then oldest image first. A
// name stored twice in one image counts once, its latest occurrence. At
// most limit versions are returned (limit <= 0: all); more reports
// whether there were more.
//
// It does not apply deletions: a version is there as long as its image
// is. The names table gives the candidate (name, directory) pairs without
// reading the index of every image: a name, or a pattern that starts with
// a literal part, is found through its key.
func (c *Catalog) FindVersions(ctx context.Context, host, dle, pattern string, limit int) (out []Version, more bool, err error) {
	op := fmt.Sprintf("find versions of %q in %s:%s", pattern, host, dle)
	if pattern == "" || strings.IndexByte(pattern, 0) >= 0 {
		return nil, false, c.fail(op, fmt.Errorf("pattern %q is empty or holds a NUL", pattern))
	}
	pat := strings.TrimPrefix(pattern, "/")
	namePat, whole := pat, false
	if i := strings.LastIndexByte(pat, '/'); i >= 0 {
		namePat, whole = pat[i+1:], true
	}
	if namePat == "" {
		return nil, false, c.fail(op, fmt.Errorf("pattern %q ends with '/': give a name pattern after the last '/'", pattern))
	}
	err = c.read(ctx, op, func(tx *sql.Tx) error {
		dumps, err := queryDumpsTx(tx, `SELECT `+dumpCols+` FROM dumps WHERE host = ? AND path = ?
			AND status IN ('good', 'holding') ORDER BY datestamp, id`, host, dle)
		if err != nil {
			return err
		}
		if len(dumps) == 0 {
			return notFoundf("no image of %s:%s is in the catalog (check the host and the DLE with listhost and listdisk)", host, dle)
		}
		byID := make(map[int64]*Dump, len(dumps))
		args := make([]any, 0, len(dumps)+2)
		for i := range dumps {
			byID[dumps[i].ID] = &dumps[i]
			args = append(args, dumps[i].ID)
		}
		// The candidate pairs first, from names alone (by its key when the
		// pattern starts with a literal part), sorted by path; then each
		// pair's rows in the DLE's images, by the files key, until the
		// limit.
		cond, arg := c.d.glob("n.name", namePat)
		cargs := []any{arg}
		if whole {
			wc, warg := c.d.glob("(CASE p.path WHEN '' THEN n.name ELSE p.path || '/' || n.name END)", pat)
			cond += " AND " + wc
			cargs = append(cargs, warg)
		}
		type pair struct {
			dir, name, path string
			dirID           int64
		}
		var pairs []pair
		prow, err := tx.QueryContext(ctx, `SELECT p.path, n.name, n.dir_id FROM names n JOIN dirs p ON p.id = n.dir_id WHERE `+cond, cargs...)
		if err != nil {
			return err
		}
		for n := 0; prow.Next(); n++ {
			if n%4096 == 0 {
				if err := cancelled(ctx); err != nil {
					prow.Close()
					return err
				}
			}
			var p pair
			if err := prow.Scan(&p.dir, &p.name, &p.dirID); err != nil {
				prow.Close()
				return err
			}
			pairs = append(pairs, p)
		}
		prow.Close()
		if err := prow.Err(); err != nil {
			return err
		}
		full := func(p pair) string {
			if p.dir == "" {
				return p.name
			}
			return p.dir + "/" + p.name
		}
		for i := range pairs {
			pairs[i].path = full(pairs[i]) // once, not in every comparison
		}
		sort.Slice(pairs, func(i, j int) bool { return pairs[i].path < pairs[j].path })
		st, err := tx.PrepareContext(ctx, `SELECT dump_id, packed FROM files
			WHERE dump_id IN (?`+strings.Repeat(", ?", len(dumps)-1)+`) AND dir_id = ? AND lo <= ? AND (hi >= ? OR hi = '')
			ORDER BY dump_id, seq`)
		if err != nil {
			return err
		}
		defer st.Close()
		var all []Version
		var es []entry
		for k, p := range pairs {
			if limit > 0 && len(all) > limit {
				break // enough to say there are more
			}
			if k%256 == 0 {
				if err := cancelled(ctx); err != nil {
					return err
				}
			}
			rows, err := st.QueryContext(ctx, append(args, p.dirID, p.name, p.name)...)
			if err != nil {
				return err
			}
			// The latest occurrence of the name in each image.
			latest := map[int64]entry{}
			for rows.Next() {
				var id int64
				var b []byte
				if err := rows.Scan(&id, &b); err != nil {
					rows.Close()
					return err
				}
				if es, err = unpackEntries(b, es[:0]); err != nil {
					rows.Close()
					return fmt.Errorf("image %s: %w", byID[id].Datestamp, err)
				}
				for _, e := range es {
					if e.name != p.name {
						continue
					}
					if old, ok := latest[id]; !ok || e.tarOff >= old.tarOff {
						latest[id] = e
					}
				}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			for id, e := range latest {
				all = append(all, Version{Dump: *byID[id], FileRecord: e.record(p.dir)})
			}
		}
		// Within one path, oldest image first (the rows come by dump id).
		for i := 0; i < len(all); {
			j := i + 1
			for j < len(all) && all[j].Path == all[i].Path {
				j++
			}
			sortVersions(all[i:j])
			i = j
		}
		if limit > 0 && len(all) > limit {
			all, more = all[:limit], true
		}
		out = all
		return nil
	})
	return out, more, err
}

// sortVersions sorts the versions of one path by image date.
func sortVersions(vs []Version) {
	for i := 1; i < len(vs); i++ {
		for j := i; j > 0 && (vs[j].Dump.Datestamp < vs[j-1].Dump.Datestamp ||
			vs[j].Dump.Datestamp == vs[j-1].Dump.Datestamp && vs[j].Dump.ID < vs[j-1].Dump.ID); j-- {
			vs[j], vs[j-1] = vs[j-1], vs[j]
		}
	}
}
