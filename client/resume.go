package client

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/wire"
)

// The resume state of a dump (docs/format/agent-protocol.md, "Resuming a
// cut dump"). A dump request with a token keeps, for the dump's lifetime,
// under <state-dir>/resume/<token>/:
//
//   - request.json: the request, so that a resume asks for the same dump;
//   - walk: the journal of the walk, one record per decision in walk
//     order (a directory's listing with every child's stat and whether it
//     is stored; an entry written, with its tar offset, header length,
//     data length, identity and index record; an entry skipped), from
//     which a resumed walk rebuilds where it was without reading again
//     what the image already holds;
//   - frames: one checkpoint per frame, saved before the frame is sent:
//     the frame record, the SHA-256 state of the payload at its end and
//     the length of the walk journal that covers it.
//
// Records are framed as length (uint32 BE), CRC-32C (uint32 BE), bytes. A
// torn last record (an agent killed while writing) ends the file; a
// checkpoint names the journal length it needs, so a journal shorter than
// that, or a bad record inside it, refuses the resume (the server then
// starts the dump over). The directory goes when the dump is over, when
// a new dump of the same DLE starts, or after ResumeKeep.

// FeatureResume is the feature of an agent that keeps the resume state of
// a dump sent with a token and continues it when asked (wire.Resume).
const FeatureResume = "resume"

// FeatureResumeAge is the feature of an agent that also resumes a dump it
// encrypts (wire.Checkpoint, resume_crypt.go).
const FeatureResumeAge = "resume-age"

// ResumeKeep is how long the resume state of a dump that was neither
// finished nor resumed stays on the agent's disk.
const ResumeKeep = 48 * time.Hour

// maxJournalRecord bounds one record of the walk journal or the
// checkpoints when read back: a listing of a huge directory is the
// largest (its children's names and stats).
const maxJournalRecord = 1 << 30

var tokenRE = regexp.MustCompile(`^[0-9a-f]{16,64}$`)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// resumeDir is the directory of token's resume state.
func resumeDir(stateDir, token string) string {
	return filepath.Join(stateDir, "resume", token)
}

// resumeRequestKey is the part of a request that a resume must repeat.
func resumeRequestKey(req wire.Request) wire.Request {
	req.Token, req.Resume, req.SHA256 = "", nil, ""
	return req
}

// journal is the open resume state of a dump being written: the walk
// journal (appended by the walker's goroutine) and the checkpoints
// (appended by the payload writer's goroutine), one mutex for both so
// that a checkpoint names a journal length that is on disk.
type journal struct {
	dir string

	mu     sync.Mutex
	walk   *os.File
	wbuf   *bufio.Writer
	wlen   int64 // bytes of walk records appended (buffered or not)
	frames *os.File
	cstate *os.File // age-state, of a client-side encrypted dump
	cslots int64    // its slots (cryptSlots)
	failed error    // the first write error: resume is off for this dump
	onFail func(error)
	rec    []byte
	// afterCheckpoint, when set, is called (without the lock) after the
	// checkpoint of a frame is saved: a client-side encrypted dump
	// learns there where the frame ends in its plaintext.
	afterCheckpoint func(image.Frame)
}

// openJournal creates (fresh) or reopens (resumed, with the journal cut
// to walkLen and the checkpoints to nFrames records) the resume state.
func openJournal(dir string, req wire.Request, resumed *resumePoint) (*journal, error) {
	j := &journal{dir: dir, cslots: cryptSlots(req.FrameSize)}
	if resumed == nil {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		b, err := json.Marshal(resumeRequestKey(req))
		if err != nil {
			return nil, err
		}
		// Written aside and renamed: another dump's removeStaleResume
		// sees request.json either whole or absent (being created),
		// never empty or half written, which it would take for junk.
		tmp := filepath.Join(dir, "request.json.tmp")
		if err := writeFileSync(tmp, b); err != nil {
			return nil, err
		}
		if err := os.Rename(tmp, filepath.Join(dir, "request.json")); err != nil {
			return nil, err
		}
	}
	var err error
	if j.walk, err = os.OpenFile(filepath.Join(dir, "walk"), os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		return nil, err
	}
	if j.frames, err = os.OpenFile(filepath.Join(dir, "frames"), os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		j.walk.Close()
		return nil, err
	}
	var wl, fl int64
	if resumed != nil {
		wl, fl = resumed.walkLen, resumed.framesLen
	}
	for _, c := range []struct {
		f *os.File
		n int64
	}{{j.walk, wl}, {j.frames, fl}} {
		if err := c.f.Truncate(c.n); err == nil {
			_, err = c.f.Seek(c.n, io.SeekStart)
		}
		if err != nil {
			j.close()
			return nil, err
		}
	}
	j.wlen = wl
	j.wbuf = bufio.NewWriterSize(j.walk, 256<<10)
	return j, nil
}

func writeFileSync(p string, b []byte) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (j *journal) close() {
	if j.walk != nil {
		j.walk.Close()
	}
	if j.frames != nil {
		j.frames.Close()
	}
	if j.cstate != nil {
		j.cstate.Close()
		j.cstate = nil
	}
}

// fail turns resume off for this dump: the state is removed, so that a
// resume request gets a clear "unknown" and the server starts over.
func (j *journal) fail(err error) {
	if j.failed != nil {
		return
	}
	j.failed = err
	j.close()
	os.RemoveAll(j.dir)
	if j.onFail != nil {
		j.onFail(err)
	}
}

// frameRecord appends one framed record to w.
func frameRecord(w io.Writer, b []byte) (int, error) {
	var h [8]byte
	binary.BigEndian.PutUint32(h[:4], uint32(len(b)))
	binary.BigEndian.PutUint32(h[4:], crc32.Checksum(b, castagnoli))
	n, err := w.Write(h[:])
	if err != nil {
		return n, err
	}
	m, err := w.Write(b)
	return n + m, err
}

// add appends a walk record built by fn.
func (j *journal) add(fn func([]byte) []byte) {
	if j == nil {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.failed != nil {
		return
	}
	j.rec = fn(j.rec[:0])
	n, err := frameRecord(j.wbuf, j.rec)
	j.wlen += int64(n)
	if err != nil {
		j.fail(fmt.Errorf("saving the walk journal in %s: %w", j.dir, err))
	}
}

// checkpoint saves the checkpoint of frame f (called before f is sent).
func (j *journal) checkpoint(f image.Frame, sum []byte) {
	if j == nil {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.failed != nil {
		return
	}
	err := j.wbuf.Flush()
	if err == nil {
		var b []byte
		b = binary.AppendUvarint(b, uint64(f.Index))
		b = binary.AppendUvarint(b, uint64(f.TarOffset))
		b = binary.AppendUvarint(b, uint64(f.TarSize))
		b = binary.AppendUvarint(b, uint64(f.Offset))
		b = binary.AppendUvarint(b, uint64(f.Size))
		b = binary.AppendUvarint(b, uint64(j.wlen))
		b = binary.AppendUvarint(b, uint64(len(sum)))
		b = append(b, sum...)
		var buf []byte
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(b)))
		buf = binary.BigEndian.AppendUint32(buf, crc32.Checksum(b, castagnoli))
		buf = append(buf, b...)
		_, err = j.frames.Write(buf) // one write: a kill tears at most this record
	}
	if err != nil {
		j.fail(fmt.Errorf("saving the checkpoint of frame %d in %s: %w", f.Index, j.dir, err))
	}
	if j.afterCheckpoint != nil && j.failed == nil {
		after := j.afterCheckpoint
		j.mu.Unlock()
		after(f)
		j.mu.Lock()
	}
}

// finish flushes the journal (end of the walk).
func (j *journal) flush() {
	if j == nil {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.failed == nil {
		if err := j.wbuf.Flush(); err != nil {
			j.fail(fmt.Errorf("saving the walk journal in %s: %w", j.dir, err))
		}
	}
}

// readRecords calls fn for every whole record of the first limit bytes
// of f (limit < 0: all). A torn last record ends the file quietly when
// limit < 0; within limit, anything short or damaged is an error.
func readRecords(f io.Reader, limit int64, fn func(b []byte, end int64) error) error {
	var r io.Reader = f
	if limit >= 0 {
		r = io.LimitReader(f, limit)
	}
	br := bufio.NewReaderSize(r, 256<<10)
	var off int64
	var h [8]byte
	var b []byte
	for {
		if _, err := io.ReadFull(br, h[:]); err != nil {
			if err == io.EOF || (err == io.ErrUnexpectedEOF && limit < 0) {
				if limit >= 0 && off < limit {
					return fmt.Errorf("ends at %d bytes, %d expected", off, limit)
				}
				return nil
			}
			return fmt.Errorf("record at %d: %v", off, err)
		}
		n := binary.BigEndian.Uint32(h[:4])
		if n > maxJournalRecord {
			return fmt.Errorf("record at %d announces %d bytes", off, n)
		}
		if cap(b) < int(n) {
			b = make([]byte, n)
		}
		b = b[:n]
		if _, err := io.ReadFull(br, b); err != nil {
			if limit < 0 && (err == io.ErrUnexpectedEOF || err == io.EOF) {
				return nil
			}
			return fmt.Errorf("record at %d: %v", off, err)
		}
		if crc32.Checksum(b, castagnoli) != binary.BigEndian.Uint32(h[4:]) {
			if limit < 0 {
				return nil // torn by a kill: what came before stands
			}
			return fmt.Errorf("record at %d: checksum mismatch", off)
		}
		off += 8 + int64(n)
		if err := fn(b, off); err != nil {
			return fmt.Errorf("record at %d: %w", off-8-int64(n), err)
		}
	}
}

// resumePoint is where a resumed dump continues: the frames the server
// holds, the payload hash after them, and the walk as it was.
type resumePoint struct {
	frames    []image.Frame
	sum       []byte
	walkLen   int64 // journal bytes that cover the frames
	framesLen int64 // checkpoint bytes of those frames
	tarOff    int64 // R: the first tar byte to send
	index     int64 // index records the server holds
	listings  int64 // listing records the server holds
	replay    *replay
}

// errNoResume marks a resume the agent cannot do: the server starts over.
var errNoResume = errors.New("cannot resume")

// loadResume reads the resume state of req.Token for req.Resume.
func loadResume(stateDir string, req wire.Request) (*resumePoint, error) {
	noResume := func(format string, a ...any) error {
		return fmt.Errorf("%w dump %s of %s: %s; the server starts it over", errNoResume, req.Token, req.DLE, fmt.Sprintf(format, a...))
	}
	if stateDir == "" {
		return nil, noResume("this agent keeps no state (--state-dir)")
	}
	dir := resumeDir(stateDir, req.Token)
	b, err := os.ReadFile(filepath.Join(dir, "request.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, noResume("no such dump on this agent (finished, removed after %s, or its state could not be saved)", ResumeKeep)
	}
	if err != nil {
		return nil, noResume("%v", err)
	}
	var saved wire.Request
	if err := json.Unmarshal(b, &saved); err != nil {
		return nil, noResume("its saved request %s is damaged (%v)", filepath.Join(dir, "request.json"), err)
	}
	if !reflect.DeepEqual(saved, resumeRequestKey(req)) {
		return nil, noResume("the request differs from the one that started it (DLE, level, datestamp, compression, frame size, excludes and encryption must be the same)")
	}
	rs := req.Resume
	if rs.Frames < 1 || rs.PayloadOffset < 0 || rs.Index < 0 || rs.Listings < 0 {
		return nil, noResume("the server holds %d frames: nothing to continue", rs.Frames)
	}
	ff, err := os.Open(filepath.Join(dir, "frames"))
	if err != nil {
		return nil, noResume("%v", err)
	}
	defer ff.Close()
	p := &resumePoint{index: rs.Index, listings: rs.Listings}
	var tar, pay int64
	err = readRecords(ff, -1, func(b []byte, end int64) error {
		if int64(len(p.frames)) >= rs.Frames {
			return nil
		}
		d := jdec{b: b}
		f := image.Frame{Index: int(d.uvarint()), TarOffset: int64(d.uvarint()), TarSize: int64(d.uvarint()), Offset: int64(d.uvarint()), Size: int64(d.uvarint())}
		wl := int64(d.uvarint())
		sum := d.bytes()
		if d.err != nil || f.Index != len(p.frames) || f.TarOffset != tar || f.Offset != pay || f.TarSize <= 0 || f.Size < 0 || wl < 0 {
			return fmt.Errorf("checkpoint %d does not follow the ones before it", len(p.frames))
		}
		tar, pay = f.TarOffset+f.TarSize, f.Offset+f.Size
		p.frames = append(p.frames, f)
		p.sum, p.walkLen, p.framesLen = sum, wl, end
		return nil
	})
	if err != nil {
		return nil, noResume("its checkpoints %s are damaged (%v)", filepath.Join(dir, "frames"), err)
	}
	if int64(len(p.frames)) != rs.Frames {
		return nil, noResume("the server holds %d frames but this agent saved checkpoints of %d", rs.Frames, len(p.frames))
	}
	if pay != rs.PayloadOffset {
		return nil, noResume("the server holds %d payload bytes in %d frames, this agent sent %d in them", rs.PayloadOffset, rs.Frames, pay)
	}
	p.tarOff = tar
	wf, err := os.Open(filepath.Join(dir, "walk"))
	if err != nil {
		return nil, noResume("%v", err)
	}
	defer wf.Close()
	if p.replay, err = readReplay(wf, p.walkLen, tar); err != nil {
		return nil, noResume("its saved walk %s is damaged (%v)", filepath.Join(dir, "walk"), err)
	}
	return p, nil
}

// removeStaleResume removes the resume states of dle other than keep, and
// every one older than ResumeKeep: a new dump of a DLE ends the one
// before it (the server never runs two dumps of one DLE at once).
func removeStaleResume(stateDir, dle, keep string, now time.Time) {
	if stateDir == "" {
		return
	}
	root := filepath.Join(stateDir, "resume")
	ents, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, e := range ents {
		if e.Name() == keep || !tokenRE.MatchString(e.Name()) {
			continue
		}
		dir := filepath.Join(root, e.Name())
		info, err := e.Info()
		if err == nil && now.Sub(info.ModTime()) > ResumeKeep {
			os.RemoveAll(dir)
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, "request.json"))
		var req wire.Request
		switch {
		case errors.Is(err, fs.ErrNotExist), err == nil && json.Unmarshal(b, &req) != nil:
			// Being created by another dump (request.json appears
			// whole, by a rename), or left half made, or junk: gone
			// only when old, never while another dump may own it.
			if info != nil && now.Sub(info.ModTime()) > time.Hour {
				os.RemoveAll(dir)
			}
		case err != nil:
		case req.DLE == dle:
			os.RemoveAll(dir)
		}
	}
}

// Walk journal records.
const (
	recList  = 'L' // a directory's listing
	recEntry = 'E' // an entry written
	recSkip  = 'X' // an entry skipped (vanished, unreadable)
	// recForget: an entry the image holds but the next incremental state
	// must not (it changed between a cut and the resume).
	recForget = 'F'
)

// entry flags in the journal
const (
	entListed  = 1 << iota // a directory with its listing (dumpdir)
	entFile                // a regular file whose data follows the header
	entSparse              // data in GNU sparse 1.0 (extents only)
	entLinkSrc             // the first of a hard-link set: later ones link to it
)

// jentry is an entry of the journal: written (kind recEntry) or skipped.
type jentry struct {
	kind     byte
	off      int64 // tar offset where it starts (or was skipped)
	flags    byte
	hdrLen   int64
	dataLen  int64
	dev, ino uint64
	size     int64
	mtime    int64
	ctime    int64
	mode     uint32 // st_mode of the file as opened
	uid, gid uint32
	hdr      []byte // the header bytes, when they cross a frame boundary
	rec      *wire.IndexRecord
}

func (e *jentry) end() int64 { return e.off + e.hdrLen + roundBlock(e.dataLen) }

func roundBlock(n int64) int64 { return (n + 511) &^ 511 }

// replay is the walk before the resume point, as the journal has it.
type replay struct {
	R        int64              // the first tar byte to send
	listings map[string][]child // directories whose entry is in the image
	listed   map[string]bool
	entries  map[string]*jentry // entries and skips before R (last one wins)
	forgot   map[string]bool    // entries to drop from the next state
}

// readReplay reads the first walkLen bytes of the journal f, keeping what
// lies before tar offset R.
func readReplay(f io.Reader, walkLen, R int64) (*replay, error) {
	rp := &replay{R: R, listings: map[string][]child{}, listed: map[string]bool{}, entries: map[string]*jentry{}, forgot: map[string]bool{}}
	lists := map[string][]child{}
	listedAll := map[string]bool{}
	err := readRecords(f, walkLen, func(b []byte, _ int64) error {
		if len(b) == 0 {
			return errors.New("empty record")
		}
		d := jdec{b: b[1:]}
		switch b[0] {
		case recList:
			rel := d.str()
			listed := d.byte1() != 0
			n := d.uvarint()
			if n > uint64(len(b)) {
				return errors.New("listing count out of range")
			}
			kids := make([]child, 0, n)
			for i := uint64(0); i < n && d.err == nil; i++ {
				var k child
				k.name = d.str()
				k.rel = joinRel(rel, k.name)
				st := &k.st
				st.Dev, st.Ino, st.Nlink = d.uvarint(), d.uvarint(), d.uvarint()
				st.Mode, st.Uid, st.Gid = uint32(d.uvarint()), uint32(d.uvarint()), uint32(d.uvarint())
				st.Rdev = d.uvarint()
				st.Size, st.Blocks = d.varint(), d.varint()
				st.Mtim = unix.NsecToTimespec(d.varint())
				st.Ctim = unix.NsecToTimespec(d.varint())
				k.store = d.byte1() != 0
				kids = append(kids, k)
			}
			if d.err != nil {
				return d.err
			}
			lists[rel], listedAll[rel] = kids, listed
		case recEntry:
			e := &jentry{kind: recEntry}
			rel := d.str()
			e.flags = d.byte1()
			e.off, e.hdrLen, e.dataLen = d.varint(), d.varint(), d.varint()
			e.dev, e.ino = d.uvarint(), d.uvarint()
			e.size, e.mtime, e.ctime = d.varint(), d.varint(), d.varint()
			e.mode, e.uid, e.gid = uint32(d.uvarint()), uint32(d.uvarint()), uint32(d.uvarint())
			e.hdr = d.bytes()
			recb := d.bytes()
			if d.err != nil {
				return d.err
			}
			if e.off < 0 || e.hdrLen < 0 || e.dataLen < 0 || e.off%512 != 0 || int64(len(e.hdr)) > e.hdrLen {
				return fmt.Errorf("entry %q: offsets out of range", rel)
			}
			if len(recb) > 0 {
				err := wire.DecodeIndex(recb, func(r wire.IndexRecord) error { e.rec = &r; return nil })
				if err != nil {
					return err
				}
			}
			if e.off < R {
				rp.entries[rel] = e
			} else {
				delete(rp.entries, rel)
			}
		case recSkip:
			rel := d.str()
			off := d.varint()
			if d.err != nil {
				return d.err
			}
			if off < R {
				rp.entries[rel] = &jentry{kind: recSkip, off: off}
			} else {
				delete(rp.entries, rel)
			}
		case recForget:
			rel := d.str()
			off := d.varint()
			if d.err != nil {
				return d.err
			}
			if off < R {
				rp.forgot[rel] = true
			}
		default:
			return fmt.Errorf("unknown record type %q", b[0])
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if e := rp.entries[""]; e == nil || e.kind != recEntry {
		return nil, errors.New("the DLE root is not in it")
	}
	for rel, kids := range lists {
		if e := rp.entries[rel]; e != nil && e.kind == recEntry {
			rp.listings[rel], rp.listed[rel] = kids, listedAll[rel]
		}
	}
	return rp, nil
}

func joinRel(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// Journal record encoders.

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func listRecord(b []byte, rel string, listed bool, kids []child) []byte {
	b = append(b, recList)
	b = appendStr(b, rel)
	b = append(b, boolByte(listed))
	b = binary.AppendUvarint(b, uint64(len(kids)))
	for i := range kids {
		k := &kids[i]
		st := &k.st
		b = appendStr(b, k.name)
		b = binary.AppendUvarint(b, uint64(st.Dev))
		b = binary.AppendUvarint(b, st.Ino)
		b = binary.AppendUvarint(b, uint64(st.Nlink))
		b = binary.AppendUvarint(b, uint64(st.Mode))
		b = binary.AppendUvarint(b, uint64(st.Uid))
		b = binary.AppendUvarint(b, uint64(st.Gid))
		b = binary.AppendUvarint(b, uint64(st.Rdev))
		b = binary.AppendVarint(b, st.Size)
		b = binary.AppendVarint(b, st.Blocks)
		b = binary.AppendVarint(b, unix.TimespecToNsec(st.Mtim))
		b = binary.AppendVarint(b, unix.TimespecToNsec(st.Ctim))
		b = append(b, boolByte(k.store))
	}
	return b
}

func entryRecord(b []byte, rel string, e *jentry) []byte {
	b = append(b, recEntry)
	b = appendStr(b, rel)
	b = append(b, e.flags)
	b = binary.AppendVarint(b, e.off)
	b = binary.AppendVarint(b, e.hdrLen)
	b = binary.AppendVarint(b, e.dataLen)
	b = binary.AppendUvarint(b, e.dev)
	b = binary.AppendUvarint(b, e.ino)
	b = binary.AppendVarint(b, e.size)
	b = binary.AppendVarint(b, e.mtime)
	b = binary.AppendVarint(b, e.ctime)
	b = binary.AppendUvarint(b, uint64(e.mode))
	b = binary.AppendUvarint(b, uint64(e.uid))
	b = binary.AppendUvarint(b, uint64(e.gid))
	b = binary.AppendUvarint(b, uint64(len(e.hdr)))
	b = append(b, e.hdr...)
	var rb []byte
	if e.rec != nil {
		rb = wire.AppendIndex(nil, *e.rec)
	}
	b = binary.AppendUvarint(b, uint64(len(rb)))
	return append(b, rb...)
}

func skipRecord(b []byte, rel string, off int64) []byte {
	return offRecord(b, recSkip, rel, off)
}

func offRecord(b []byte, typ byte, rel string, off int64) []byte {
	b = append(b, typ)
	b = appendStr(b, rel)
	return binary.AppendVarint(b, off)
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// jdec decodes journal records; the first error sticks.
type jdec struct {
	b   []byte
	err error
}

func (d *jdec) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errors.New("truncated record")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *jdec) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errors.New("truncated record")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *jdec) byte1() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.err = errors.New("truncated record")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *jdec) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errors.New("truncated record")
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return append([]byte(nil), v...)
}

func (d *jdec) str() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) || n > wire.MaxPathLen*16 {
		d.err = errors.New("truncated record")
		return ""
	}
	v := string(d.b[:n])
	d.b = d.b[n:]
	return v
}
