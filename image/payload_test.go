package image

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const testFrame = 64 << 10

type tfile struct {
	name string
	data []byte
	off  int64 // tar offset of the entry's first header block
}

// testFiles makes n files of mixed sizes and mixed compressibility.
func testFiles(n int, seed int64) []tfile {
	rng := rand.New(rand.NewSource(seed))
	words := []string{"tape ", "backup ", "level ", "zero ", "holding ", "disk\n", "frame ", "amanda "}
	files := make([]tfile, n)
	for i := range files {
		var size int
		switch rng.Intn(4) {
		case 0:
			size = rng.Intn(200)
		case 1:
			size = rng.Intn(5000)
		case 2:
			size = 1000 + rng.Intn(30000)
		default:
			size = 50000 + rng.Intn(150000)
		}
		data := make([]byte, 0, size)
		if rng.Intn(2) == 0 {
			for len(data) < size {
				data = append(data, words[rng.Intn(len(words))]...)
			}
			data = data[:size]
		} else {
			data = data[:size]
			rng.Read(data)
		}
		name := fmt.Sprintf("d%02d/file %03d.dat", i%17, i)
		if i%50 == 7 {
			name = fmt.Sprintf("d%02d/%s-%03d_é.txt", i%17, strings.Repeat("long", 40), i)
		}
		files[i] = tfile{name: name, data: data}
	}
	return files
}

// writeTar writes files as a PAX tar into pw (teeing into tee) and records
// each entry's tar offset.
func writeTar(t testing.TB, pw *PayloadWriter, tee io.Writer, files []tfile) {
	t.Helper()
	tw := tar.NewWriter(io.MultiWriter(pw, tee))
	mtime := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	dirs := map[string]bool{}
	for i := range files {
		f := &files[i]
		if err := tw.Flush(); err != nil {
			t.Fatal(err)
		}
		if d := filepath.Dir(f.name); !dirs[d] {
			dirs[d] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: mtime, Format: tar.FormatPAX}); err != nil {
				t.Fatal(err)
			}
			if err := tw.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		f.off = pw.TarOffset()
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: 0o640, Size: int64(len(f.data)),
			ModTime: mtime, Format: tar.FormatPAX, PAXRecords: map[string]string{"tapir.test": "1"}}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

type built struct {
	tar     []byte
	payload []byte
	sum     Summary
	files   []tfile
	hdr     *Header
	file    string // header + payload on disk
}

func buildImage(t testing.TB, comp Comp, files []tfile) *built {
	t.Helper()
	var payload, tarBuf bytes.Buffer
	pw, err := NewPayloadWriter(&payload, WriterOptions{Comp: comp, FrameSize: testFrame, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	writeTar(t, pw, &tarBuf, files)
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}
	sum := pw.Sum()
	h := &Header{Datestamp: "20250102030405", Host: "client", Path: "/srv/data", Part: 1, Parts: 1, Comp: comp,
		OriginalSize: sum.OriginalSize, PayloadSize: sum.PayloadSize, SHA256: sum.SHA256, FrameSize: testFrame,
		Frames: int64(len(sum.Frames)), Files: int64(len(files)), Encryption: "none"}
	hb, err := h.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), h.Name())
	if err := os.WriteFile(file, append(hb, payload.Bytes()...), 0o600); err != nil {
		t.Fatal(err)
	}
	return &built{tar: tarBuf.Bytes(), payload: payload.Bytes(), sum: sum, files: files, hdr: h, file: file}
}

func needTools(t *testing.T, tools ...string) {
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
}

func run(t *testing.T, dir, script string) []byte {
	t.Helper()
	cmd := exec.Command("bash", "-o", "pipefail", "-c", script)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, stderr.String())
	}
	return out
}

func checkFrames(t *testing.T, b *built) {
	t.Helper()
	fr := b.sum.Frames
	wantN := (len(b.tar) + testFrame - 1) / testFrame
	if len(fr) != wantN || len(fr) < 20 {
		t.Fatalf("%d frames for %d tar bytes, want %d (and many)", len(fr), len(b.tar), wantN)
	}
	var off int64
	for i, f := range fr {
		want := int64(testFrame)
		if i == len(fr)-1 {
			want = int64(len(b.tar)) - int64(i)*testFrame
		}
		if f.Index != i || f.TarOffset != int64(i)*testFrame || f.TarSize != want || f.Offset != off || f.Size <= 0 {
			t.Fatalf("frame %d = %+v, want index %d tar offset %d tar size %d offset %d", i, f, i, i*testFrame, want, off)
		}
		off += f.Size
	}
	if b.sum.OriginalSize != int64(len(b.tar)) || b.sum.PayloadSize != int64(len(b.payload)) {
		t.Fatalf("summary sizes %d/%d, want %d/%d", b.sum.OriginalSize, b.sum.PayloadSize, len(b.tar), len(b.payload))
	}
	if h := sha256.Sum256(b.payload); hex.EncodeToString(h[:]) != b.sum.SHA256 {
		t.Fatalf("summary sha256 %s is not the payload's", b.sum.SHA256)
	}
	tableLen := int64(0)
	if b.hdr.Comp == CompZstd {
		tableLen = int64(8 + 8*len(fr) + 9)
	}
	if off+tableLen != int64(len(b.payload)) {
		t.Fatalf("frames cover %d bytes + table %d, payload is %d", off, tableLen, len(b.payload))
	}
}

func compareTree(t *testing.T, dir string, files []tfile) {
	t.Helper()
	for _, f := range files {
		got, err := os.ReadFile(filepath.Join(dir, f.name))
		if err != nil {
			t.Fatalf("extracted tree: %v", err)
		}
		if !bytes.Equal(got, f.data) {
			t.Fatalf("extracted %s differs (%d bytes, want %d)", f.name, len(got), len(f.data))
		}
	}
}

// restoreLine returns the header's "vtape or holding file" command.
func restoreLine(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	const prefix = "To restore from a vtape or holding file:  "
	for _, l := range strings.Split(string(b[:bytes.IndexByte(b, 0)]), "\n") {
		if strings.HasPrefix(l, prefix) {
			return strings.Replace(strings.TrimPrefix(l, prefix), "FILE", "'"+file+"'", 1)
		}
	}
	t.Fatal("no restore line in header")
	return ""
}

// TestRestoreWithStandardTools: header + payload on disk restores with the
// header's own dd | zstd/gzip | tar command, and the decompressors see
// exactly the tar stream (the seek table frame is skipped by zstd -dc).
func TestRestoreWithStandardTools(t *testing.T) {
	needTools(t, "bash", "dd", "tar", "zstd", "gzip")
	files := testFiles(300, 1)
	for _, comp := range []Comp{CompZstd, CompGzip, CompNone} {
		t.Run(string(comp), func(t *testing.T) {
			b := buildImage(t, comp, files)
			checkFrames(t, b)
			dir := t.TempDir()
			line := restoreLine(t, b.file)
			run(t, dir, line)
			compareTree(t, dir, files)

			dec := map[Comp]string{CompZstd: " | zstd -dc", CompGzip: " | gzip -dc", CompNone: ""}[comp]
			out := run(t, dir, "dd if='"+b.file+"' bs=32k skip=1 status=none"+dec)
			if !bytes.Equal(out, b.tar) {
				t.Fatalf("standard decompressor output (%d bytes) differs from the tar stream (%d bytes)", len(out), len(b.tar))
			}
			if comp == CompZstd {
				run(t, dir, "dd if='"+b.file+"' bs=32k skip=1 status=none | zstd -q -t")
			}
			if sum := run(t, dir, "dd if='"+b.file+"' bs=32k skip=1 status=none | sha256sum"); !strings.HasPrefix(string(sum), b.hdr.SHA256+" ") {
				t.Fatalf("sha256sum of the payload = %s, header says %s", sum, b.hdr.SHA256)
			}

			// Our own stream reader gives the same bytes.
			f, err := os.Open(b.file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			h, err := ReadHeader(f)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(h, b.hdr) {
				t.Fatalf("header on disk = %#v, want %#v", h, b.hdr)
			}
			sr, err := NewStreamReader(f, comp)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(sr)
			sr.Close()
			if err != nil || !bytes.Equal(got, b.tar) {
				t.Fatalf("NewStreamReader: %d bytes, err %v; want %d bytes", len(got), err, len(b.tar))
			}
		})
	}
}

// countingReaderAt counts the bytes read through it.
type countingReaderAt struct {
	r io.ReaderAt
	n atomic.Int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}

func TestSeekTableAndReaderAt(t *testing.T) {
	files := testFiles(300, 2)
	for _, comp := range []Comp{CompZstd, CompGzip, CompNone} {
		t.Run(string(comp), func(t *testing.T) {
			b := buildImage(t, comp, files)
			frames := b.sum.Frames
			if comp == CompZstd {
				got, err := ReadSeekTable(bytes.NewReader(b.payload), int64(len(b.payload)))
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, b.sum.Frames) {
					t.Fatalf("seek table frames differ from the writer's:\n%v\n%v", got, b.sum.Frames)
				}
				frames = got
			} else if _, err := ReadSeekTable(bytes.NewReader(b.payload), int64(len(b.payload))); err == nil {
				t.Fatalf("ReadSeekTable found a table in a %s payload", comp)
			}
			for _, idx := range []int{0, 150, 271, len(files) - 1} {
				want := files[idx]
				cr := &countingReaderAt{r: bytes.NewReader(b.payload)}
				rc, err := NewReaderAt(cr, comp, frames, want.off)
				if err != nil {
					t.Fatal(err)
				}
				tr := tar.NewReader(rc)
				hdr, err := tr.Next()
				if err != nil {
					t.Fatalf("file %d at tar offset %d: %v", idx, want.off, err)
				}
				if hdr.Name != want.name {
					t.Fatalf("first entry at tar offset %d is %q, want %q", want.off, hdr.Name, want.name)
				}
				data, err := io.ReadAll(tr)
				if err != nil || !bytes.Equal(data, want.data) {
					t.Fatalf("content of %s: %d bytes, err %v", want.name, len(data), err)
				}
				rc.Close()
				// Only the frames holding the entry (+ up to 2 KiB of pax
				// headers and padding) may have been read.
				var limit int64
				for _, f := range frames {
					if f.TarOffset+f.TarSize > want.off && f.TarOffset < want.off+int64(len(want.data))+2048 {
						limit += f.Size
					}
				}
				if got := cr.n.Load(); got > limit || got*4 > int64(len(b.payload)) {
					t.Fatalf("read %d payload bytes for file %d, limit %d (payload %d)", got, idx, limit, len(b.payload))
				}
			}
		})
	}
}

func TestReaderAtRejects(t *testing.T) {
	b := buildImage(t, CompZstd, testFiles(60, 3))
	fr := b.sum.Frames
	r := bytes.NewReader(b.payload)
	last := fr[len(fr)-1]
	end := last.TarOffset + last.TarSize
	gap := append([]Frame{}, fr...)
	gap[3].TarOffset++
	lying := append([]Frame{}, fr...)
	lying[2].TarSize--
	lying[3].TarOffset--
	for i := 4; i < len(lying); i++ {
		lying[i].TarOffset--
	}
	tests := []struct {
		name   string
		comp   Comp
		frames []Frame
		off    int64
		want   string
	}{
		{"past end", CompZstd, fr, end, "outside the frames"},
		{"negative", CompZstd, fr, -1, "outside the frames"},
		{"empty list", CompZstd, nil, 0, "empty frame list"},
		{"gap", CompZstd, gap, 0, "not contiguous"},
		{"bad comp", "xz", fr, 0, "unknown compression"},
		{"none sizes", CompNone, fr, 0, "impossible sizes"},
	}
	for _, tc := range tests {
		_, err := NewReaderAt(r, tc.comp, tc.frames, tc.off)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
	// A frame list that does not match the payload is caught while reading.
	rc, err := NewReaderAt(r, CompZstd, lying, lying[2].TarOffset)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(rc); err == nil || !strings.Contains(err.Error(), "does not match the payload") {
		t.Fatalf("reading with a wrong frame list: %v", err)
	}
}

func TestVerifyPayload(t *testing.T) {
	for _, comp := range []Comp{CompZstd, CompGzip, CompNone} {
		b := buildImage(t, comp, testFiles(40, 4))
		if err := VerifyPayload(bytes.NewReader(b.payload), b.hdr); err != nil {
			t.Fatalf("%s: good payload: %v", comp, err)
		}
		flipped := append([]byte{}, b.payload...)
		flipped[len(flipped)/2] ^= 0x10
		if err := VerifyPayload(bytes.NewReader(flipped), b.hdr); err == nil || !strings.Contains(err.Error(), "does not match") {
			t.Fatalf("%s: flipped byte: %v", comp, err)
		}
		if err := VerifyPayload(bytes.NewReader(b.payload[:len(b.payload)-1]), b.hdr); err == nil || !strings.Contains(err.Error(), "truncated") {
			t.Fatalf("%s: truncated: %v", comp, err)
		}
		if err := VerifyPayload(io.MultiReader(bytes.NewReader(b.payload), strings.NewReader("x")), b.hdr); err == nil || !strings.Contains(err.Error(), "longer") {
			t.Fatalf("%s: trailing byte: %v", comp, err)
		}
		h := *b.hdr
		h.SHA256 = ""
		if err := VerifyPayload(bytes.NewReader(b.payload), &h); err == nil || !strings.Contains(err.Error(), "no sha256") {
			t.Fatalf("%s: unknown sha: %v", comp, err)
		}
	}
}

// writePayload writes data in chunks of chunk bytes and returns the payload.
func writePayload(t *testing.T, opt WriterOptions, data []byte, chunk int) ([]byte, Summary) {
	t.Helper()
	var out bytes.Buffer
	pw, err := NewPayloadWriter(&out, opt)
	if err != nil {
		t.Fatal(err)
	}
	for len(data) > 0 {
		k := min(chunk, len(data))
		n, err := pw.Write(data[:k])
		if err != nil || n != k {
			t.Fatalf("Write: %d, %v", n, err)
		}
		data = data[k:]
	}
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := pw.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := pw.Write([]byte("x")); err == nil {
		t.Fatal("Write after Close succeeded")
	}
	if pw.nJobs > 2*max(opt.Concurrency, 1) {
		t.Fatalf("%d frames were in memory, the bound is %d", pw.nJobs, 2*opt.Concurrency)
	}
	return out.Bytes(), pw.Sum()
}

func TestWriterChunkingAndFrames(t *testing.T) {
	data := make([]byte, 5*MinFrameSize*7+123)
	rand.New(rand.NewSource(5)).Read(data[:len(data)/2])
	for _, comp := range []Comp{CompZstd, CompGzip, CompNone} {
		opt := WriterOptions{Comp: comp, FrameSize: MinFrameSize * 7, Concurrency: 3, Level: 1}
		ref, refSum := writePayload(t, opt, data, len(data))
		for _, chunk := range []int{1, 7, MinFrameSize * 7, 10000} {
			got, sum := writePayload(t, opt, data, chunk)
			if !bytes.Equal(got, ref) || !reflect.DeepEqual(sum, refSum) {
				t.Fatalf("%s: chunk %d gives a different payload", comp, chunk)
			}
		}
		if len(refSum.Frames) != 6 || refSum.Frames[5].TarSize != 123 {
			t.Fatalf("%s: frames %+v, want 5 full and one of 123 bytes", comp, refSum.Frames)
		}
		// Exact multiple: no empty trailing frame.
		_, sum := writePayload(t, opt, data[:MinFrameSize*7*2], 999)
		if len(sum.Frames) != 2 {
			t.Fatalf("%s: %d frames for exactly 2 frames of input", comp, len(sum.Frames))
		}
		rc, err := NewStreamReader(bytes.NewReader(ref), comp)
		if err != nil {
			t.Fatal(err)
		}
		back, err := io.ReadAll(rc)
		if err != nil || !bytes.Equal(back, data) {
			t.Fatalf("%s: stream read back %d bytes, err %v", comp, len(back), err)
		}
	}
}

func TestWriterEmptyInput(t *testing.T) {
	needTools(t, "bash", "zstd", "gzip")
	for _, comp := range []Comp{CompZstd, CompGzip, CompNone} {
		out, sum := writePayload(t, WriterOptions{Comp: comp, Concurrency: 1}, nil, 1)
		wantFrames := 1
		if comp == CompNone {
			wantFrames = 0
		}
		if len(sum.Frames) != wantFrames || sum.OriginalSize != 0 || sum.PayloadSize != int64(len(out)) {
			t.Fatalf("%s: empty input gave %+v", comp, sum)
		}
		file := filepath.Join(t.TempDir(), "p")
		os.WriteFile(file, out, 0o600)
		switch comp {
		case CompZstd:
			if got := run(t, "/", "zstd -dc '"+file+"'"); len(got) != 0 {
				t.Fatalf("zstd -dc of an empty payload gave %d bytes", len(got))
			}
			if fr, err := ReadSeekTable(bytes.NewReader(out), int64(len(out))); err != nil || len(fr) != 1 {
				t.Fatalf("seek table of empty payload: %v %v", fr, err)
			}
		case CompGzip:
			run(t, "/", "gzip -dc '"+file+"'")
		}
	}
}

// failWriter fails after limit bytes, slowly.
type failWriter struct{ n, limit int }

func (f *failWriter) Write(b []byte) (int, error) {
	time.Sleep(time.Millisecond)
	if f.n+len(b) > f.limit {
		return 0, errors.New("disk full")
	}
	f.n += len(b)
	return len(b), nil
}

func TestWriterPropagatesWriteError(t *testing.T) {
	pw, err := NewPayloadWriter(&failWriter{limit: 3000}, WriterOptions{Comp: CompNone, FrameSize: 1024, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 1<<20)
	var werr error
	for i := 0; i < 100 && werr == nil; i++ {
		_, werr = pw.Write(data[:10000])
	}
	cerr := pw.Close()
	for _, err := range []error{werr, cerr} {
		if err == nil || !strings.Contains(err.Error(), "disk full") || !strings.Contains(err.Error(), "writing payload frame 2") {
			t.Fatalf("Write/Close errors %v / %v, want the disk full error at frame 2", werr, cerr)
		}
	}
	if s := pw.Sum(); s.SHA256 != "" {
		t.Fatal("Sum of a failed writer is not empty")
	}
}

func TestWriterOptionErrors(t *testing.T) {
	tests := []struct {
		opt  WriterOptions
		want string
	}{
		{WriterOptions{Comp: "xz"}, "unknown compression"},
		{WriterOptions{FrameSize: 100}, "frame size 100"},
		{WriterOptions{FrameSize: MaxFrameSize + 1}, "frame size"},
		{WriterOptions{Level: 20}, "zstd level 20"},
		{WriterOptions{Comp: CompGzip, Level: 10}, "gzip level 10"},
		{WriterOptions{Concurrency: -1}, "concurrency"},
	}
	for _, tc := range tests {
		_, err := NewPayloadWriter(io.Discard, tc.opt)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.opt, err, tc.want)
		}
	}
}

// BenchmarkPayloadWriter: zstd level 1, 1 MiB frames, half compressible
// text, half random data.
func BenchmarkPayloadWriter(b *testing.B) {
	const size = 32 << 20
	data := make([]byte, size)
	rng := rand.New(rand.NewSource(1))
	for off := 0; off < size; off += 256 << 10 {
		chunk := data[off:min(off+256<<10, size)]
		if (off/(256<<10))%2 == 0 {
			rng.Read(chunk)
		} else {
			for i := range chunk {
				chunk[i] = "backup tape frame holding\n"[i%26]
			}
		}
	}
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		pw, err := NewPayloadWriter(io.Discard, WriterOptions{Comp: CompZstd, Level: 1, FrameSize: 1 << 20})
		if err != nil {
			b.Fatal(err)
		}
		for off := 0; off < size; off += 128 << 10 {
			pw.Write(data[off : off+128<<10])
		}
		if err := pw.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
