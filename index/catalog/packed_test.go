package catalog

import (
	"bytes"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"
)

// randomEntries is a directory's entries as a hostile or unlucky image
// could give them: names of any bytes but '/' and NUL (some shared
// prefixes, some repeated), every type, extreme sizes and times, links.
func randomEntries(r *rand.Rand, n int) []*entry {
	alphabet := []byte("aAbz.-_ 09\xff\xc3\xa9~")
	var es []*entry
	prev := ""
	for range n {
		var name string
		switch r.IntN(6) {
		case 0:
			if prev != "" {
				name = prev // a name stored twice
				break
			}
			fallthrough
		case 1:
			name = prev + string(alphabet[r.IntN(len(alphabet))])
		default:
			b := make([]byte, 1+r.IntN(40))
			for i := range b {
				b[i] = alphabet[r.IntN(len(alphabet))]
			}
			name = string(b)
		}
		prev = name
		e := &entry{name: name, typ: "0123456D"[r.IntN(8)], mode: r.Uint32(), uid: r.Int64N(1<<40) - 1<<39, gid: int64(r.IntN(70000)),
			tarOff: r.Int64N(1<<62) / 512 * 512, span: r.Int64N(1 << 40)}
		switch r.IntN(8) {
		case 0:
			e.size = 1<<63 - 1
		case 1:
			e.size = 0
		default:
			e.size = r.Int64N(1 << 34)
		}
		switch r.IntN(8) {
		case 0: // no mtime
		case 1:
			e.mtime, e.hasMtime = -1<<63, true
		case 2:
			e.mtime, e.hasMtime = 1<<63-1, true
		case 3:
			e.mtime, e.hasMtime = -r.Int64N(1<<62), true
		default:
			e.mtime, e.hasMtime = 1_700_000_000_000_000_000+r.Int64N(1<<55), true
		}
		if r.IntN(4) == 0 {
			e.link = name + "->" + string(alphabet[r.IntN(len(alphabet))])
		}
		es = append(es, e)
	}
	slices.SortStableFunc(es, compareEntries)
	return es
}

// TestPackedRoundTrip: for random directories, the chunks hold every entry
// unchanged and in order, no chunk exceeds chunkEntries except for one
// name's entries, a name is never split, and lo/hi are the chunk's ends
// ("" at the directory's ends).
func TestPackedRoundTrip(t *testing.T) {
	for seed := range uint64(200) {
		r := rand.New(rand.NewPCG(seed, 8))
		n := 1 + r.IntN(6000)
		if seed%10 == 0 {
			n = 1 + r.IntN(5)
		}
		es := randomEntries(r, n)
		chunks := chunksOf(es)
		var got []entry
		for k, ch := range chunks {
			before := len(got)
			var err error
			if got, err = unpackEntries(ch.packed, got); err != nil {
				t.Fatalf("seed %d chunk %d: %v", seed, k, err)
			}
			part := got[before:]
			lo, hi := part[0].name, part[len(part)-1].name
			if k == 0 {
				lo = ""
			}
			if k == len(chunks)-1 {
				hi = ""
			}
			if len(part) != ch.n || ch.lo != lo || ch.hi != hi {
				t.Fatalf("seed %d chunk %d: n %d lo %q hi %q, holds %d entries %q..%q", seed, k, ch.n, ch.lo, ch.hi, len(part), part[0].name, part[len(part)-1].name)
			}
			if len(part) > chunkEntries && part[0].name != part[len(part)-1].name && part[chunkEntries-1].name != part[chunkEntries].name {
				t.Fatalf("seed %d chunk %d: %d entries", seed, k, len(part))
			}
			if len(ch.packed) > chunkBytes && part[0].name != part[len(part)-1].name && len(es) <= bigDir {
				t.Fatalf("seed %d chunk %d: %d entries packed in %d bytes, more than %d", seed, k, len(part), len(ch.packed), chunkBytes)
			}
			if k > 0 && got[before-1].name >= part[0].name {
				t.Fatalf("seed %d: chunk %d ends with %q, chunk %d starts with %q", seed, k-1, chunks[k-1].hi, k, ch.lo)
			}
			// The names-only decoding agrees.
			var names []string
			if err := unpackNames(ch.packed, func(n string, typ byte) { names = append(names, n) }); err != nil {
				t.Fatal(err)
			}
			for i, n := range names {
				if n != part[i].name {
					t.Fatalf("seed %d: unpackNames gives %q for %q", seed, n, part[i].name)
				}
			}
		}
		if len(got) != len(es) {
			t.Fatalf("seed %d: %d entries back of %d", seed, len(got), len(es))
		}
		for i := range es {
			if !reflect.DeepEqual(got[i], *es[i]) {
				t.Fatalf("seed %d entry %d:\n got %+v\nwant %+v", seed, i, got[i], *es[i])
			}
		}
	}
}

// TestPackedDamage: every truncation and every single flipped byte of a
// stored chunk either fails with an error that says what to do or (a
// flipped value byte) decodes to entries that pack back to the same
// bytes; it never panics.
func TestPackedDamage(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 3, 40} {
		for _, ch := range chunksOf(randomEntries(r, n)) {
			for _, b := range [][]byte{ch.packed, append([]byte{packPlain}, mustBody(t, ch.packed)...)} {
				for cut := range len(b) {
					if _, err := unpackEntries(b[:cut], nil); err == nil {
						t.Fatalf("%d of %d bytes decoded without an error", cut, len(b))
					}
				}
				for i := range b {
					d := bytes.Clone(b)
					d[i] ^= 1 << r.IntN(8)
					checkDecodes(t, d)
				}
			}
		}
	}
}

func mustBody(t *testing.T, b []byte) []byte {
	t.Helper()
	body, _, err := chunkBody(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Clone(body)
}

// checkDecodes: b gives an error or entries that are a valid chunk.
func checkDecodes(t *testing.T, b []byte) {
	t.Helper()
	es, err := unpackEntries(b, nil)
	if err != nil {
		if !bytes.Contains([]byte(err.Error()), []byte("tapir admin rebuild")) {
			t.Fatalf("error %q does not say what to do", err)
		}
		return
	}
	ptrs := make([]*entry, len(es))
	for i := range es {
		ptrs[i] = &es[i]
	}
	again, err := unpackEntries(packEntries(ptrs), nil)
	if err != nil || !reflect.DeepEqual(again, es) {
		t.Fatalf("decoded entries do not pack back: %v", err)
	}
}

func FuzzUnpackEntries(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 2, 30} {
		for _, ch := range chunksOf(randomEntries(r, n)) {
			f.Add(ch.packed)
			body, _, _ := chunkBody(ch.packed)
			f.Add(append([]byte{packPlain}, body...))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkDecodes(t, b)
		_ = unpackNames(b, func(string, byte) {})
	})
}

// TestPackedBatchesProperty ingests random directories in random batch
// sizes (a directory's entries then sit in several runs of chunks, names
// stored twice across and within batches, large and small directories)
// and checks every reader against the records themselves: ListDir, Entry,
// View.List, View.Records, FindVersions.
func TestPackedBatchesProperty(t *testing.T) { forEachBackend(t, testPackedBatchesProperty) }

func testPackedBatchesProperty(t *testing.T) {
	c := newCatalog(t)
	for seed := range uint64(6) {
		r := rand.New(rand.NewPCG(seed, 99))
		run := mkRun(t, c, fmt.Sprintf("202503%02d010000", seed+1))
		dle := fmt.Sprintf("/p%d", seed)
		id := mkDump(t, c, run, "prop", dle, 0)
		dirs := []string{"", "a", "a/b", "big"}
		var recs []FileRecord
		for _, d := range dirs[1:] {
			p := d
			recs = append(recs, FileRecord{Path: p, Type: '5', Mode: 0o755})
		}
		n := 200 + r.IntN(3000)
		for range n {
			d := dirs[r.IntN(len(dirs))]
			if r.IntN(2) == 0 {
				d = "big"
			}
			name := fmt.Sprintf("n%04d", r.IntN(n/2+1))
			p := name
			if d != "" {
				p = d + "/" + name
			}
			recs = append(recs, FileRecord{Path: p, Type: '0', Size: r.Int64N(1 << 30), Mode: 0o644, UID: r.IntN(3), Mtime: time.Unix(r.Int64N(1<<33), r.Int64N(1e9))})
		}
		for i := range recs {
			recs[i].TarOffset = int64(i+1) * 512 * int64(1+r.IntN(4))
			if i > 0 && recs[i].TarOffset <= recs[i-1].TarOffset {
				recs[i].TarOffset = recs[i-1].TarOffset + 512
			}
		}
		w, err := c.NewFileWriter(t.Context(), id, testFrameSize)
		if err != nil {
			t.Fatal(err)
		}
		w.batch = 1 + r.IntN(400)
		for _, rec := range recs {
			if err := w.Add(t.Context(), rec); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Commit(t.Context()); err != nil {
			t.Fatal(err)
		}
		holdDump(t, c, id, recs[len(recs)-1].TarOffset+4096)
		// The reference: the latest occurrence of each path, with its span.
		want := map[string]FileRecord{}
		for i, rec := range recs {
			if i+1 < len(recs) {
				rec.Span = recs[i+1].TarOffset - rec.TarOffset
			}
			want[rec.Path] = rec
		}
		v, err := c.View(t.Context(), "prop", dle, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range dirs {
			var names []string
			for p := range want {
				if dir, _, _ := splitPath(p); dir == d {
					names = append(names, p)
				}
			}
			slices.Sort(names)
			got, err := c.ListDir(t.Context(), id, d)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(names) {
				t.Fatalf("seed %d batch %d: ListDir(%q) has %d entries, want %d", seed, w.batch, d, len(got), len(names))
			}
			ents, err := v.List(t.Context(), d)
			if err != nil {
				t.Fatal(err)
			}
			if len(ents) != len(names) {
				t.Fatalf("seed %d batch %d: View.List(%q) has %d entries, want %d", seed, w.batch, d, len(ents), len(names))
			}
			for k, p := range names {
				g := got[k]
				sameTime := g.Mtime.Equal(want[p].Mtime)
				g.Mtime = want[p].Mtime
				if !sameTime || !reflect.DeepEqual(g, want[p]) {
					t.Fatalf("seed %d batch %d: ListDir(%q)[%d] = %+v, want %+v", seed, w.batch, d, k, got[k], want[p])
				}
				if _, name, _ := splitPath(p); ents[k].Name != name || ents[k].Type != want[p].Type {
					t.Fatalf("seed %d: View.List(%q)[%d] = %+v, want %q", seed, d, k, ents[k], p)
				}
				if k%13 == 0 {
					e, err := c.Entry(t.Context(), id, p)
					if err != nil || e.TarOffset != want[p].TarOffset || e.Span != want[p].Span || !e.Mtime.Equal(want[p].Mtime) {
						t.Fatalf("seed %d: Entry(%q) = %+v, %v; want %+v", seed, p, e, err, want[p])
					}
					vs, _, err := c.FindVersions(t.Context(), "prop", dle, p, 0)
					// A pattern without '/' (a name in the root) matches
					// that name in every directory.
					vs = slices.DeleteFunc(vs, func(v Version) bool { return v.Path != p })
					if err != nil || len(vs) != 1 || vs[0].TarOffset != want[p].TarOffset {
						t.Fatalf("seed %d: FindVersions(%q) = %+v, %v; want offset %d", seed, p, vs, err, want[p].TarOffset)
					}
				}
			}
		}
	}
}

// A directory whose entries come one after the other is written as one
// sorted run of chunks even when it is larger than a batch (and a batch
// commit waits for the next directory): ls then merges nothing. Records
// of one directory beyond holdBack are committed anyway.
func TestFileWriterKeepsADirectoryInOneRun(t *testing.T) {
	c := newCatalog(t)
	run := mkRun(t, c, "20250301010000")
	id := mkDump(t, c, run, "web1", "/srv", 0)
	w, err := c.NewFileWriter(t.Context(), id, testFrameSize)
	if err != nil {
		t.Fatal(err)
	}
	w.batch = 10
	var off int64
	add := func(dir string, n int) {
		for i := range n {
			off += 1024
			if err := w.Add(t.Context(), FileRecord{Path: fmt.Sprintf("%s/f%03d", dir, i), Type: '0', TarOffset: off}); err != nil {
				t.Fatal(err)
			}
		}
	}
	add("a", 7)
	add("big", 95)
	if n := countRows(t, c, "files", id); n != 7 {
		t.Errorf("%d entries committed while the big directory goes on, want a's 7", n)
	}
	add("c", 3)
	if err := w.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	err = c.read(t.Context(), "runs", func(tx *sql.Tx) error {
		var dirID int64
		if err := tx.QueryRow(`SELECT id FROM dirs WHERE path = 'big'`).Scan(&dirID); err != nil {
			return err
		}
		sc, err := readChunks(tx, id, dirID, "")
		if err != nil {
			return err
		}
		if len(sc.runs) != 1 || sc.total != 95 {
			t.Errorf("big: %d runs, %d entries; want 1 run of 95", len(sc.runs), sc.total)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
