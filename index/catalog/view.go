package catalog

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/tapir-backup/tapir/gnutar"
)

// ErrNoListings is matched (errors.Is) by the error View methods return
// when an incremental of the chain has no directory listings in the
// catalog (Dump.Listed false): without them deleted files would show.
// Record them with SetListings (read from the image) and ask again.
var ErrNoListings = errors.New("directory listings not recorded")

// NoListingsError names the dump whose listings are missing.
type NoListingsError struct{ Dump Dump }

func (e *NoListingsError) Error() string {
	return fmt.Sprintf("the directory listings of the level %d image %s of %s:%s are not in the catalog", e.Dump.Level, e.Dump.Datestamp, e.Dump.Host, e.Dump.Path)
}

// Is makes errors.Is(err, ErrNoListings) true.
func (e *NoListingsError) Is(target error) bool { return target == ErrNoListings }

// View is a DLE as it was at a date: the newest restorable (good or
// holding) full at or before the date, then the incrementals after it up
// to the date (each of a lower level than the one after it, as a restore
// applies them), with every incremental's directory listings applied, so
// that what was deleted is gone and what was renamed is in its new place.
// Paths are relative to the DLE root ("" is the root). A View caches what
// it reads; it is not safe for concurrent use.
type View struct {
	c          *Catalog
	Host, Path string
	AsOf       string // the bound as given ("" = newest)
	Chain      []Dump // the images applied, the full first

	dirIDs   map[string]int64 // -1: not in the catalog
	listings map[listKey][]gnutar.DirEntry
	lcached  map[listKey]bool
}

// cancelled returns, once ctx is done, an error that matches ctx.Err().
func cancelled(ctx context.Context) error {
	if ctx.Err() == nil {
		return nil
	}
	return stopped(ctx)
}

type listKey struct {
	dump int
	dir  string
}

// ViewEntry is one name in a directory of a view.
type ViewEntry struct {
	Name string
	Type byte // tar typeflag of the entry ('5' for directories the image has no entry for)
	Dump int  // index in Chain of the image whose entry it is
}

// IsDir reports whether the entry is a directory.
func (e ViewEntry) IsDir() bool { return e.Type == '5' || e.Type == 'D' }

// ViewRecord is an entry of a view with its index record.
type ViewRecord struct {
	FileRecord
	Dump int // index in View.Chain
}

// IsDir reports whether the record is a directory.
func (r ViewRecord) IsDir() bool { return r.Type == '5' || r.Type == 'D' }

// Chain returns the images that make up a DLE as of asOf (a datestamp
// prefix, "" for the newest): the newest good or holding image at or before
// it, then, walking back, the newest image of a lower level before each,
// down to a full. Oldest first. With no full in that range the error
// matches ErrNotFound and says which dates there are.
func (c *Catalog) Chain(ctx context.Context, host, dle, asOf string) ([]Dump, error) {
	op := fmt.Sprintf("chain of %s:%s", host, dle)
	bound, err := normalizeAsOf(asOf)
	if err != nil {
		return nil, c.fail(op, err)
	}
	var chain []Dump
	err = c.read(ctx, op, func(tx *sql.Tx) error {
		all, err := queryDumpsTx(tx, `SELECT `+dumpCols+` FROM dumps WHERE host = ? AND path = ?
			AND status IN ('good', 'holding') ORDER BY datestamp DESC, id DESC`, host, dle)
		if err != nil {
			return err
		}
		if len(all) == 0 {
			return notFoundf("no image of %s:%s is in the catalog (check the host and the DLE with listhost and listdisk)", host, dle)
		}
		limit := 1 << 30
		for _, d := range all {
			if d.Datestamp > bound || d.Level >= limit {
				continue
			}
			chain = append(chain, d)
			limit = d.Level
			if d.Level == 0 {
				break
			}
		}
		if len(chain) == 0 || chain[len(chain)-1].Level != 0 {
			oldest := ""
			for _, d := range all {
				if d.Level == 0 {
					oldest = d.Datestamp
				}
			}
			if oldest == "" {
				return notFoundf("no full image of %s:%s is in the catalog: nothing can be restored until a level 0 is on a volume", host, dle)
			}
			return notFoundf("no full image of %s:%s at or before %s; the oldest full is of %s", host, dle, asOf, showStamp(oldest))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i, j := 0, len(chain)-1; i < j; i, j = i+1, j-1 {
		chain[i], chain[j] = chain[j], chain[i]
	}
	return chain, nil
}

// showStamp renders a datestamp as YYYY-MM-DD hh:mm:ss.
func showStamp(s string) string {
	if len(s) != 14 {
		return s
	}
	return s[0:4] + "-" + s[4:6] + "-" + s[6:8] + " " + s[8:10] + ":" + s[10:12] + ":" + s[12:14]
}

// View returns the DLE as of asOf (see Chain). It fails with an error
// matching ErrNoListings when an incremental of the chain has no listings.
func (c *Catalog) View(ctx context.Context, host, dle, asOf string) (*View, error) {
	chain, err := c.Chain(ctx, host, dle, asOf)
	if err != nil {
		return nil, err
	}
	for _, d := range chain[1:] {
		if !d.Listed {
			return nil, &NoListingsError{Dump: d}
		}
	}
	return &View{c: c, Host: host, Path: dle, AsOf: asOf, Chain: chain,
		dirIDs: map[string]int64{}, listings: map[listKey][]gnutar.DirEntry{}, lcached: map[listKey]bool{}}, nil
}

func (v *View) dirID(tx *sql.Tx, dir string) (int64, error) {
	if id, ok := v.dirIDs[dir]; ok {
		return id, nil
	}
	var id int64
	err := tx.QueryRow(`SELECT id FROM dirs WHERE path = ?`, dir).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		id, err = -1, nil
	}
	if err != nil {
		return 0, err
	}
	if len(v.dirIDs) > 100000 {
		clear(v.dirIDs)
	}
	v.dirIDs[dir] = id
	return id, nil
}

// listing returns the decoded listing of dir in chain element i (sorted by
// name), nil and false when there is none.
func (v *View) listing(tx *sql.Tx, i int, dir string) ([]gnutar.DirEntry, bool, error) {
	k := listKey{i, dir}
	if v.lcached[k] {
		l, ok := v.listings[k]
		return l, ok, nil
	}
	b, found, err := v.listingBytes(tx, i, dir)
	if err != nil {
		return nil, false, err
	}
	var ents []gnutar.DirEntry
	if found {
		if ents, err = v.decodeListing(i, dir, b); err != nil {
			return nil, false, err
		}
	}
	v.cacheListing(k, ents, found)
	return ents, found, nil
}

// listingBytes reads the stored (packed) listing of dir in chain element i.
func (v *View) listingBytes(tx *sql.Tx, i int, dir string) ([]byte, bool, error) {
	id, err := v.dirID(tx, dir)
	if err != nil || id < 0 {
		return nil, false, err
	}
	var b []byte
	err = tx.QueryRow(`SELECT v.packed FROM listings l JOIN dumpdirs v ON v.id = l.dumpdir_id
		WHERE l.dump_id = ? AND l.dir_id = ?`, v.Chain[i].ID, id).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return b, true, nil
}

// decodeListing unpacks and decodes a stored listing, sorted by name. It
// touches nothing of the view: it may run beside other work.
func (v *View) decodeListing(i int, dir string, b []byte) ([]gnutar.DirEntry, error) {
	u, err := unpackDumpdir(b)
	if err != nil {
		return nil, fmt.Errorf("listing of %q in image %s: %w", dir, v.Chain[i].Datestamp, err)
	}
	// Sized once: the listing of a large directory holds hundreds of
	// thousands of entries, and growing the slice is most of the garbage
	// an ls of it makes.
	ents, err := gnutar.AppendDumpdir(make([]gnutar.DirEntry, 0, bytes.Count(u, []byte{0})), string(u))
	if err != nil {
		return nil, fmt.Errorf("listing of %q in image %s: %w", dir, v.Chain[i].Datestamp, err)
	}
	if !sort.SliceIsSorted(ents, func(a, b int) bool { return ents[a].Name < ents[b].Name }) {
		gnutar.SortDumpdir(ents)
	}
	return ents, nil
}

func (v *View) cacheListing(k listKey, ents []gnutar.DirEntry, found bool) {
	if len(v.lcached) > 4096 {
		clear(v.lcached)
		clear(v.listings)
	}
	v.lcached[k] = true
	if found {
		v.listings[k] = ents
	}
}

// prefetchListings decodes the listings of dir in every incremental of
// the chain not yet cached, beside the caller's next queries (a large
// directory's listings cost as much to decode as its names cost to read);
// wait puts them in the cache.
func (v *View) prefetchListings(tx *sql.Tx, dir string) (wait func() error, err error) {
	type job struct {
		k     listKey
		b     []byte
		found bool
		ents  []gnutar.DirEntry
		err   error
	}
	var jobs []*job
	big := false
	for i := 1; i < len(v.Chain); i++ {
		k := listKey{i, dir}
		if v.lcached[k] {
			continue
		}
		b, found, err := v.listingBytes(tx, i, dir)
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, &job{k: k, b: b, found: found})
		big = big || len(b) > 64<<10
	}
	run := func(j *job) {
		if j.found {
			j.ents, j.err = v.decodeListing(j.k.dump, dir, j.b)
		}
	}
	done := make(chan struct{})
	if big {
		go func() {
			for _, j := range jobs {
				run(j)
			}
			close(done)
		}()
	} else {
		for _, j := range jobs {
			run(j)
		}
		close(done)
	}
	return func() error {
		<-done
		for _, j := range jobs {
			if j.err != nil {
				return j.err
			}
		}
		for _, j := range jobs {
			v.cacheListing(j.k, j.ents, j.found)
		}
		return nil
	}, nil
}

// names returns the entries of dir in chain element i, sorted by name; a
// name stored twice counts once, as its latest occurrence in the stream.
// It reads the directory's chunks and decodes only their names and types:
// a directory of 100,000 entries is about 100 rows.
func (v *View) names(tx *sql.Tx, i int, dir string) ([]ViewEntry, error) {
	id, err := v.dirID(tx, dir)
	if err != nil || id < 0 {
		return nil, err
	}
	sc, err := readChunks(tx, v.Chain[i].ID, id, "")
	if err != nil || sc.total == 0 {
		return nil, err
	}
	// Each run of chunks (one per batch that held the directory) gives
	// its names in order; the runs are merged, a later run's entry
	// winning over an earlier one of the same name (a later batch came
	// later in the stream).
	runs := make([][]ViewEntry, len(sc.runs))
	for k := range sc.runs {
		chunks, ns, n := sc.run(k)
		if runs[k], err = runNames(chunks, ns, n, i); err != nil {
			return nil, fmt.Errorf("directory %q of image %s: %w", dir, v.Chain[i].Datestamp, err)
		}
	}
	if len(runs) == 1 {
		return runs[0], nil
	}
	merged := mergeRuns(runs, func(a, b *ViewEntry) int { return strings.Compare(a.Name, b.Name) })
	out := merged[:0]
	for _, e := range merged {
		if n := len(out); n > 0 && out[n-1].Name == e.Name {
			out[n-1] = e
			continue
		}
		out = append(out, e)
	}
	return out, nil
}

// merged returns the entries of dir in the view, sorted by name. It does
// not check that dir itself is in the view.
func (v *View) merged(tx *sql.Tx, dir string) ([]ViewEntry, error) {
	wait, err := v.prefetchListings(tx, dir)
	if err != nil {
		return nil, err
	}
	cur, err := v.names(tx, 0, dir)
	if err != nil {
		wait()
		return nil, err
	}
	recs := make([][]ViewEntry, len(v.Chain))
	for i := 1; i < len(v.Chain); i++ {
		if recs[i], err = v.names(tx, i, dir); err != nil {
			wait()
			return nil, err
		}
	}
	if err := wait(); err != nil {
		return nil, err
	}
	for i := 1; i < len(v.Chain); i++ {
		lst, ok, err := v.listing(tx, i, dir)
		if err != nil {
			return nil, err
		}
		if ok {
			cur = applyListing(cur, recs[i], lst, i)
		} else {
			cur = overlay(cur, recs[i])
		}
	}
	return cur, nil
}

// applyListing is one incremental applied to a directory: the listing
// says which names the directory held; Y and D names come from the
// incremental, N names (unchanged) from before. All three inputs are
// sorted by name.
func applyListing(prev, recs []ViewEntry, lst []gnutar.DirEntry, i int) []ViewEntry {
	out := make([]ViewEntry, 0, len(lst))
	p, r := 0, 0
	for _, e := range lst {
		for p < len(prev) && prev[p].Name < e.Name {
			p++
		}
		for r < len(recs) && recs[r].Name < e.Name {
			r++
		}
		inPrev := p < len(prev) && prev[p].Name == e.Name
		inRecs := r < len(recs) && recs[r].Name == e.Name
		switch e.Kind {
		case gnutar.KindInArchive:
			if inRecs {
				out = append(out, recs[r])
			}
		case gnutar.KindDirectory:
			switch {
			case inRecs:
				out = append(out, recs[r])
			case inPrev && prev[p].IsDir():
				out = append(out, prev[p])
			default:
				out = append(out, ViewEntry{Name: e.Name, Type: '5', Dump: i})
			}
		case gnutar.KindUnchanged:
			switch {
			case inPrev:
				out = append(out, prev[p])
			case inRecs:
				out = append(out, recs[r])
			}
		}
	}
	return out
}

// overlay is an incremental without a listing for the directory: its
// entries replace or join the earlier ones.
func overlay(prev, recs []ViewEntry) []ViewEntry {
	if len(recs) == 0 {
		return prev
	}
	out := make([]ViewEntry, 0, len(prev)+len(recs))
	p, r := 0, 0
	for p < len(prev) || r < len(recs) {
		switch {
		case r == len(recs) || (p < len(prev) && prev[p].Name < recs[r].Name):
			out = append(out, prev[p])
			p++
		case p == len(prev) || recs[r].Name < prev[p].Name:
			out = append(out, recs[r])
			r++
		default:
			out = append(out, recs[r])
			p++
			r++
		}
	}
	return out
}

// isDir reports whether dir is a directory of the view.
func (v *View) isDir(tx *sql.Tx, dir string) (bool, error) {
	if dir == "" {
		return true, nil
	}
	parent, name := "", dir
	if i := strings.LastIndexByte(dir, '/'); i >= 0 {
		parent, name = dir[:i], dir[i+1:]
	}
	// The newest image that listed the parent decides.
	for i := len(v.Chain) - 1; i >= 1; i-- {
		lst, ok, err := v.listing(tx, i, parent)
		if err != nil {
			return false, err
		}
		if !ok {
			continue
		}
		k := sort.Search(len(lst), func(j int) bool { return lst[j].Name >= name })
		if k == len(lst) || lst[k].Name != name || lst[k].Kind != gnutar.KindDirectory {
			return false, nil
		}
		return v.isDir(tx, parent)
	}
	// Only the full (and incrementals that could not list the parent):
	// a directory entry in any of them.
	id, err := v.dirID(tx, parent)
	if err != nil || id < 0 {
		return false, err
	}
	found := false
	for i := len(v.Chain) - 1; i >= 0 && !found; i-- {
		es, err := dirEntries(tx, v.Chain[i].ID, id, name)
		if err != nil {
			return false, err
		}
		if len(es) == 0 {
			continue
		}
		if typ := es[len(es)-1].typ; typ != '5' && typ != 'D' {
			return false, nil
		}
		found = true
	}
	if !found {
		// A directory with entries below it but none of its own (excluded,
		// or the client could not read it): it is there if anything is.
		if did, err := v.dirID(tx, dir); err != nil || did < 0 {
			return false, err
		}
	}
	return v.isDir(tx, parent)
}

func (v *View) op(what string) string {
	when := "newest"
	if v.AsOf != "" {
		when = "as of " + v.AsOf
	}
	return fmt.Sprintf("%s in %s:%s (%s)", what, v.Host, v.Path, when)
}

func (v *View) notDir(dir string) error {
	if dir == "" {
		dir = "/"
	}
	return notFoundf("%s is not a directory in the backup of %s:%s as of %s", dir, v.Host, v.Path, v.when())
}

func (v *View) when() string {
	return showStamp(v.Chain[len(v.Chain)-1].Datestamp)
}

// IsDir reports whether dir (a leading "/" or "./" and a trailing "/" are
// ignored) is a directory in the view.
func (v *View) IsDir(ctx context.Context, dir string) (bool, error) {
	d, err := cleanLookup(dir)
	if err != nil {
		return false, v.c.fail(v.op("stat "+dir), err)
	}
	var ok bool
	err = v.c.read(ctx, v.op("stat "+dir), func(tx *sql.Tx) error {
		ok, err = v.isDir(tx, d)
		return err
	})
	return ok, err
}

// List returns the entries of a directory of the view, sorted by name; an
// error matching ErrNotFound when dir is not a directory in the view.
func (v *View) List(ctx context.Context, dir string) ([]ViewEntry, error) {
	d, err := cleanLookup(dir)
	if err != nil {
		return nil, v.c.fail(v.op("list "+dir), err)
	}
	var out []ViewEntry
	err = v.c.read(ctx, v.op("list "+dir), func(tx *sql.Tx) error {
		ok, err := v.isDir(tx, d)
		if err != nil {
			return err
		}
		if !ok {
			return v.notDir(d)
		}
		out, err = v.merged(tx, d)
		return err
	})
	return out, err
}

// Stat returns the record of one path of the view; an error matching
// ErrNotFound when the view does not hold it. The DLE root itself is a
// directory record with an empty path.
func (v *View) Stat(ctx context.Context, p string) (*ViewRecord, error) {
	clean, err := cleanLookup(p)
	if err != nil {
		return nil, v.c.fail(v.op("stat "+p), err)
	}
	if clean == "" {
		return &ViewRecord{FileRecord: FileRecord{Type: '5', Mode: 0o755}, Dump: len(v.Chain) - 1}, nil
	}
	dir, name := "", clean
	if i := strings.LastIndexByte(clean, '/'); i >= 0 {
		dir, name = clean[:i], clean[i+1:]
	}
	recs, err := v.records(ctx, dir, func(e ViewEntry) bool { return e.Name == name })
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, notFoundf("%s is not in the backup of %s:%s as of %s", clean, v.Host, v.Path, v.when())
	}
	return &recs[0], nil
}

// Records returns the entries of a directory of the view with their index
// records, sorted by name.
func (v *View) Records(ctx context.Context, dir string) ([]ViewRecord, error) {
	d, err := cleanLookup(dir)
	if err != nil {
		return nil, v.c.fail(v.op("list "+dir), err)
	}
	return v.records(ctx, d, nil)
}

// records lists dir (clean) with records, keeping the entries keep accepts
// (nil: all).
func (v *View) records(ctx context.Context, d string, keep func(ViewEntry) bool) ([]ViewRecord, error) {
	var out []ViewRecord
	err := v.c.read(ctx, v.op("list "+d), func(tx *sql.Tx) error {
		ok, err := v.isDir(tx, d)
		if err != nil {
			return err
		}
		if !ok {
			return v.notDir(d)
		}
		ents, err := v.merged(tx, d)
		if err != nil {
			return err
		}
		var want []ViewEntry
		byDump := map[int][]string{}
		for _, e := range ents {
			if keep == nil || keep(e) {
				want = append(want, e)
				byDump[e.Dump] = append(byDump[e.Dump], e.Name)
			}
		}
		found := map[listKey]FileRecord{}
		for i, names := range byDump {
			recs, err := v.fileRecords(tx, i, d, names)
			if err != nil {
				return err
			}
			for _, r := range recs {
				found[listKey{i, r.Path}] = r
			}
		}
		for _, e := range want {
			p := e.Name
			if d != "" {
				p = d + "/" + e.Name
			}
			r, ok := found[listKey{e.Dump, p}]
			if !ok { // a directory the image lists but has no entry for
				r = FileRecord{Path: p, Type: '5', Mode: 0o755}
			}
			out = append(out, ViewRecord{FileRecord: r, Dump: e.Dump})
		}
		return nil
	})
	return out, err
}

// fileRecords reads the records of some names of dir in chain element i
// (the latest occurrence of each).
func (v *View) fileRecords(tx *sql.Tx, i int, dir string, names []string) ([]FileRecord, error) {
	id, err := v.dirID(tx, dir)
	if err != nil || id < 0 {
		return nil, err
	}
	dumpID := v.Chain[i].ID
	var es []entry
	if len(names) <= 8 {
		// A few names: the chunks that may hold each, not the directory.
		for _, n := range names {
			got, err := dirEntries(tx, dumpID, id, n)
			if err != nil {
				return nil, err
			}
			es = append(es, got...)
		}
		slices.SortStableFunc(es, func(a, b entry) int { return compareEntries(&a, &b) })
	} else {
		all, err := dirEntries(tx, dumpID, id, "")
		if err != nil {
			return nil, err
		}
		want := make(map[string]bool, len(names))
		for _, n := range names {
			want[n] = true
		}
		for _, e := range all {
			if want[e.name] {
				es = append(es, e)
			}
		}
	}
	var out []FileRecord
	for k := range es {
		if n := len(out); n > 0 && es[k-1].name == es[k].name {
			out[n-1] = es[k].record(dir) // the latest occurrence in the stream
			continue
		}
		out = append(out, es[k].record(dir))
	}
	return out, nil
}

// Walk calls fn for every entry under dir (dir itself excluded), depth
// first, directories before their contents, names sorted. fn returning
// SkipDir for a directory skips its contents; any other error stops the
// walk and is returned. When ctx ends the walk stops at its next directory
// (or within 1024 entries) with an error matching ctx.Err().
func (v *View) Walk(ctx context.Context, dir string, fn func(ViewRecord) error) error {
	recs, err := v.Records(ctx, dir)
	if err != nil {
		return err
	}
	for i, r := range recs {
		if i%1024 == 0 {
			if err := cancelled(ctx); err != nil {
				return v.c.fail(v.op("walk "+dir), err)
			}
		}
		err := fn(r)
		if errors.Is(err, SkipDir) {
			continue
		}
		if err != nil {
			return err
		}
		if r.IsDir() {
			if err := v.Walk(ctx, r.Path, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

// SkipDir tells Walk not to descend into a directory.
var SkipDir = errors.New("skip this directory")

// Find returns the paths of the view whose last component (or, when the
// pattern holds a '/', whose whole path relative to the DLE root) matches
// the shell pattern (SQLite GLOB: * ? [...], case-sensitive), sorted, at
// most limit of them; more reports whether there were more. Names deleted
// or renamed by a later image of the view are not found.
func (v *View) Find(ctx context.Context, pattern string, limit int) (out []ViewRecord, more bool, err error) {
	if pattern == "" || strings.IndexByte(pattern, 0) >= 0 {
		return nil, false, v.c.fail(v.op("find"), fmt.Errorf("pattern %q is empty or holds a NUL", pattern))
	}
	pat := strings.TrimPrefix(pattern, "/")
	whole := strings.Contains(pat, "/")
	err = v.c.read(ctx, v.op("find "+pattern), func(tx *sql.Tx) error {
		// Candidates from every image of the view, by directory.
		cand := map[string]map[string]bool{}
		match, err := globMatcher(pat)
		if err != nil {
			return err
		}
		for _, d := range v.Chain {
			rows, err := tx.QueryContext(ctx, `SELECT d.path, f.packed FROM files f JOIN dirs d ON d.id = f.dir_id WHERE f.dump_id = ?`, d.ID)
			if err != nil {
				return err
			}
			for n := 0; rows.Next(); n++ {
				if n%64 == 0 {
					if err := cancelled(ctx); err != nil {
						rows.Close()
						return err
					}
				}
				var dir string
				var b []byte
				if err := rows.Scan(&dir, &b); err != nil {
					rows.Close()
					return err
				}
				err := unpackNames(b, func(name string, _ byte) {
					p := name
					if whole && dir != "" {
						p = dir + "/" + name
					}
					if !match(p) {
						return
					}
					if cand[dir] == nil {
						cand[dir] = map[string]bool{}
					}
					cand[dir][name] = true
				})
				if err != nil {
					rows.Close()
					return fmt.Errorf("image %s, directory %q: %w", d.Datestamp, dir, err)
				}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
		}
		dirs := make([]string, 0, len(cand))
		for d := range cand {
			dirs = append(dirs, d)
		}
		sort.Strings(dirs)
		// Keep what the view holds, one directory listing at a time.
		type hit struct {
			dir string
			e   ViewEntry
		}
		var hits []hit
		for _, dir := range dirs {
			if err := cancelled(ctx); err != nil {
				return err
			}
			ok, err := v.isDir(tx, dir)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			ents, err := v.merged(tx, dir)
			if err != nil {
				return err
			}
			for _, e := range ents {
				if cand[dir][e.Name] {
					hits = append(hits, hit{dir, e})
				}
			}
		}
		path := func(h hit) string {
			if h.dir == "" {
				return h.e.Name
			}
			return h.dir + "/" + h.e.Name
		}
		sort.Slice(hits, func(i, j int) bool { return path(hits[i]) < path(hits[j]) })
		if limit > 0 && len(hits) > limit {
			hits, more = hits[:limit], true
		}
		// Their records, one query per image and directory.
		type key struct {
			dump int
			dir  string
		}
		names := map[key][]string{}
		for _, h := range hits {
			k := key{h.e.Dump, h.dir}
			names[k] = append(names[k], h.e.Name)
		}
		recs := map[string]FileRecord{}
		for k, ns := range names {
			rs, err := v.fileRecords(tx, k.dump, k.dir, ns)
			if err != nil {
				return err
			}
			for _, r := range rs {
				recs[fmt.Sprintf("%d\x00%s", k.dump, r.Path)] = r
			}
		}
		for _, h := range hits {
			p := path(h)
			r, ok := recs[fmt.Sprintf("%d\x00%s", h.e.Dump, p)]
			if !ok {
				r = FileRecord{Path: p, Type: '5', Mode: 0o755}
			}
			out = append(out, ViewRecord{FileRecord: r, Dump: h.e.Dump})
		}
		return nil
	})
	return out, more, err
}

// Hosts returns the hosts that have a restorable (good or holding) image,
// sorted.
func (c *Catalog) Hosts(ctx context.Context) ([]string, error) {
	return c.strings(ctx, "list hosts", `SELECT DISTINCT host FROM dumps WHERE status IN ('good', 'holding') ORDER BY host`)
}

// DLEPaths returns the DLE paths of host that have a restorable image,
// sorted.
func (c *Catalog) DLEPaths(ctx context.Context, host string) ([]string, error) {
	return c.strings(ctx, "list DLEs of "+host, `SELECT DISTINCT path FROM dumps WHERE host = ? AND status IN ('good', 'holding') ORDER BY path`, host)
}

func (c *Catalog) strings(ctx context.Context, op, q string, args ...any) ([]string, error) {
	var out []string
	err := c.read(ctx, op, func(tx *sql.Tx) error {
		rows, err := tx.Query(q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				return err
			}
			out = append(out, s)
		}
		return rows.Err()
	})
	return out, err
}
