package catalog

import (
	"context"
	"database/sql"
	"fmt"
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
		cond, arg := c.d.glob("n.name", namePat)
		args = append(args, arg)
		if whole {
			wc, warg := c.d.glob("(CASE p.path WHEN '' THEN n.name ELSE p.path || '/' || n.name END)", pat)
			cond += " AND " + wc
			args = append(args, warg)
		}
		// names (by its key when the pattern starts with a literal part),
		// then each image's rows of the pair by the files key.
		rows, err := tx.QueryContext(ctx, `SELECT f.dump_id, p.path, `+fileCols+`
			FROM names n JOIN dirs p ON p.id = n.dir_id
			JOIN files f ON f.dir_id = n.dir_id AND f.name = n.name
			WHERE f.dump_id IN (?`+strings.Repeat(", ?", len(dumps)-1)+`) AND `+cond+`
			ORDER BY CASE p.path WHEN '' THEN n.name ELSE p.path || '/' || n.name END, f.dump_id, f.frame, f."offset"`, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		var all []Version
		for n := 0; rows.Next(); n++ {
			if n%4096 == 0 {
				if err := cancelled(ctx); err != nil {
					return err
				}
			}
			var id int64
			var dir string
			var r FileRecord
			var frameSize int64
			dest, finish := scanFileInto(&r, "", &frameSize)
			if err := rows.Scan(append([]any{&id, &dir}, dest...)...); err != nil {
				return err
			}
			d := byID[id]
			frameSize = d.FrameSize
			finish()
			if dir != "" {
				r.Path = dir + "/" + r.Path
			}
			if k := len(all); k > 0 && all[k-1].Dump.ID == id && all[k-1].Path == r.Path {
				all[k-1].FileRecord = r // the latest occurrence in the image
				continue
			}
			if len(all) > 0 && all[len(all)-1].Path != r.Path && limit > 0 && len(all) > limit {
				break // a whole path past the limit: enough to say there are more
			}
			all = append(all, Version{Dump: *d, FileRecord: r})
		}
		if err := rows.Err(); err != nil {
			return err
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
