package gnutar

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestSparseMap(t *testing.T) {
	tests := []struct {
		name string
		ext  []Extent
		size int64
		want string // map text before NUL padding
		data int64
		err  string
	}{
		{"GNU tar's 100 MiB example", []Extent{{4096, 4096}, {52428800, 4096}}, 104857600,
			"3\n4096\n4096\n52428800\n4096\n104857600\n0\n", 8192, ""},
		{"ends with data", []Extent{{0, 10}, {100, 28}}, 128, "2\n0\n10\n100\n28\n", 38, ""},
		{"all hole", nil, 1 << 30, "1\n1073741824\n0\n", 0, ""},
		{"empty file", nil, 0, "1\n0\n0\n", 0, ""},
		{"zero-length extents dropped", []Extent{{0, 0}, {5, 5}, {20, 0}}, 30, "2\n5\n5\n30\n0\n", 5, ""},
		{"adjacent extents kept", []Extent{{0, 5}, {5, 5}}, 10, "2\n0\n5\n5\n5\n", 10, ""},
		{"negative", []Extent{{-1, 5}}, 10, "", 0, "negative"},
		{"overlap", []Extent{{0, 6}, {5, 1}}, 10, "", 0, "overlaps"},
		{"unsorted", []Extent{{5, 1}, {0, 1}}, 10, "", 0, "sorted"},
		{"past end", []Extent{{5, 6}}, 10, "", 0, "past the file size"},
		{"offset past end", []Extent{{11, 0}}, 10, "", 0, "past the file size"},
		{"overflow", []Extent{{1, 1<<63 - 1}}, 10, "", 0, "past the file size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, data, err := sparseMap(tt.ext, tt.size)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			enc := encodeSparseMap(m)
			if len(enc)%blockSize != 0 || string(bytes.TrimRight(enc, "\x00")) != tt.want {
				t.Fatalf("map %q (len %d), want %q padded to 512", enc, len(enc), tt.want)
			}
			if data != tt.data {
				t.Fatalf("data size %d, want %d", data, tt.data)
			}
		})
	}
}

func TestPad(t *testing.T) {
	for n, want := range map[int64]int64{0: 0, 1: 511, 511: 1, 512: 0, 513: 511, 1 << 40: 0} {
		if got := Pad(n); got != want {
			t.Errorf("Pad(%d) = %d, want %d", n, got, want)
		}
	}
}

func TestPaxRecord(t *testing.T) {
	for _, v := range []string{"", "x", strings.Repeat("a", 90), strings.Repeat("a", 91), strings.Repeat("a", 92), strings.Repeat("b", 994), strings.Repeat("b", 995)} {
		r := paxRecord("k", v)
		sp := strings.IndexByte(r, ' ')
		n, err := strconv.Atoi(r[:sp])
		if err != nil || n != len(r) || r[sp+1:] != "k="+v+"\n" {
			t.Errorf("paxRecord(k, %d bytes) = %q...: length field %d, record %d bytes", len(v), r[:min(len(r), 12)], n, len(r))
		}
	}
}

func TestPaxTime(t *testing.T) {
	tests := []struct {
		t    time.Time
		want string
	}{
		{time.Unix(1700000000, 0), "1700000000"},
		{time.Unix(1795452808, 339773230), "1795452808.33977323"},
		{time.Unix(1, 1), "1.000000001"},
		{time.Unix(-2, 500000000), "-1.5"},
		{time.Unix(-1, 0), "-1"},
	}
	for _, tt := range tests {
		if got := paxTime(tt.t); got != tt.want {
			t.Errorf("paxTime(%v) = %q, want %q", tt.t, got, tt.want)
		}
	}
}

func TestFitName(t *testing.T) {
	long := strings.Repeat("d", 120)
	tests := []struct {
		dir, base, name, prefix string
	}{
		{".", "big", "./GNUSparseFile.0/big", ""},
		{"a/b", "c", "a/b/GNUSparseFile.0/c", ""},
		{long, "f", "f", long + "/GNUSparseFile.0"},
		{long + "/" + long, "f", "GNUSparseFile.0/f", long + "/" + long[:34]},
		{"x", strings.Repeat("é", 60), "GNUSparseFile.0/" + strings.Repeat("é", 42), "x"},
	}
	for _, tt := range tests {
		name, prefix := fitName(tt.dir, sparseDir, tt.base)
		if name != tt.name || prefix != tt.prefix {
			t.Errorf("fitName(%.20q, %.20q) = %q, %q; want %q, %q", tt.dir, tt.base, name, prefix, tt.name, tt.prefix)
		}
		if len(name) > 100 || len(prefix) > 155 {
			t.Errorf("fitName(%.20q, %.20q) does not fit: %d, %d", tt.dir, tt.base, len(name), len(prefix))
		}
	}
}

func TestSparseEntryErrors(t *testing.T) {
	ok := func() *tar.Header { return &tar.Header{Name: "f", Typeflag: tar.TypeReg, Size: 10, Mode: 0o644} }
	tests := []struct {
		name string
		mod  func(h *tar.Header)
		ext  []Extent
		want string
	}{
		{"directory", func(h *tar.Header) { h.Typeflag = tar.TypeDir }, nil, "not a regular file"},
		{"symlink", func(h *tar.Header) { h.Typeflag = tar.TypeSymlink }, nil, "not a regular file"},
		{"no name", func(h *tar.Header) { h.Name = "" }, nil, "empty"},
		{"NUL in name", func(h *tar.Header) { h.Name = "a\x00b" }, nil, "NUL"},
		{"linkname", func(h *tar.Header) { h.Linkname = "x" }, nil, "link name"},
		{"negative size", func(h *tar.Header) { h.Size = -1 }, nil, "negative size"},
		{"negative uid", func(h *tar.Header) { h.Uid = -1 }, nil, "negative uid"},
		{"negative mode", func(h *tar.Header) { h.Mode = -1 }, nil, "negative mode"},
		{"NUL in gname", func(h *tar.Header) { h.Gname = "a\x00" }, nil, "contains NUL"},
		{"bad pax key", func(h *tar.Header) { h.PAXRecords = map[string]string{"a=b": "c"} }, nil, "invalid pax record key"},
		{"bad extent", func(h *tar.Header) {}, []Extent{{8, 8}}, "past the file size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := ok()
			tt.mod(h)
			_, _, err := SparseEntry(h, tt.ext)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want %q", err, tt.want)
			}
		})
	}
	if _, _, err := SparseEntry(nil, nil); err == nil {
		t.Fatal("nil header accepted")
	}
}

func TestExtentReader(t *testing.T) {
	src := strings.NewReader("0123456789abcdef")
	got, err := io.ReadAll(ExtentReader(src, []Extent{{1, 3}, {4, 0}, {8, 2}, {14, 2}}))
	if err != nil || string(got) != "123"+"89"+"ef" {
		t.Fatalf("read %q, %v", got, err)
	}
	_, err = io.ReadAll(ExtentReader(src, []Extent{{10, 10}}))
	if !errors.Is(err, io.ErrUnexpectedEOF) || !strings.Contains(err.Error(), "shrank") {
		t.Fatalf("short file: error = %v, want a wrapped io.ErrUnexpectedEOF", err)
	}
	if _, err := io.ReadAll(ExtentReader(src, []Extent{{-1, 2}})); err == nil {
		t.Fatal("negative offset accepted")
	}
}

// sparseFile makes a file of size bytes holding data at the given offsets
// and holes elsewhere.
func sparseFile(t *testing.T, p string, size int64, data map[int64]string) {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for off, s := range data {
		if _, err := f.WriteAt([]byte(s), off); err != nil {
			t.Fatal(err)
		}
	}
}

// needHoles skips the test when dir's filesystem does not report holes
// through lseek SEEK_HOLE.
func needHoles(t *testing.T, dir string) {
	t.Helper()
	p := filepath.Join(dir, ".hole-probe")
	sparseFile(t, p, 1<<20, map[int64]string{0: "x"})
	defer os.Remove(p)
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, sparse, err := DataExtents(f, 1<<20); err != nil || !sparse {
		t.Skipf("the filesystem of %s reports no holes (SEEK_HOLE): %v", dir, err)
	}
}

func fileSum(t *testing.T, p string) ([sha256.Size]byte, int64, int64) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	var s [sha256.Size]byte
	copy(s[:], h.Sum(nil))
	return s, st.Size, st.Blocks
}

func TestDataExtents(t *testing.T) {
	dir := t.TempDir()
	needHoles(t, dir)
	tests := []struct {
		name   string
		size   int64
		data   map[int64]string
		sparse bool
		cover  []int64 // offsets that must be inside an extent
	}{
		{"two small extents in 100 MiB", 100 << 20, map[int64]string{4096: "hello", 50 << 20: "world"}, true, []int64{4096, 50 << 20}},
		{"data at both ends", 10 << 20, map[int64]string{0: "a", 10<<20 - 1: "z"}, true, []int64{0, 10<<20 - 1}},
		{"all hole", 1 << 20, nil, true, nil},
		{"dense", 3, map[int64]string{0: "abc"}, false, nil},
		{"empty", 0, nil, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_"))
			sparseFile(t, p, tt.size, tt.data)
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.Seek(1, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			ext, sparse, err := DataExtents(f, tt.size)
			if err != nil {
				t.Fatal(err)
			}
			if pos, _ := f.Seek(0, io.SeekCurrent); pos != 1 {
				t.Errorf("file offset moved to %d", pos)
			}
			if sparse != tt.sparse {
				t.Fatalf("sparse = %v (extents %v), want %v", sparse, ext, tt.sparse)
			}
			if _, _, err := sparseMap(ext, tt.size); err != nil {
				t.Fatalf("extents %v invalid: %v", ext, err)
			}
			var total int64
			for _, e := range ext {
				total += e.Length
			}
			if tt.sparse && total > 1<<20 {
				t.Errorf("extents %v hold %d bytes, want a few blocks", ext, total)
			}
		next:
			for _, off := range tt.cover {
				for _, e := range ext {
					if off >= e.Offset && off < e.Offset+e.Length {
						continue next
					}
				}
				t.Errorf("offset %d with data is in no extent of %v", off, ext)
			}
		})
	}
}

// writeSparse appends the sparse entry for file p, named name in the
// archive, to w after flushing tw.
func writeSparse(t *testing.T, tw *tar.Writer, w io.Writer, p, name string, hdr tar.Header) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	ext, sparse, err := DataExtents(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	if !sparse {
		t.Fatalf("%s is not sparse", p)
	}
	hdr.Name, hdr.Size, hdr.Typeflag = name, st.Size(), tar.TypeReg
	prefix, dataSize, err := SparseEntry(&hdr, ext)
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(prefix); err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(w, ExtentReader(f, ext))
	if err != nil || n != dataSize {
		t.Fatalf("wrote %d data bytes of %d: %v", n, dataSize, err)
	}
	if _, err := w.Write(make([]byte, Pad(dataSize))); err != nil {
		t.Fatal(err)
	}
}

// TestSparseStreamWithGNUTar writes one stream that mixes tar.Writer
// entries and raw sparse entries, then checks that the real GNU tar lists
// and extracts all of it (content, apparent size, holes, metadata,
// xattrs) and that archive/tar reads it back.
func TestSparseStreamWithGNUTar(t *testing.T) {
	tarPath := needGNUTar(t)
	base := t.TempDir()
	needHoles(t, base)
	src, out := filepath.Join(base, "src"), filepath.Join(base, "out")
	for _, d := range []string{src, out} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	longDir := strings.Repeat("long-directory-name/", 6)
	longName := "dir/" + longDir + strings.Repeat("sparse-file-", 8) + "end"
	files := []struct {
		name string // in the archive
		size int64
		data map[int64]string
	}{
		{"dir/big", 100 << 20, map[int64]string{4096: "hello", 50 << 20: "world"}},
		{longName, 3 << 20, map[int64]string{0: "start", 3<<20 - 4: "end!"}},
		{"dir/hole", 5 << 20, nil},
	}
	for i, fl := range files {
		sparseFile(t, filepath.Join(src, strconv.Itoa(i)), fl.size, fl.data)
	}

	mtime := time.Unix(1700000000, 123456789)
	archive := filepath.Join(base, "mixed.tar")
	af, err := os.Create(archive)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(af)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	dirHdr := func(name string) *tar.Header {
		return &tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mtime, Format: tar.FormatPAX}
	}
	must(tw.WriteHeader(dirHdr("dir/")))
	must(tw.WriteHeader(&tar.Header{Name: "dir/before", Typeflag: tar.TypeReg, Mode: 0o600, Size: 6, ModTime: mtime}))
	_, err = tw.Write([]byte("before"))
	must(err)
	writeSparse(t, tw, af, filepath.Join(src, "0"), files[0].name, tar.Header{
		Mode: 0o640, Uid: 3000000, Gid: 4000, Uname: "a-user-name-longer-than-32-bytes-x", Gname: "grp",
		ModTime: mtime, PAXRecords: map[string]string{"SCHILY.xattr.user.note": "sparse\x00bytes", "GNU.sparse.major": "9", "path": "ignored"},
	})
	must(tw.WriteHeader(dirHdr("dir/" + longDir)))
	writeSparse(t, tw, af, filepath.Join(src, "1"), files[1].name, tar.Header{Mode: 0o644, ModTime: mtime})
	writeSparse(t, tw, af, filepath.Join(src, "2"), files[2].name, tar.Header{Mode: 0o600, ModTime: mtime})
	must(tw.WriteHeader(&tar.Header{Name: "dir/after", Typeflag: tar.TypeReg, Mode: 0o644, Size: 5, ModTime: mtime}))
	_, err = tw.Write([]byte("after"))
	must(err)
	must(tw.Close())
	must(af.Close())

	// GNU tar lists the real names and sizes.
	list := run(t, base, tarPath, "--numeric-owner", "-tvf", archive)
	for _, want := range []string{
		"-rw-r----- 3000000/4000 104857600 2023-11-14 22:13 dir/big",
		" 3145728 2023-11-14 22:13 " + longName + "\n",
		" 5242880 2023-11-14 22:13 dir/hole\n",
		"dir/before\n", "dir/after\n",
	} {
		if !strings.Contains(list, want) {
			t.Errorf("tar -tvf output lacks %q:\n%s", want, list)
		}
	}
	if strings.Contains(list, "GNUSparseFile") || strings.Contains(list, "PaxHeaders") {
		t.Errorf("tar -tvf shows internal names:\n%s", list)
	}

	// GNU tar extracts everything: content, apparent size, holes, mode,
	// mtime, and the xattr record of the sparse entry.
	run(t, out, tarPath, "--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf", archive)
	for i, fl := range files {
		wantSum, wantSize, _ := fileSum(t, filepath.Join(src, strconv.Itoa(i)))
		p := filepath.Join(out, fl.name)
		gotSum, gotSize, blocks := fileSum(t, p)
		if gotSum != wantSum || gotSize != wantSize {
			t.Errorf("%s: extracted size %d sum %x, want size %d sum %x", fl.name, gotSize, gotSum[:6], wantSize, wantSum[:6])
		}
		if blocks > 256 {
			t.Errorf("%s: extracted file uses %d blocks of 512 bytes; its holes were filled", fl.name, blocks)
		}
		st, err := os.Stat(p)
		must(err)
		if !st.ModTime().Equal(mtime) {
			t.Errorf("%s: mtime %v, want %v", fl.name, st.ModTime(), mtime)
		}
	}
	if st, err := os.Stat(filepath.Join(out, "dir/big")); err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("dir/big: mode %v (%v), want 0640", st.Mode(), err)
	}
	for name, want := range map[string]string{"dir/before": "before", "dir/after": "after"} {
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil || string(b) != want {
			t.Errorf("%s: %q, %v", name, b, err)
		}
	}
	if os.Geteuid() == 0 {
		var st syscall.Stat_t
		must(syscall.Stat(filepath.Join(out, "dir/big"), &st))
		if st.Uid != 3000000 || st.Gid != 4000 {
			t.Errorf("dir/big: owner %d:%d, want 3000000:4000", st.Uid, st.Gid)
		}
	}
	if xattrsSupported(t, out) {
		recs, err := ReadAttrs(filepath.Join(out, "dir/big"))
		if err != nil || recs["SCHILY.xattr.user.note"] != "sparse\x00bytes" {
			t.Errorf("dir/big: xattrs %q (%v), want user.note", recs, err)
		}
	}

	// archive/tar reads the same stream back.
	af2, err := os.Open(archive)
	must(err)
	defer af2.Close()
	entries := readTar(t, af2)
	var names []string
	for _, e := range entries {
		names = append(names, e.hdr.Name)
	}
	wantNames := []string{"dir/", "dir/before", "dir/big", "dir/" + longDir, longName, "dir/hole", "dir/after"}
	if strings.Join(names, "\n") != strings.Join(wantNames, "\n") {
		t.Fatalf("archive/tar read names\n%s\nwant\n%s", strings.Join(names, "\n"), strings.Join(wantNames, "\n"))
	}
	for i, fl := range files {
		var e tarEntry
		for _, x := range entries {
			if x.hdr.Name == fl.name {
				e = x
			}
		}
		wantSum, wantSize, _ := fileSum(t, filepath.Join(src, strconv.Itoa(i)))
		if e.hdr.Size != wantSize || e.sum != wantSum {
			t.Errorf("archive/tar: %s: size %d, want %d; content differs: %v", fl.name, e.hdr.Size, wantSize, e.sum != wantSum)
		}
		if !e.hdr.ModTime.Equal(mtime) {
			t.Errorf("archive/tar: %s: mtime %v", fl.name, e.hdr.ModTime)
		}
	}
	big := entries[2].hdr
	if big.Uid != 3000000 || big.Gid != 4000 || big.Uname != "a-user-name-longer-than-32-bytes-x" || big.Gname != "grp" || big.Mode != 0o640 {
		t.Errorf("archive/tar: dir/big header %+v", big)
	}
	if big.PAXRecords["SCHILY.xattr.user.note"] != "sparse\x00bytes" || big.PAXRecords["GNU.sparse.major"] != "1" {
		t.Errorf("archive/tar: dir/big records %q", big.PAXRecords)
	}
}

// TestSparseMapMatchesGNUTar archives one sparse file with the real GNU
// tar and with SparseEntry and compares the sparse maps and the pax
// records that describe the sparse layout.
func TestSparseMapMatchesGNUTar(t *testing.T) {
	tarPath := needGNUTar(t)
	dir := t.TempDir()
	needHoles(t, dir)
	p := filepath.Join(dir, "big")
	sparseFile(t, p, 100<<20, map[int64]string{4096: "hello", 50 << 20: "world"})
	run(t, dir, tarPath, "--format=posix", "--sparse", "-cf", "gnu.tar", "big")
	raw, err := os.ReadFile(filepath.Join(dir, "gnu.tar"))
	if err != nil {
		t.Fatal(err)
	}
	gnuMap, gnuPax := rawSparseMember(t, raw)

	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ext, _, err := DataExtents(f, 100<<20)
	if err != nil {
		t.Fatal(err)
	}
	prefix, _, err := SparseEntry(&tar.Header{Name: "big", Typeflag: tar.TypeReg, Size: 100 << 20, ModTime: time.Unix(1, 0)}, ext)
	if err != nil {
		t.Fatal(err)
	}
	ourMap, ourPax := rawSparseMember(t, prefix)
	if !bytes.Equal(gnuMap, ourMap) {
		t.Errorf("sparse map differs:\nGNU tar %q\nours    %q", bytes.TrimRight(gnuMap, "\x00"), bytes.TrimRight(ourMap, "\x00"))
	}
	for _, k := range []string{"GNU.sparse.major", "GNU.sparse.minor", "GNU.sparse.name", "GNU.sparse.realsize"} {
		if gnuPax[k] == "" || gnuPax[k] != ourPax[k] {
			t.Errorf("record %s: GNU tar %q, ours %q", k, gnuPax[k], ourPax[k])
		}
	}
}

// rawSparseMember parses, block by block, a pax 'x' header, its records,
// the following ustar header, and returns the first block(s) of that
// member's data holding the sparse map, and the records.
func rawSparseMember(t *testing.T, raw []byte) ([]byte, map[string]string) {
	t.Helper()
	octal := func(b []byte) int64 {
		n, err := strconv.ParseInt(strings.Trim(string(b), "\x00 "), 8, 64)
		if err != nil {
			t.Fatalf("bad octal %q", b)
		}
		return n
	}
	if len(raw) < 1024 || raw[156] != 'x' {
		t.Fatalf("archive does not start with a pax header")
	}
	n := octal(raw[124:136])
	recs := map[string]string{}
	for rest := string(raw[512 : 512+n]); rest != ""; {
		sp := strings.IndexByte(rest, ' ')
		l, _ := strconv.Atoi(rest[:sp])
		kv := rest[sp+1 : l-1]
		eq := strings.IndexByte(kv, '=')
		recs[kv[:eq]] = kv[eq+1:]
		rest = rest[l:]
	}
	h := 512 + n + Pad(n)
	if raw[h+156] != '0' {
		t.Fatalf("pax header is followed by typeflag %q", raw[h+156])
	}
	data := raw[h+512:]
	end := bytes.IndexByte(data, 0)
	return data[:end+int(Pad(int64(end)))], recs
}

// FuzzSparseEntry builds sparse entries from arbitrary headers and extents
// and wants archive/tar to read back exactly the file and header they
// describe; SparseEntry may refuse its input but never panic.
func FuzzSparseEntry(f *testing.F) {
	f.Add("dir/file", uint32(1<<20), []byte{0, 1, 200, 3}, int64(0o644), 1000, 1000, "user", "group", int64(1700000000), uint32(5), "SCHILY.xattr.user.a", "v")
	f.Add("f", uint32(0), []byte{}, int64(0o4755), 3000000, 0, strings.Repeat("u", 40), "", int64(-3), uint32(999999999), "comment", "")
	f.Add(strings.Repeat("ä/", 120)+"x", uint32(4096), []byte{255, 255, 1, 1}, int64(0), 0, 1<<30, "é", "g", int64(1<<40), uint32(0), "path", "evil")
	f.Fuzz(func(t *testing.T, name string, size uint32, extb []byte, mode int64, uid, gid int, uname, gname string, sec int64, nsec uint32, key, val string) {
		realSize := int64(size % (1 << 20))
		var ext []Extent
		for i, off := 0, int64(0); i+1 < len(extb) && len(ext) < 64; i += 2 {
			off += int64(extb[i]) * 37
			l := int64(extb[i+1]) * 13
			ext = append(ext, Extent{off, l})
			off += l
		}
		mtime := time.Unix(sec%(1<<40), int64(nsec%1e9))
		hdr := &tar.Header{
			Name: name, Typeflag: tar.TypeReg, Size: realSize, Mode: mode,
			Uid: uid, Gid: gid, Uname: uname, Gname: gname, ModTime: mtime,
			PAXRecords: map[string]string{key: val},
		}
		prefix, dataSize, err := SparseEntry(hdr, ext)
		if err != nil {
			return
		}
		if len(prefix)%blockSize != 0 {
			t.Fatalf("prefix of %d bytes is not whole blocks", len(prefix))
		}
		content := make([]byte, realSize)
		var want int64
		for i, e := range ext {
			for j := e.Offset; j < e.Offset+e.Length; j++ {
				content[j] = byte(i*7 + 1)
			}
			want += e.Length
		}
		if dataSize != want {
			t.Fatalf("dataSize %d, want %d", dataSize, want)
		}
		var stream bytes.Buffer
		stream.Write(prefix)
		if n, err := io.Copy(&stream, ExtentReader(bytes.NewReader(content), ext)); err != nil || n != dataSize {
			t.Fatalf("ExtentReader gave %d bytes of %d: %v", n, dataSize, err)
		}
		stream.Write(make([]byte, Pad(dataSize)+2*blockSize))

		tr := tar.NewReader(&stream)
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("archive/tar: %v", err)
		}
		got, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("archive/tar: read data: %v", err)
		}
		switch {
		case h.Name != name:
			t.Fatalf("name %q, want %q", h.Name, name)
		case h.Size != realSize || !bytes.Equal(got, content):
			t.Fatalf("size %d (read %d bytes), want %d; content equal: %v", h.Size, len(got), realSize, bytes.Equal(got, content))
		case h.Mode != mode&0o7777 || h.Uid != uid || h.Gid != gid || h.Uname != uname || h.Gname != gname:
			t.Fatalf("header %o %d %d %q %q, want %o %d %d %q %q", h.Mode, h.Uid, h.Gid, h.Uname, h.Gname, mode&0o7777, uid, gid, uname, gname)
		case !h.ModTime.Equal(mtime):
			t.Fatalf("mtime %v, want %v", h.ModTime, mtime)
		case !reservedKey(key) && h.PAXRecords[key] != val:
			t.Fatalf("record %q = %q, want %q", key, h.PAXRecords[key], val)
		}
		if _, err := tr.Next(); err != io.EOF {
			t.Fatalf("after the entry: %v, want io.EOF", err)
		}
	})
}
