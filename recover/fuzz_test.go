package recover

import (
	"archive/tar"
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/gnutar"
)

// FuzzShellInput: command lines, scripts and dates typed by a person never
// panic; what splitWords accepts, EscapeWord makes read back the same.
func FuzzShellInput(f *testing.F) {
	for _, s := range []string{`add "old name.txt" b\ c`, `setdate 2025-06-07-12:00:00`, `cd ../..; ls`, `'unterminated`, "---31", "--02-30", `a\`} {
		f.Add(s)
	}
	now := time.Date(2026, 2, 10, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		words, err := splitWords(s)
		if err == nil {
			for _, w := range words {
				back, err := splitWords(EscapeWord(w))
				if w != "" && (err != nil || len(back) != 1 || back[0] != w) {
					t.Fatalf("EscapeWord(%q) reads back as %q %v", w, back, err)
				}
			}
		}
		splitScript(s)
		wordStart(s)
		unescape(s)
		if ds, err := ParseDate(s, now); err == nil && ds != "" && strings.Trim(ds, "0123456789") != "" {
			t.Fatalf("ParseDate(%q) = %q: not digits", s, ds)
		}
	})
}

// The extractor's fuzz input is a small program, so that mutations stay
// tar streams with meaningful names: a flags byte, then ops. Op 0 starts
// the next image (the next image of a chain); any other op is an entry of
// fuzzEntryLen bytes: op, type, name, link, mode, size, listing count,
// then for each listing entry a kind and a name, then xattrs.
var (
	fuzzTypes = []byte{tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink, tar.TypeFifo, tar.TypeChar, tar.TypeBlock, tar.TypeXGlobalHeader, 'Z', tar.TypeGNUSparse}
	// Names: ABS is the parent of the target (the sentinel tree is there).
	fuzzNames = []string{".", "./", "", "..", "../", "../victim", "../sentinel/file", "ABS/victim", "ABS/sentinel", "/etc/tapir-fuzz-never",
		"a", "a/", "a/b", "./a/b/c", "link", "link/x", "link/victim", "link/file", "./a/../../victim", "a//b", "a/./b", "./.", "././a", ".//",
		"victim", "sentinel", "sentinel/file", "up/victim", "up", "s", "s/file", "d", "d/e", "mine", "h", "x\x00y"}
	fuzzLinks = []string{"..", "../", "/", "ABS", "ABS/victim", "ABS/sentinel", "../victim", "../sentinel", "../sentinel/file", "a", "a/b",
		"link", "link/victim", "victim", ".", "", "./", "up/victim", "s/file", "mine", "d"}
	fuzzModes    = []int64{0o644, 0o755, 0o777, 0o4755, 0o2755, 0o7777, 0o000, 0o1777, 0o700, 0o555}
	fuzzSizes    = []int{0, 1, 600, 5000}
	fuzzDumpdirs = []string{"..", ".", "", "/abs", "ABS", "victim", "sentinel", "a", "b/c", "link", "up", "mine", "s", "d", "../victim"}
	fuzzKinds    = []byte("YNDRTXQ")
	fuzzXattrs   = []map[string]string{nil,
		{"SCHILY.xattr.user.x": "1"},
		{"SCHILY.xattr.trusted.x": "1", "SCHILY.xattr.security.capability": "bogus"},
		{"SCHILY.acl.access": "user::rw-,bogus"},
		{"SCHILY.xattr.": "x"},
	}
)

const fuzzEntryLen = 7

type fuzzOp struct {
	newImage           bool
	typ, name, link    int
	mode, size         int
	dumpdir            []fuzzDD // nil: no listing
	hasDumpdir, xattrs int
}

type fuzzDD struct{ kind, name int }

// encodeFuzz turns a hand-written program into fuzz input.
func encodeFuzz(flags byte, ops ...fuzzOp) []byte {
	b := []byte{flags}
	for _, o := range ops {
		if o.newImage {
			b = append(b, 0)
			continue
		}
		dd := byte(0)
		if o.dumpdir != nil {
			dd = byte(len(o.dumpdir) + 1)
		}
		b = append(b, 1, byte(o.typ), byte(o.name), byte(o.link), byte(o.mode), byte(o.size), dd)
		for _, e := range o.dumpdir {
			b = append(b, byte(e.kind), byte(e.name))
		}
		b = append(b, byte(o.xattrs))
	}
	return b
}

// vocab returns where v is in list; a seed naming something not in the
// vocabulary fails the test.
func vocab[T comparable](tb testing.TB, list []T, v T) int {
	tb.Helper()
	for i, x := range list {
		if x == v {
			return i
		}
	}
	tb.Fatalf("no %v in the fuzz vocabulary", v)
	return 0
}

// fuzzImages decodes fuzz input into Extractor options and tar streams.
// Flags: 1 Overwrite, 2 Incremental, 4 SamePrivileges, 8 TargetMeta, 16 the
// target holds a file of its own, 32 Warn set, 64 images go through All.
func fuzzImages(data []byte, abs string) (Extractor, [][]byte) {
	var x Extractor
	if len(data) == 0 {
		return x, nil
	}
	flags := data[0]
	x.Overwrite, x.Incremental, x.SamePrivileges, x.TargetMeta = flags&1 != 0, flags&2 != 0, flags&4 != 0, flags&8 != 0
	if flags&32 != 0 {
		x.Warn = func(string) {}
	}
	sub := func(s string) string { return strings.ReplaceAll(s, "ABS", abs) }
	var images [][]byte
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	flush := func() {
		tw.Close()
		images = append(images, append([]byte(nil), buf.Bytes()...))
		buf.Reset()
		tw = tar.NewWriter(&buf)
	}
	p := data[1:]
	for len(p) > 0 {
		if p[0] == 0 {
			flush()
			p = p[1:]
			continue
		}
		if len(p) < fuzzEntryLen {
			break
		}
		h := tar.Header{
			Typeflag: fuzzTypes[int(p[1])%len(fuzzTypes)],
			Name:     sub(fuzzNames[int(p[2])%len(fuzzNames)]),
			Mode:     fuzzModes[int(p[4])%len(fuzzModes)],
			ModTime:  testMtime,
			Format:   tar.FormatPAX,
		}
		link := sub(fuzzLinks[int(p[3])%len(fuzzLinks)])
		size := fuzzSizes[int(p[5])%len(fuzzSizes)]
		nd := int(p[6])
		p = p[fuzzEntryLen:]
		switch h.Typeflag {
		case tar.TypeReg, tar.TypeGNUSparse:
			h.Size = int64(size)
		case tar.TypeSymlink, tar.TypeLink:
			h.Linkname = link
		case tar.TypeChar:
			h.Devmajor, h.Devminor = 1, 3
		case tar.TypeBlock:
			h.Devmajor, h.Devminor = 7, 200
		}
		recs := map[string]string{}
		if nd > 0 {
			var es []gnutar.DirEntry
			for i := 0; i < nd-1 && len(p) >= 2; i++ {
				es = append(es, gnutar.DirEntry{Kind: fuzzKinds[int(p[0])%len(fuzzKinds)], Name: sub(fuzzDumpdirs[int(p[1])%len(fuzzDumpdirs)])})
				p = p[2:]
			}
			recs[gnutar.PAXDumpdir] = gnutar.EncodeDumpdir(es)
		}
		if len(p) > 0 {
			for k, v := range fuzzXattrs[int(p[0])%len(fuzzXattrs)] {
				recs[k] = v
			}
			p = p[1:]
		}
		if len(recs) > 0 {
			h.PAXRecords = recs
		}
		if err := tw.WriteHeader(&h); err != nil {
			continue // a header tar.Writer will not write: no such stream
		}
		if h.Size > 0 {
			tw.Write(bytes.Repeat([]byte{'x'}, int(h.Size)))
		}
	}
	flush()
	return x, images
}

// fuzzSeeds are the attacks of issue 12 as fuzz programs.
func fuzzSeeds(tb testing.TB) [][]byte {
	const ow, inc, priv, meta, pre, warn = 1, 2, 4, 8, 16, 32
	fn := func(s string) int { return vocab(tb, fuzzNames, s) }
	fl := func(s string) int { return vocab(tb, fuzzLinks, s) }
	ft := func(t byte) int { return vocab(tb, fuzzTypes, t) }
	fm := func(m int64) int { return vocab(tb, fuzzModes, m) }
	fdd := func(k byte, n string) fuzzDD {
		return fuzzDD{vocab(tb, fuzzKinds, k), vocab(tb, fuzzDumpdirs, n)}
	}
	e := func(typ byte, name, link string, mode int64) fuzzOp {
		return fuzzOp{typ: ft(typ), name: fn(name), link: fl(link), mode: fm(mode), size: 1}
	}
	listing := func(name string, dd ...fuzzDD) fuzzOp {
		o := e(tar.TypeDir, name, ".", 0o755)
		o.dumpdir = append([]fuzzDD{}, dd...)
		return o
	}
	withAttrs := func(o fuzzOp, xattrs int) fuzzOp {
		o.xattrs = xattrs
		return o
	}
	next := fuzzOp{newImage: true}
	return [][]byte{
		// "." a symlink out, then a file through it.
		encodeFuzz(ow|inc, e(tar.TypeSymlink, ".", "ABS", 0o777), e(tar.TypeReg, "victim", ".", 0o644)),
		encodeFuzz(ow|inc|warn, e(tar.TypeSymlink, "./", "../sentinel", 0o777), e(tar.TypeReg, "sentinel/file", ".", 0o644), e(tar.TypeReg, "victim", ".", 0o644)),
		// "." a regular file, a fifo, a device, a hard link, into a non-empty target.
		encodeFuzz(ow|inc|pre, e(tar.TypeReg, ".", ".", 0o644)),
		encodeFuzz(ow|priv|pre|warn, e(tar.TypeFifo, ".", ".", 0o644), e(tar.TypeChar, "./", ".", 0o644), e(tar.TypeLink, ".", "../victim", 0o644)),
		// "." a directory: the target keeps its mode unless TargetMeta.
		encodeFuzz(ow|inc|priv, e(tar.TypeDir, ".", ".", 0o7777), e(tar.TypeDir, "./", ".", 0o000)),
		encodeFuzz(meta|priv, e(tar.TypeDir, ".", ".", 0o555)),
		// "..", absolute names, escapes by cleaning.
		encodeFuzz(ow|warn, e(tar.TypeDir, "..", ".", 0o777), e(tar.TypeReg, "../victim", ".", 0o644), e(tar.TypeReg, "ABS/victim", ".", 0o644),
			e(tar.TypeReg, "./a/../../victim", ".", 0o644), e(tar.TypeReg, "/etc/tapir-fuzz-never", ".", 0o644)),
		// A symlink, then a file through it; then in the next image.
		encodeFuzz(ow|warn, e(tar.TypeSymlink, "link", "ABS", 0o777), e(tar.TypeReg, "link/victim", ".", 0o644)),
		encodeFuzz(ow|inc, e(tar.TypeSymlink, "link", "../sentinel", 0o777), next, e(tar.TypeReg, "link/file", ".", 0o644)),
		// Hard links pointing out, directly and through a symlink.
		encodeFuzz(ow|warn, e(tar.TypeLink, "h", "../victim", 0o644), e(tar.TypeLink, "h", "ABS/victim", 0o644),
			e(tar.TypeSymlink, "up", "..", 0o777), e(tar.TypeLink, "h", "up/victim", 0o644),
			e(tar.TypeSymlink, "s", "../sentinel", 0o777), e(tar.TypeLink, "h", "s/file", 0o644)),
		// Listings that name "..", absolute paths, renames; a symlink
		// replaced by a listed directory.
		encodeFuzz(ow|inc|warn, listing(".", fdd('Y', "..")), listing("d", fdd('N', "/abs")), listing("d", fdd('Y', "../victim")),
			listing(".", fdd('R', "../victim"), fdd('T', "a")), listing(".", fdd('Q', "a"))),
		encodeFuzz(ow|inc|pre, e(tar.TypeSymlink, "s", "../sentinel", 0o777), next, listing("s"), listing(".", fdd('Y', "s"))),
		encodeFuzz(inc|pre, e(tar.TypeSymlink, "d", "ABS", 0o777), listing("d")),
		// A directory's attributes in the full, gone in the incremental
		// (removed from it), over a symlink planted in between, and the
		// root's with TargetMeta.
		encodeFuzz(ow|inc, withAttrs(listing("d"), 1), withAttrs(listing("."), 1), next, listing("d"), listing(".")),
		encodeFuzz(ow|inc|meta|priv|warn, withAttrs(listing("."), 2), withAttrs(listing("d"), 3), next,
			e(tar.TypeSymlink, "d", "ABS", 0o777), listing("d"), listing(".")),
		encodeFuzz(inc|pre, e(tar.TypeSymlink, "d", "../sentinel", 0o777), next, withAttrs(listing("d"), 1), listing("d")),
		// Privileges: devices, setuid, trusted and security xattrs.
		encodeFuzz(ow, e(tar.TypeChar, "d", ".", 0o644), e(tar.TypeBlock, "d/e", ".", 0o644), e(tar.TypeReg, "a", ".", 0o4755),
			fuzzOp{typ: ft(tar.TypeReg), name: fn("h"), link: fl("."), mode: fm(0o2755), size: 2, xattrs: 2}),
		encodeFuzz(ow|priv|warn, e(tar.TypeChar, "d", ".", 0o644), e(tar.TypeLink, "h", "d", 0o644), e(tar.TypeReg, "a", ".", 0o4755),
			fuzzOp{typ: ft(tar.TypeReg), name: fn("h"), link: fl("."), mode: fm(0o2755), size: 2, xattrs: 2}),
	}
}

// FuzzExtractor: whatever tar streams a client sends, in whatever order
// and chain, with whatever options, extracting them into a target creates,
// changes or removes nothing outside the target (the parent holds a
// sentinel tree, compared before and after), the target stays the same
// directory (with its own mode and owner unless TargetMeta), and every
// failure is an error with words, never a panic.
func FuzzExtractor(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a := newArena(t, len(data) > 0 && data[0]&16 != 0)
		x, images := fuzzImages(data, a.Parent)
		x.Dir = a.Target
		all := len(data) > 0 && data[0]&64 != 0
		for _, img := range images {
			tr := tar.NewReader(bytes.NewReader(img))
			if all {
				if _, err := x.All(tr); err != nil && err.Error() == "" {
					t.Fatal("an error without words")
				}
				continue
			}
			for {
				hdr, err := tr.Next()
				if err != nil {
					break
				}
				if _, err := x.Entry(hdr, tr); err != nil && err.Error() == "" {
					t.Fatal("an error without words")
				}
			}
			x.Close()
		}
		a.Check(t, x.TargetMeta)
	})
}
