package catalog

import (
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/klauspost/compress/zstd"
	"slices"
	"strings"
	"sync"
	"time"
)

// The file index by directory (schema 8, docs/format/catalog.md "Packed
// entries"): the entries of one directory of one image, sorted by name and
// then by tar offset, go into chunks of at most chunkEntries entries; a
// chunk is one row of files, keyed by (dump_id, dir_id, seq), with its
// first and last names beside it so that a lookup reads only the chunk
// that may hold a name. A chunk never splits the entries of one name. The
// row's packed value is a chunk body, zstd-compressed when that is
// smaller:
//
//	packed   = kind (1 byte: 0 plain, 1 zstd) || body (or its zstd frame)
//	body     = version (1 byte, 1) || uvarint n || columns
//	columns  = n × uvarint name length || the n names, concatenated ||
//	           n × type byte || n × flags byte (1: mtime, 2: link) ||
//	           n × uvarint size || n × uvarint mode ||
//	           for each entry with an mtime: varint seconds minus the previous
//	           such entry's seconds, uvarint nanoseconds ||
//	           n × varint uid || n × varint gid ||
//	           for each entry with a link: uvarint length, the bytes ||
//	           n × uvarint tar offset || n × uvarint span
//
// Columns rather than rows: like values sit together, which compresses
// well, and a listing (names and types) stops reading after the types.

// entriesEnc compresses chunks: without zstd's checksum (4 bytes a chunk,
// when a chunk of a small directory is a few hundred bytes), as the
// decoder checks every column's bounds and order instead.
var entriesEnc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(false))

// maxChunkEntries is the most entries a reader believes a chunk's row
// says it holds (a name stored this often in one directory of one image
// is not a backup's).
const maxChunkEntries = 1 << 22

// chunkEntries is the most entries a chunk holds (more only when one name
// occurs more often in a directory of one image); chunkBytes bounds it
// first for most directories.
const chunkEntries = 1024

// packedVersion is the body's version byte.
const packedVersion = 1

const (
	packPlain = 0
	packZstd  = 1
)

const (
	flagMtime = 1
	flagLink  = 2
)

// entry is one record of a directory's index in an image.
type entry struct {
	name     string
	typ      byte
	size     int64
	mode     uint32
	mtime    int64 // ns since the epoch, when hasMtime
	hasMtime bool
	uid, gid int64
	link     string
	tarOff   int64
	span     int64
}

// compareEntries orders entries by name, then by tar offset.
func compareEntries(a, b *entry) int {
	if c := strings.Compare(a.name, b.name); c != 0 {
		return c
	}
	switch {
	case a.tarOff < b.tarOff:
		return -1
	case a.tarOff > b.tarOff:
		return 1
	}
	return 0
}

// packEntries is the stored form of a chunk of entries, which must be
// sorted by compareEntries.
func packEntries(es []*entry) []byte {
	body := make([]byte, 0, 32*len(es)+16)
	body = append(body, packedVersion)
	body = binary.AppendUvarint(body, uint64(len(es)))
	for _, e := range es {
		body = binary.AppendUvarint(body, uint64(len(e.name)))
	}
	for _, e := range es {
		body = append(body, e.name...)
	}
	for _, e := range es {
		body = append(body, e.typ)
	}
	for _, e := range es {
		var f byte
		if e.hasMtime {
			f |= flagMtime
		}
		if e.link != "" {
			f |= flagLink
		}
		body = append(body, f)
	}
	for _, e := range es {
		body = binary.AppendUvarint(body, uint64(e.size))
	}
	for _, e := range es {
		body = binary.AppendUvarint(body, uint64(e.mode))
	}
	var prev int64
	for _, e := range es {
		if e.hasMtime {
			sec, ns := splitNS(e.mtime)
			body = binary.AppendVarint(body, sec-prev)
			body = binary.AppendUvarint(body, uint64(ns))
			prev = sec
		}
	}
	for _, e := range es {
		body = binary.AppendVarint(body, e.uid)
	}
	for _, e := range es {
		body = binary.AppendVarint(body, e.gid)
	}
	for _, e := range es {
		if e.link != "" {
			body = binary.AppendUvarint(body, uint64(len(e.link)))
			body = append(body, e.link...)
		}
	}
	for _, e := range es {
		body = binary.AppendUvarint(body, uint64(e.tarOff))
	}
	for _, e := range es {
		body = binary.AppendUvarint(body, uint64(e.span))
	}
	if len(body) > 64 {
		z := entriesEnc.EncodeAll(body, []byte{packZstd})
		if len(z) < len(body)+1 {
			return z
		}
	}
	return append([]byte{packPlain}, body...)
}

// splitNS splits ns since the epoch into seconds and nanoseconds (0 to
// 999,999,999), rounding the seconds down.
func splitNS(t int64) (sec, ns int64) {
	sec, ns = t/1e9, t%1e9
	if ns < 0 {
		sec, ns = sec-1, ns+1e9
	}
	return sec, ns
}

// joinNS is splitNS undone; ok is false when ns is not below a second or
// the time does not fit an int64.
func joinNS(sec int64, ns uint64) (t int64, ok bool) {
	const minSec, maxSec = -9223372037, 9223372036 // floor of the int64 limits / 1e9
	switch {
	case ns >= 1e9 || sec < minSec || sec > maxSec:
		return 0, false
	case sec == minSec && ns < 145224192, sec == maxSec && ns > 854775807:
		return 0, false
	}
	return sec*1e9 + int64(ns), true
}

// errPacked is the error of a stored chunk that does not decode: the
// catalog was damaged (or written by something else).
func errPacked(what string) error {
	return fmt.Errorf("a packed file index chunk in the catalog is damaged (%s); rebuild the catalog's index of that image with tapir admin rebuild", what)
}

// bodies are buffers for decompressed chunk bodies: the readers copy
// what they keep (names, links) out of a body, so that one buffer serves
// chunk after chunk instead of a new one each (an ls decodes thousands).
var bodies = sync.Pool{New: func() any { return new([]byte) }}

// chunkBody is the body of a stored chunk; release gives its buffer back
// once the caller is done with the body.
func chunkBody(b []byte) (body []byte, release func(), err error) {
	if len(b) == 0 {
		return nil, func() {}, errPacked("empty")
	}
	switch b[0] {
	case packPlain:
		return b[1:], func() {}, nil
	case packZstd:
		buf := bodies.Get().(*[]byte)
		u, err := dumpdirDec.DecodeAll(b[1:], (*buf)[:0])
		if err != nil {
			bodies.Put(buf)
			return nil, func() {}, errPacked(fmt.Sprintf("it does not decompress: %v", err))
		}
		return u, func() {
			if cap(u) <= 1<<20 {
				*buf = u[:0]
				bodies.Put(buf)
			}
		}, nil
	}
	return nil, func() {}, errPacked(fmt.Sprintf("unknown kind %d", b[0]))
}

// bodyReader reads a body's columns, remembering the first error.
type bodyReader struct {
	b   []byte
	err error
}

func (r *bodyReader) fail(what string) {
	if r.err == nil {
		r.err = errPacked(what)
	}
	r.b = nil
}

func (r *bodyReader) uvarint(what string) uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("truncated " + what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *bodyReader) varint(what string) int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("truncated " + what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

// int63 is a uvarint that must fit an int64.
func (r *bodyReader) int63(what string) int64 {
	v := r.uvarint(what)
	if v > 1<<63-1 {
		r.fail(what + " out of range")
		return 0
	}
	return int64(v)
}

func (r *bodyReader) bytes(n int, what string) []byte {
	if n < 0 || n > len(r.b) {
		r.fail("truncated " + what)
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

// chunkHead decodes a body up to its types: the count, the names and the
// types. The names are read with their each method.
func chunkHead(body []byte) (r *bodyReader, names chunkNames, types []byte, err error) {
	r = &bodyReader{b: body}
	if v := r.bytes(1, "version"); r.err == nil && v[0] != packedVersion {
		return nil, chunkNames{}, nil, errPacked(fmt.Sprintf("version %d, not %d", v[0], packedVersion))
	}
	n := r.uvarint("count")
	// Every entry takes at least one byte in each of several columns.
	if r.err == nil && (n == 0 || n > uint64(len(r.b))) {
		r.fail(fmt.Sprintf("count %d for %d bytes", n, len(r.b)))
	}
	if r.err != nil {
		return nil, chunkNames{}, nil, r.err
	}
	lens := r.b
	total := 0
	for range n {
		l := r.uvarint("name length")
		if l == 0 || l > uint64(len(r.b)) {
			r.fail("name length")
		}
		if r.err != nil {
			return nil, chunkNames{}, nil, r.err
		}
		total += int(l)
	}
	lens = lens[:len(lens)-len(r.b)]
	all := string(r.bytes(total, "names"))
	types = r.bytes(int(n), "types")
	if r.err != nil {
		return nil, chunkNames{}, nil, r.err
	}
	return r, chunkNames{n: int(n), lens: lens, all: all}, types, nil
}

// chunkNames are the names of a chunk: their lengths (uvarints, already
// checked) and the names concatenated in one string, so that each name
// is a substring of it (one allocation for the chunk, not one a name).
type chunkNames struct {
	n    int
	lens []byte
	all  string
}

// each calls fn with every name in order; a name that holds '/' or NUL,
// or that comes before the one before it, is an error.
func (c chunkNames) each(fn func(i int, name string)) error {
	lens, at, prev := c.lens, 0, ""
	for i := range c.n {
		l, k := binary.Uvarint(lens)
		lens = lens[k:]
		name := c.all[at : at+int(l)]
		at += int(l)
		if strings.IndexByte(name, '/') >= 0 || strings.IndexByte(name, 0) >= 0 {
			return errPacked("a name holds '/' or NUL")
		}
		if i > 0 && name < prev {
			return errPacked("names out of order")
		}
		prev = name
		fn(i, name)
	}
	return nil
}

// unpackEntries appends the entries of a stored chunk to out.
func unpackEntries(b []byte, out []entry) ([]entry, error) {
	body, release, err := chunkBody(b)
	defer release()
	if err != nil {
		return out, err
	}
	r, names, types, err := chunkHead(body)
	if err != nil {
		return out, err
	}
	n := names.n
	from := len(out)
	out = slices.Grow(out, n)[:from+n]
	es := out[from:]
	if err := names.each(func(i int, name string) { es[i] = entry{name: name, typ: types[i]} }); err != nil {
		return out[:from], err
	}
	flags := r.bytes(n, "flags")
	for i := range es {
		es[i].size = r.int63("size")
	}
	for i := range es {
		m := r.uvarint("mode")
		if m > 1<<32-1 {
			r.fail("mode out of range")
		}
		es[i].mode = uint32(m)
	}
	var prev int64
	for i := range es {
		if r.err == nil && flags[i]&flagMtime != 0 {
			d := r.varint("mtime")
			ns := r.uvarint("mtime")
			sec := prev + d
			t, ok := joinNS(sec, ns)
			if !ok || (d > 0 && sec < prev) || (d < 0 && sec > prev) {
				r.fail("mtime out of range")
				break
			}
			prev = sec
			es[i].mtime, es[i].hasMtime = t, true
		}
	}
	for i := range es {
		es[i].uid = r.varint("uid")
	}
	for i := range es {
		es[i].gid = r.varint("gid")
	}
	for i := range es {
		if r.err == nil && flags[i]&flagLink != 0 {
			l := r.uvarint("link length")
			es[i].link = string(r.bytes(int(min(l, 1<<31)), "link"))
		}
	}
	for i := range es {
		es[i].tarOff = r.int63("tar offset")
	}
	for i := range es {
		es[i].span = r.int63("span")
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail(fmt.Sprintf("%d bytes after the last column", len(r.b)))
	}
	if r.err != nil {
		return out[:from], r.err
	}
	for i := 1; i < n; i++ {
		if compareEntries(&es[i-1], &es[i]) > 0 {
			return out[:from], errPacked("entries out of order")
		}
	}
	return out, nil
}

// unpackNames appends the names and types of a stored chunk's entries,
// in order, through add.
func unpackNames(b []byte, add func(name string, typ byte)) error {
	body, release, err := chunkBody(b)
	defer release()
	if err != nil {
		return err
	}
	_, names, types, err := chunkHead(body)
	if err != nil {
		return err
	}
	return names.each(func(i int, name string) { add(name, types[i]) })
}

// chunk is one row of files to be written. lo and hi bound the names it
// holds; the first chunk of a directory has lo "" and the last hi "" (no
// name is empty): a directory of one chunk, the most common, stores no
// names beside its entries.
type chunk struct {
	lo, hi string
	n      int
	packed []byte
}

// chunkBytes is the most bytes a packed chunk should take: with its key,
// names and header the row then stays under the 1,002 bytes an SQLite
// index B-tree cell (a WITHOUT ROWID row) keeps in its 4 KiB page.
// A larger row spills to overflow pages, the last one of which is
// half empty on average: a fifth of the table, measured.
const chunkBytes = 880

// bigDir is the number of entries from which a directory's chunks hold
// chunkEntries entries each, whatever their size: an ls of a directory of
// 100,000 entries decodes 100 chunks instead of 3,000 (twice as fast,
// measured), while the overflow pages' waste (half a page per chunk of
// about 20 KiB) stays small.
const bigDir = 4096

// chunksOf cuts the entries of one directory (sorted by compareEntries)
// into chunks, never splitting a name: chunks of chunkEntries entries for
// a directory of more than bigDir, else of at most chunkBytes packed. The
// entries per chunk adapt to how well the last chunk packed; a chunk that
// came out too large is packed again with fewer entries.
func chunksOf(es []*entry) []chunk {
	var out []chunk
	want, big := 32, len(es) > bigDir
	if big {
		want = chunkEntries
	}
	for len(es) > 0 {
		end := min(want, len(es))
		for end < len(es) && es[end].name == es[end-1].name && end < maxChunkEntries {
			end++ // (a name stored more often than that goes on in the next chunk)
		}
		part := es[:end]
		packed := packEntries(part)
		if len(packed) > chunkBytes && part[0].name != part[end-1].name && !big {
			// Fewer entries; want decreases every time, so that this
			// ends (at the latest with the first name's entries alone).
			want = max(1, min(want-1, end-1, end*chunkBytes*9/(10*len(packed))))
			continue
		}
		ch := chunk{lo: part[0].name, hi: part[len(part)-1].name, n: len(part), packed: packed}
		if len(out) == 0 {
			ch.lo = "" // from the start
		}
		es = es[end:]
		if len(es) == 0 {
			ch.hi = "" // to the end
		}
		out = append(out, ch)
		if !big {
			want = min(chunkEntries, max(1, end*chunkBytes*9/(10*max(len(packed), 1))))
		}
	}
	return out
}

// record is the entry as a FileRecord of directory dir.
func (e *entry) record(dir string) FileRecord {
	p := e.name
	if dir != "" {
		p = dir + "/" + e.name
	}
	r := FileRecord{Path: p, Type: e.typ, Size: e.size, Mode: e.mode, UID: int(e.uid), GID: int(e.gid),
		Link: e.link, TarOffset: e.tarOff, Span: e.span}
	if e.hasMtime {
		r.Mtime = time.Unix(0, e.mtime)
	}
	return r
}

// storedChunks are the chunks of one directory of one image, in the
// order they were written.
type storedChunks struct {
	packed [][]byte
	ns     []int // entries of each chunk, as its row says
	total  int   // entries
	// runs are the indexes in packed where a sorted run of chunks starts
	// (the first is 0): the chunks one batch of a FileWriter wrote. A
	// directory whose entries came in two batches has two runs, which
	// the readers merge.
	runs []int
}

// run returns the chunks of run k, the entries of each as their rows say,
// and their sum.
func (sc storedChunks) run(k int) (chunks [][]byte, ns []int, entries int) {
	end := len(sc.packed)
	if k+1 < len(sc.runs) {
		end = sc.runs[k+1]
	}
	ns = sc.ns[sc.runs[k]:end]
	for _, n := range ns {
		entries += n
	}
	return sc.packed[sc.runs[k]:end], ns, entries
}

// runNames decodes the names and types of a run's chunks into one slice
// sized from the rows, in order; a name stored twice counts once, as its
// latest occurrence.
func runNames(chunks [][]byte, ns []int, total int, dump int) ([]ViewEntry, error) {
	out := make([]ViewEntry, total)
	offs := make([]int, len(chunks))
	for k := 1; k < len(chunks); k++ {
		offs[k] = offs[k-1] + ns[k-1]
	}
	errs := make([]error, len(chunks))
	decode := func(k int) {
		at, got := offs[k], 0
		err := unpackNames(chunks[k], func(name string, typ byte) {
			if got < ns[k] {
				out[at+got] = ViewEntry{Name: name, Type: typ, Dump: dump}
			}
			got++
		})
		if err == nil && got != ns[k] {
			err = errPacked(fmt.Sprintf("%d entries where its row says %d", got, ns[k]))
		}
		errs[k] = err
	}
	// One chunk after the other: decoding on two goroutines measured
	// slower (an ls of 100,000 entries, its client in the same process,
	// 67-73 ms against 54-60 ms on this 2-CPU machine).
	for k := range chunks {
		decode(k)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	keep := out[:0]
	for _, e := range out {
		if n := len(keep); n > 0 && keep[n-1].Name == e.Name {
			keep[n-1] = e // the latest occurrence wins
			continue
		}
		keep = append(keep, e)
	}
	return keep, nil
}

// readChunks reads the chunks of directory dirID in a dump; only those
// that may hold name when name is not "".
func readChunks(tx *sql.Tx, dumpID, dirID int64, name string) (storedChunks, error) {
	q := `SELECT lo, hi, n, packed FROM files WHERE dump_id = ? AND dir_id = ? ORDER BY seq`
	args := []any{dumpID, dirID}
	if name != "" {
		q = `SELECT lo, hi, n, packed FROM files WHERE dump_id = ? AND dir_id = ? AND lo <= ? AND (hi >= ? OR hi = '') ORDER BY seq`
		args = append(args, name, name)
	}
	rows, err := tx.Query(q, args...)
	if err != nil {
		return storedChunks{}, err
	}
	defer rows.Close()
	var sc storedChunks
	var prevHi string
	for rows.Next() {
		var lo, hi string
		var n int
		var b []byte
		if err := rows.Scan(&lo, &hi, &n, &b); err != nil {
			return storedChunks{}, err
		}
		if len(sc.packed) == 0 || prevHi == "" || lo <= prevHi {
			sc.runs = append(sc.runs, len(sc.packed)) // "" is the end of the names
		}
		prevHi = hi
		if n <= 0 || n > maxChunkEntries {
			return storedChunks{}, errPacked(fmt.Sprintf("its row says %d entries", n))
		}
		sc.packed = append(sc.packed, b)
		sc.ns = append(sc.ns, n)
		sc.total += n
	}
	return sc, rows.Err()
}

// mergeRuns merges sorted runs into one sorted slice; of equal elements,
// those of an earlier run come first.
func mergeRuns[T any](runs [][]T, cmp func(a, b *T) int) []T {
	for len(runs) > 1 {
		var next [][]T
		for i := 0; i < len(runs); i += 2 {
			if i+1 == len(runs) {
				next = append(next, runs[i])
				continue
			}
			a, b := runs[i], runs[i+1]
			m := make([]T, 0, len(a)+len(b))
			for len(a) > 0 && len(b) > 0 {
				if cmp(&b[0], &a[0]) < 0 {
					m, b = append(m, b[0]), b[1:]
				} else {
					m, a = append(m, a[0]), a[1:]
				}
			}
			next = append(next, append(append(m, a...), b...))
		}
		runs = next
	}
	if len(runs) == 0 {
		return nil
	}
	return runs[0]
}

// dirEntries returns the entries of directory dirID in a dump, sorted by
// compareEntries; only those named name when name is not "".
func dirEntries(tx *sql.Tx, dumpID, dirID int64, name string) ([]entry, error) {
	sc, err := readChunks(tx, dumpID, dirID, name)
	if err != nil {
		return nil, err
	}
	return sc.entries(name)
}

// entries decodes the chunks, sorted by compareEntries; only the entries
// named name when name is not "".
func (sc storedChunks) entries(name string) ([]entry, error) {
	runs := make([][]entry, len(sc.runs))
	for k := range sc.runs {
		chunks, _, n := sc.run(k)
		out := make([]entry, 0, min(n, 1<<20))
		var err error
		for _, b := range chunks {
			if out, err = unpackEntries(b, out); err != nil {
				return nil, err
			}
		}
		runs[k] = out
	}
	out := mergeRuns(runs, compareEntries)
	if name != "" {
		i, _ := slices.BinarySearchFunc(out, name, func(e entry, n string) int { return strings.Compare(e.name, n) })
		j := i
		for j < len(out) && out[j].name == name {
			j++
		}
		out = out[i:j]
	}
	return out, nil
}
