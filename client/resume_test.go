package client

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/gob"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/tapir-backup/tapir/wire"
)

// resumeFixture is one dump with its resume state, kept in memory so
// that every resume starts from the same state.
type resumeFixture struct {
	root, stateDir, token string
	req                   wire.Request
	opt                   DumpOptions
	payload               []byte
	records               []wire.IndexRecord
	listings              []string
	frames                int
	walk, checkpoints     []byte
	state                 []byte // the pending incremental state
	files                 int64
}

const resumeFrame = 8 << 10 // small frames: many boundaries, headers cut by them

func resumeTreeForTest(t *testing.T) string {
	root := t.TempDir()
	makeEveryKind(t, root)
	for i := range 40 {
		p := filepath.Join(root, "many", fmt.Sprintf("d%d", i%5), fmt.Sprintf("f%02d.txt", i))
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, bytes.Repeat([]byte(fmt.Sprintf("file %d ", i)), 50+i*40), 0o644))
	}
	must(t, os.WriteFile(filepath.Join(root, "big.bin"), randomBytes(100<<10), 0o644))
	must(t, os.Link(filepath.Join(root, "big.bin"), filepath.Join(root, "many", "big-link")))
	return root
}

func dumpWithJournal(t *testing.T, root string, listings bool) *resumeFixture {
	return dumpLevelWithJournal(t, root, listings, 0, t.TempDir())
}

func dumpLevelWithJournal(t *testing.T, root string, listings bool, level int, stateDir string) *resumeFixture {
	t.Helper()
	f := &resumeFixture{root: root, stateDir: stateDir, token: "0123456789abcdef0123456789abcdef"}
	f.req = wire.Request{Op: wire.OpDump, DLE: root, Level: level, Datestamp: "20260101000000", Compress: "zst", FrameSize: resumeFrame, Token: f.token, Listings: listings}
	f.opt = DumpOptions{Level: level, Comp: "zst", FrameSize: resumeFrame, Datestamp: f.req.Datestamp, State: &StateStore{Dir: f.stateDir}}
	jr, err := openJournal(resumeDir(f.stateDir, f.token), f.req, nil)
	if err != nil {
		t.Fatal(err)
	}
	opt := f.opt
	opt.journal = jr
	var out bytes.Buffer
	res, err := Dump(context.Background(), root, opt, f.sink(&out, &f.records, &f.listings, nil))
	jr.close()
	if err != nil || jr.failed != nil {
		t.Fatal(err, jr.failed)
	}
	f.payload, f.frames, f.files = out.Bytes(), len(res.Summary.Frames), res.Files
	dir := resumeDir(f.stateDir, f.token)
	f.walk, _ = os.ReadFile(filepath.Join(dir, "walk"))
	f.checkpoints, _ = os.ReadFile(filepath.Join(dir, "frames"))
	f.state = f.pendingState(t)
	return f
}

func (f *resumeFixture) sink(out *bytes.Buffer, recs *[]wire.IndexRecord, lst *[]string, warns *[]string) Sink {
	s := Sink{Payload: out, Index: func(r wire.IndexRecord) error { *recs = append(*recs, r); return nil }}
	if f.req.Listings {
		s.Listing = func(dir, dd string) error { *lst = append(*lst, dir+"="+dd); return nil }
	}
	s.Warn = func(w string) {
		if warns != nil {
			*warns = append(*warns, w)
		}
	}
	return s
}

func (f *resumeFixture) pendingState(t *testing.T) []byte {
	ms, _ := filepath.Glob(filepath.Join(f.stateDir, "*", fmt.Sprintf("level-%d.state.new-*", f.req.Level)))
	if len(ms) != 1 {
		t.Fatalf("pending states: %v", ms)
	}
	fh, err := os.Open(ms[0])
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var st State
	if err := gob.NewDecoder(fh).Decode(&st); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	keys := make([]string, 0, len(st.Files))
	for k := range st.Files {
		keys = append(keys, k)
	}
	// a canonical text of the state
	sortStrings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%q %+v\n", k, st.Files[k])
	}
	return b.Bytes()
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// restore puts the saved resume state back, as it was after the dump.
func (f *resumeFixture) restore(t *testing.T) {
	dir := resumeDir(f.stateDir, f.token)
	must(t, os.MkdirAll(dir, 0o700))
	must(t, os.WriteFile(filepath.Join(dir, "walk"), f.walk, 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "frames"), f.checkpoints, 0o600))
}

// resume continues the dump after k frames, the server holding idx index
// records and lst listing records.
func (f *resumeFixture) resume(t *testing.T, k int, idx, lst int64) (rest []byte, recs []wire.IndexRecord, lsts, warns []string, res Result, err error) {
	t.Helper()
	f.restore(t)
	req := f.req
	rp0, err := loadResumeFrames(f, k)
	if err != nil {
		t.Fatal(err)
	}
	req.Resume = &wire.Resume{Frames: int64(k), PayloadOffset: rp0, Index: idx, Listings: lst}
	rp, err := loadResume(f.stateDir, req)
	if err != nil {
		return nil, nil, nil, nil, Result{}, err
	}
	jr, err := openJournal(resumeDir(f.stateDir, f.token), req, rp)
	if err != nil {
		t.Fatal(err)
	}
	defer jr.close()
	opt := f.opt
	opt.journal, opt.resume = jr, rp
	var out bytes.Buffer
	res, err = Dump(context.Background(), f.root, opt, f.sink(&out, &recs, &lsts, &warns))
	return out.Bytes(), recs, lsts, warns, res, err
}

// loadResumeFrames is the payload offset after k frames.
func loadResumeFrames(f *resumeFixture, k int) (int64, error) {
	var end int64
	n := 0
	fh, err := os.Open(filepath.Join(resumeDir(f.stateDir, f.token), "frames"))
	if err != nil {
		return 0, err
	}
	defer fh.Close()
	err = readRecords(fh, -1, func(b []byte, _ int64) error {
		if n < k {
			d := jdec{b: b}
			d.uvarint()
			d.uvarint()
			d.uvarint()
			off, size := d.uvarint(), d.uvarint()
			end = int64(off + size)
		}
		n++
		return nil
	})
	return end, err
}

// A dump resumed after any of its frames, with the server holding any
// number of the index records, sends exactly the rest of the payload
// (byte for byte what the whole dump sent), the index records the server
// lacks, and ends with the same incremental state.
func TestResumeAfterEveryFrame(t *testing.T) {
	for _, level := range []int{0, 1} {
		for _, listings := range []bool{false, true} {
			t.Run(fmt.Sprintf("level %d listings %v", level, listings), func(t *testing.T) { resumeAfterEveryFrame(t, level, listings) })
		}
	}
}

func resumeAfterEveryFrame(t *testing.T, level int, listings bool) {
	{
		root := resumeTreeForTest(t)
		stateDir := t.TempDir()
		if level > 0 {
			// A full first, its state current; then changes for the
			// incremental: some files new, some changed, most not.
			st := &StateStore{Dir: stateDir}
			if _, err := Dump(context.Background(), root, DumpOptions{Comp: "zst", Datestamp: "20251231000000", State: st}, Sink{Payload: io.Discard}); err != nil {
				t.Fatal(err)
			}
			must(t, st.Promote(root, 0, "20251231000000"))
			later := time.Now().Add(time.Hour)
			for i := 0; i < 40; i += 3 {
				p := filepath.Join(root, "many", fmt.Sprintf("d%d", i%5), fmt.Sprintf("f%02d.txt", i))
				must(t, os.WriteFile(p, bytes.Repeat([]byte("changed "), 300+i*50), 0o644))
				os.Chtimes(p, later, later)
			}
			must(t, os.WriteFile(filepath.Join(root, "many", "new.bin"), randomBytes(60<<10), 0o644))
		}
		f := dumpLevelWithJournal(t, root, listings, level, stateDir)
		if f.frames < 8 {
			t.Fatalf("only %d frames", f.frames)
		}
		for k := 1; k <= f.frames; k++ {
			off, _ := loadResumeFrames(f, k)
			R := int64(k) * resumeFrame
			// the records whose entry starts before R: the server may hold
			// any prefix of them
			before := 0
			for _, r := range f.records {
				if r.TarOffset < R {
					before++
				}
			}
			idx := int64(before * k % (before + 1))
			lst := int64(k % 3)
			rest, recs, lsts, warns, res, err := f.resume(t, k, idx, lst)
			if err != nil {
				t.Fatalf("resume after frame %d of %d: %v", k, f.frames, err)
			}
			if !bytes.Equal(append(bytes.Clone(f.payload[:off]), rest...), f.payload) {
				t.Fatalf("resume after frame %d: the payload differs from the whole dump's", k)
			}
			if !reflect.DeepEqual(recs, f.records[idx:]) && !(len(recs) == 0 && int(idx) == len(f.records)) {
				t.Fatalf("resume after frame %d (server holds %d records): sent %d records, want %d", k, idx, len(recs), len(f.records)-int(idx))
			}
			if res.Files != f.files {
				t.Fatalf("resume after frame %d: %d files, want %d", k, res.Files, f.files)
			}
			// The listings sent: those the server lacks, in order (a
			// suffix of the whole dump's, all but at most the first lst).
			if len(lsts) > len(f.listings) || len(lsts) < len(f.listings)-int(lst) || !reflect.DeepEqual(lsts, f.listings[len(f.listings)-len(lsts):]) && len(lsts) > 0 {
				t.Fatalf("resume after frame %d (server holds %d listings): sent %d of %d", k, lst, len(lsts), len(f.listings))
			}
			if len(warns) > 0 {
				t.Fatalf("resume after frame %d: warnings %v", k, warns)
			}
			if got := f.pendingState(t); !bytes.Equal(got, f.state) {
				t.Fatalf("resume after frame %d: the next incremental state differs:\n%s\nwant\n%s", k, got, f.state)
			}
		}
	}
}

// A file changed between the cut and the resume, in the entry the resume
// point cuts, is named (STRANGE) and left out of the next incremental
// state; the image is still one valid tar stream.
func TestResumeFileChangedSinceCut(t *testing.T) {
	root := resumeTreeForTest(t)
	f := dumpWithJournal(t, root, false)
	// the frame that cuts big.bin's data
	var big wire.IndexRecord
	for _, r := range f.records {
		if r.Path == "big.bin" {
			big = r
		}
	}
	k := int((big.TarOffset+2048)/resumeFrame) + 1 // R inside its data
	must(t, os.WriteFile(filepath.Join(root, "big.bin"), randomBytes(90<<10), 0o644))
	later := time.Now().Add(time.Hour)
	os.Chtimes(filepath.Join(root, "big.bin"), later, later)
	off, _ := loadResumeFrames(f, k)
	rest, _, _, warns, _, err := f.resume(t, k, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) == 0 || !strings.Contains(strings.Join(warns, "\n"), "big.bin: changed between the cut and the resume") {
		t.Fatalf("warnings: %v", warns)
	}
	img := append(bytes.Clone(f.payload[:off]), rest...)
	dec, err := zstd.NewReader(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	tr := tar.NewReader(dec)
	n := 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the resumed image is not a valid tar stream after %d entries: %v", n, err)
		}
		io.Copy(io.Discard, tr)
		if h.Name == "./big.bin" && h.Size != 100<<10 {
			t.Fatalf("big.bin's header changed: size %d", h.Size)
		}
		n++
	}
	if n != int(f.files)+1 {
		t.Fatalf("%d entries, want %d", n, f.files+1)
	}
	if strings.Contains(string(f.pendingState(t)), `"big.bin"`) {
		t.Fatal("the changed file stays in the next incremental state")
	}
}

// What the agent refuses to resume, each with a reason for the report:
// an unknown token, another request, a damaged saved walk, checkpoints
// that do not reach what the server holds, a payload offset elsewhere.
func TestResumeRefusals(t *testing.T) {
	f := dumpWithJournal(t, resumeTreeForTest(t), false)
	off, _ := loadResumeFrames(f, 5)
	good := f.req
	good.Resume = &wire.Resume{Frames: 5, PayloadOffset: off}
	try := func(name string, req wire.Request, prepare func(dir string), want string) {
		t.Helper()
		f.restore(t)
		if prepare != nil {
			prepare(resumeDir(f.stateDir, f.token))
		}
		_, err := loadResume(f.stateDir, req)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "starts it over") {
			t.Errorf("%s: %v, want %q", name, err, want)
		}
	}
	unknown := good
	unknown.Token = "ffffffffffffffffffffffffffffffff"
	try("unknown token", unknown, nil, "no such dump")
	other := good
	other.Level = 1
	try("other request", other, nil, "differs")
	try("damaged walk", good, func(dir string) {
		b, _ := os.ReadFile(filepath.Join(dir, "walk"))
		b[20] ^= 0xff // inside the first record, which every resume reads
		os.WriteFile(filepath.Join(dir, "walk"), b, 0o600)
	}, "saved walk")
	try("short walk", good, func(dir string) {
		os.Truncate(filepath.Join(dir, "walk"), 100)
	}, "saved walk")
	far := good
	far.Resume = &wire.Resume{Frames: int64(f.frames) + 3, PayloadOffset: off}
	try("more frames than saved", far, nil, "checkpoints of")
	elsewhere := good
	elsewhere.Resume = &wire.Resume{Frames: 5, PayloadOffset: off + 1}
	try("payload elsewhere", elsewhere, nil, "payload bytes")
	zero := good
	zero.Resume = &wire.Resume{Frames: 0}
	try("nothing held", zero, nil, "nothing to continue")
	try("damaged request", good, func(dir string) {
		os.WriteFile(filepath.Join(dir, "request.json"), []byte("{"), 0o600)
	}, "damaged")
}

// A disk that fills up while the checkpoints are saved turns resume off
// for the dump (its state is removed) and the dump goes on.
func TestResumeCheckpointDiskFull(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	root := resumeTreeForTest(t)
	stateDir := t.TempDir()
	req := wire.Request{Op: wire.OpDump, DLE: root, Datestamp: "20260101000000", Compress: "zst", FrameSize: resumeFrame, Token: "00000000000000000000000000000000"}
	jr, err := openJournal(resumeDir(stateDir, req.Token), req, nil)
	if err != nil {
		t.Fatal(err)
	}
	jr.frames.Close()
	if jr.frames, err = os.OpenFile("/dev/full", os.O_WRONLY, 0); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	_, err = Dump(context.Background(), root, DumpOptions{Comp: "zst", FrameSize: resumeFrame, journal: jr}, Sink{Payload: &out})
	if err != nil {
		t.Fatalf("the dump failed with its checkpoints: %v", err)
	}
	if jr.failed == nil || !strings.Contains(jr.failed.Error(), "checkpoint") {
		t.Fatalf("failed = %v", jr.failed)
	}
	if _, err := os.Stat(resumeDir(stateDir, req.Token)); !os.IsNotExist(err) {
		t.Fatalf("the resume state stays after it failed: %v", err)
	}
}

// FuzzReadReplay: whatever a saved walk holds (a damaged or hostile
// file on the agent's disk), reading it gives a replay or an error, never
// a panic or an allocation beyond the file.
func FuzzReadReplay(f *testing.F) {
	var b bytes.Buffer
	frameRecord(&b, listRecord(nil, "", true, []child{{name: "a", rel: "a", store: true}}))
	frameRecord(&b, entryRecord(nil, "", &jentry{kind: recEntry, off: 0, hdrLen: 512, flags: entListed}))
	frameRecord(&b, entryRecord(nil, "a", &jentry{kind: recEntry, off: 512, hdrLen: 512, dataLen: 10, flags: entFile,
		rec: &wire.IndexRecord{Path: "a", Type: '0', Size: 10, TarOffset: 512}}))
	frameRecord(&b, skipRecord(nil, "b", 1536))
	frameRecord(&b, offRecord(nil, recForget, "a", 1536))
	f.Add(b.Bytes(), int64(1024))
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 0, 'Z'}, int64(0))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}, int64(10))
	f.Fuzz(func(t *testing.T, data []byte, R int64) {
		readReplay(bytes.NewReader(data), int64(len(data)), R)
		readRecords(bytes.NewReader(data), -1, func([]byte, int64) error { return nil })
	})
}

// BenchmarkDumpJournal: what keeping the resume state costs a dump of
// many small files (the worst case: a journal record per file, a listing
// record per directory, a checkpoint per frame).
func BenchmarkDumpJournal(b *testing.B) {
	root := b.TempDir()
	for i := range 5000 {
		p := filepath.Join(root, fmt.Sprintf("d%02d", i%50), fmt.Sprintf("f%04d", i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, bytes.Repeat([]byte{byte(i)}, 1024+i%3000), 0o644)
	}
	for _, journal := range []bool{false, true} {
		b.Run(fmt.Sprintf("journal=%v", journal), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				opt := DumpOptions{Comp: "zst", CompressLevel: 1}
				if journal {
					// Its one fsync (request.json) is not the walk's cost.
					b.StopTimer()
					req := wire.Request{Op: wire.OpDump, DLE: root, Token: fmt.Sprintf("%032x", i)}
					jr, err := openJournal(resumeDir(b.TempDir(), req.Token), req, nil)
					if err != nil {
						b.Fatal(err)
					}
					opt.journal = jr
					defer jr.close()
					b.StartTimer()
				}
				if _, err := Dump(context.Background(), root, opt, Sink{Payload: io.Discard}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A directory that vanished between the cut and the resume: what the
// image holds of it stays, the rest of it is named as not dumped, and the
// image is one valid tar stream.
func TestResumeDirectoryVanished(t *testing.T) {
	root := resumeTreeForTest(t)
	f := dumpWithJournal(t, root, false)
	var first, last int64 = -1, -1
	for _, r := range f.records {
		if strings.HasPrefix(r.Path, "many/d3/") {
			if first < 0 {
				first = r.TarOffset
			}
			last = r.TarOffset
		}
	}
	k := int((first+last)/2/resumeFrame) + 1
	if R := int64(k) * resumeFrame; R <= first || R > last {
		t.Fatalf("no frame boundary inside many/d3 (%d..%d)", first, last)
	}
	must(t, os.RemoveAll(filepath.Join(root, "many", "d3")))
	off, _ := loadResumeFrames(f, k)
	rest, _, _, warns, _, err := f.resume(t, k, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("warnings: %q", warns)
	if !strings.Contains(strings.Join(warns, "\n"), "d3") {
		t.Fatalf("warnings: %v", warns)
	}
	dec, err := zstd.NewReader(bytes.NewReader(append(bytes.Clone(f.payload[:off]), rest...)))
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	tr := tar.NewReader(dec)
	for {
		_, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the resumed image is not a valid tar stream: %v", err)
		}
		io.Copy(io.Discard, tr)
	}
}
