package server

import (
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/tapir-backup/tapir/gnutar"
	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/index/tarscan"
	"github.com/tapir-backup/tapir/wire"
)

// Limits on what a client's dump may make the server hold (promise 8,
// docs/format/agent-protocol.md).
const (
	// maxLag is how many index records may wait for their tar entry (or
	// entries for their record): one frame of tar bytes holds at most
	// frame_size/512 entries, so an honest agent stays far below.
	maxLag = 1 << 20
	// maxWarnings and maxWarningBytes cap the warnings of one dump kept
	// for the report; maxWarningLine one warning; maxReason the reason a
	// failed dump gives.
	maxWarnings     = 200
	maxWarningBytes = 64 << 10
	maxWarningLine  = 1 << 10
	maxReason       = 4 << 10
	// maxZstdWindow is the largest zstd window the ingest check decodes:
	// tapir's frames use at most 8 MiB.
	maxZstdWindow = 8 << 20
)

// maxListingBytes and maxListingDirs bound the directory listings the
// server keeps of one dump until they are in the catalog (directory names
// and GNU.dumpdir values together): beyond either, they are dropped and
// the dump is recorded unlisted. Variables only so that tests can lower
// them.
var (
	maxListingBytes int64 = 256 << 20
	maxListingDirs        = 4_000_000
)

// listingSet collects the directory listings of one dump that the server
// cannot read from the image once it is written (an encrypted image),
// within maxListingBytes and maxListingDirs (promise 8). Every directory
// must be "" (the root) or a clean relative name and every value must
// decode as a GNU.dumpdir; the first one that does not, or the first
// listing over a bound, drops them all: the image is still good, but
// recorded unlisted, and dropped says why.
type listingSet struct {
	m       map[string]string
	bytes   int64
	dropped string
}

func newListingSet() *listingSet { return &listingSet{m: map[string]string{}} }

// add keeps the listing of dir, unless the set was dropped.
func (l *listingSet) add(dir, dumpdir string) {
	if l.dropped != "" {
		return
	}
	if dir != "" {
		if err := cleanName(dir); err != nil {
			l.drop("the directory %s %v", quoteCut(dir), err)
			return
		}
	}
	if _, err := gnutar.DecodeDumpdir(dumpdir); err != nil {
		l.drop("the listing of directory %s does not decode: %v", quoteCut(dir), err)
		return
	}
	if _, dup := l.m[dir]; !dup {
		l.bytes += int64(len(dir))
	}
	l.bytes += int64(len(dumpdir)) // a repeated directory still counts
	switch {
	case l.bytes > maxListingBytes:
		l.drop("they exceed the %d bytes of listings the server keeps of one dump", maxListingBytes)
	case len(l.m) >= maxListingDirs:
		l.drop("they list more than the %d directories the server keeps of one dump", maxListingDirs)
	default:
		l.m[dir] = dumpdir
	}
}

func (l *listingSet) drop(format string, a ...any) {
	l.dropped = fmt.Sprintf(format, a...)
	l.m = nil
}

// quoteCut quotes a name from an agent, cut to 200 bytes.
func quoteCut(s string) string {
	if len(s) > 200 {
		return fmt.Sprintf("%q… (%d bytes)", strings.ToValidUTF8(s[:200], ""), len(s))
	}
	return fmt.Sprintf("%q", s)
}

// ingestQueue is how many chunks of payload may wait for the check: the
// check runs in its own goroutine, beside the holding write and the
// SHA-256 of the same bytes, instead of holding up the connection's
// reader for every chunk. Chunks are data frames (at most wire.MaxFrame,
// 1 MiB from tapir's agent), so the queue holds at most ingestQueue+1 of
// them (one being read).
const ingestQueue = 4

// chunk is a piece of payload for the scan, or (ack != nil) a request to
// say when the scan has taken everything before it.
type chunk struct {
	b   []byte
	ack chan struct{}
}

// ingest checks, while an image flows from a client's agent, that its tar
// stream is what the agent's index says and that every name in it is
// clean and relative (promise 8: the server checks what it ingests). The
// payload bytes go in by Write (compressed as comp says), the index
// records by Record; Finish waits for the stream's end and says whether
// it was good. The check runs behind Write by at most ingestQueue chunks:
// a bad stream makes a later Write (or Record) fail, so the dump stops
// early, and Finish never says good before the last byte was checked.
// Record first lets the check catch up with the payload written so far,
// so that an index record is matched against the entries before it, as
// when the check ran inside Write.
type ingest struct {
	q       chan chunk  // chunks for the scan, in order
	free    chan []byte // chunks the scan is done with
	nBufs   int         // chunks made so far (at most ingestQueue+1)
	behind  bool        // payload was written since the scan last caught up
	closed  bool        // q is closed (Finish or Abort)
	abort   chan struct{}
	scanned chan struct{} // closed when the scan's verdict is in
	done    chan struct{} // closed when the goroutine is gone
	err     error         // the scan's verdict, set before scanned is closed

	mu      sync.Mutex
	records []wire.IndexRecord // received, not yet matched
	entries []tarscan.Entry    // scanned, not yet matched
	matched int64
	bad     error

	// command: the payload is a command's output (newCommandIngest).
	command bool

	// listings, when set before the first Write, collects the directory
	// listings of the tar stream (by the scan's goroutine: read it after
	// Finish).
	listings *listingSet
}

func newIngest(comp image.Comp) *ingest { return startIngest(comp, false) }

// newCommandIngest checks the payload of a command DLE: its frames must
// decompress, and no index record may come (the payload is a command's
// output, not a tar stream).
func newCommandIngest(comp image.Comp) *ingest { return startIngest(comp, true) }

func startIngest(comp image.Comp, command bool) *ingest {
	in := &ingest{q: make(chan chunk, ingestQueue+2), free: make(chan []byte, ingestQueue+1),
		abort: make(chan struct{}), scanned: make(chan struct{}), done: make(chan struct{}), command: command}
	go func() {
		defer close(in.done)
		r := &queueReader{in: in}
		in.err = in.scan(r, comp)
		close(in.scanned)
		// What follows the tar stream (zero blocks, the seek table), or
		// everything after a bad entry: taken and dropped, so that Write
		// never blocks.
		r.drain()
	}()
	return in
}

// queueReader reads the chunks of an ingest's queue as one stream.
type queueReader struct {
	in  *ingest
	cur []byte // the chunk being read
	off int
}

func (r *queueReader) Read(p []byte) (int, error) {
	for r.cur == nil || r.off == len(r.cur) {
		if r.cur != nil {
			r.in.free <- r.cur[:0]
			r.cur = nil
		}
		select {
		case <-r.in.abort:
			return 0, errors.New("dump aborted")
		case c, ok := <-r.in.q:
			if !ok {
				return 0, io.EOF
			}
			if c.ack != nil {
				// Everything before it was read and the scan wants more.
				close(c.ack)
				continue
			}
			r.cur, r.off = c.b, 0
		}
	}
	n := copy(p, r.cur[r.off:])
	r.off += n
	return n, nil
}

func (r *queueReader) drain() {
	if r.cur != nil {
		r.in.free <- r.cur[:0]
		r.cur = nil
	}
	for c := range r.in.q {
		if c.ack != nil {
			close(c.ack)
		} else {
			r.in.free <- c.b[:0]
		}
	}
}

func (in *ingest) scan(r io.Reader, comp image.Comp) error {
	var tr io.Reader = r
	switch comp {
	case image.CompZstd:
		dec, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(maxZstdWindow), zstd.WithDecoderMaxMemory(1<<40))
		if err != nil {
			return err
		}
		defer dec.Close()
		tr = dec
	case image.CompGzip:
		gr, err := gzip.NewReader(r)
		if err != nil {
			return fmt.Errorf("the gzip payload: %w", err)
		}
		defer gr.Close()
		tr = gr
	}
	if in.command {
		if _, err := io.Copy(io.Discard, tr); err != nil {
			return fmt.Errorf("the command's payload: %w", err)
		}
		return nil
	}
	_, err := tarscan.Scan(tr, func(e tarscan.Entry) error {
		if err := cleanEntry(e); err != nil {
			return err
		}
		if e.HasDumpdir && in.listings != nil {
			in.listings.add(e.Path, e.Dumpdir)
		}
		if e.Path == "" {
			return nil // the DLE root has no index record
		}
		return in.push(nil, &e)
	})
	if err != nil {
		return fmt.Errorf("the image's tar stream: %w", err)
	}
	return nil
}

// cleanEntry refuses a name a restore must never see: absolute, with a
// ".." or "." component, or a root that is not a directory; and a hard
// link whose target is not a clean relative name.
func cleanEntry(e tarscan.Entry) error {
	where := fmt.Sprintf("entry at tar offset %d", e.TarOffset)
	if e.Path == "" {
		if e.Type != '5' {
			return fmt.Errorf("%s: the DLE root (\".\") is not a directory (type %q): a restore would replace its target with it", where, e.Type)
		}
		return nil
	}
	if err := cleanName(e.Path); err != nil {
		return fmt.Errorf("%s: name %q %v", where, e.Path, err)
	}
	if e.Type == '1' {
		if err := cleanName(e.Link); err != nil {
			return fmt.Errorf("%s: %q is a hard link to %q, which %v", where, e.Path, e.Link, err)
		}
	}
	return nil
}

func cleanName(p string) error {
	switch {
	case p == "":
		return errors.New("is empty")
	case strings.HasPrefix(p, "/"):
		return errors.New("is absolute")
	case path.Clean(p) != p:
		return errors.New("is not a clean relative name (it has \"..\", \".\" or empty components)")
	case p == ".." || strings.HasPrefix(p, "../"):
		return errors.New("leaves the DLE")
	}
	return nil
}

// Write feeds payload bytes to the check. It copies b and returns before
// the check has read it; an error is the verdict on earlier bytes.
func (in *ingest) Write(b []byte) (int, error) {
	if err := in.failed(); err != nil {
		return 0, err
	}
	if in.closed {
		return 0, errors.New("write after the end of the dump")
	}
	var buf []byte
	select {
	case buf = <-in.free:
	default:
		if in.nBufs <= ingestQueue {
			in.nBufs++
		} else {
			select {
			case buf = <-in.free:
			case <-in.scanned:
				if err := in.verdict(); err != nil {
					return 0, err
				}
				// The tar stream ended well; what follows it is
				// drained, and every chunk comes back.
				buf = <-in.free
			}
		}
	}
	// The scan may have failed while this chunk waited for room.
	select {
	case <-in.scanned:
		if err := in.verdict(); err != nil {
			if buf != nil {
				in.free <- buf
			}
			return 0, err
		}
	default:
	}
	in.q <- chunk{b: append(buf, b...)} // never blocks: there are at most cap(q)-1 chunks
	in.behind = true
	return len(b), nil
}

// verdict is the scan's error or the index mismatch, once scanned is closed.
func (in *ingest) verdict() error {
	if in.err != nil {
		return in.err
	}
	return in.failed()
}

// Record adds one index record from the agent.
func (in *ingest) Record(rec wire.IndexRecord) error {
	if in.command {
		return fmt.Errorf("refused: an index record (%s) in the payload of a command DLE, which holds no files", quoteCut(rec.Path))
	}
	if in.behind && !in.closed {
		in.behind = false
		ack := make(chan struct{})
		in.q <- chunk{ack: ack} // the one place left in q
		<-ack
		select {
		case <-in.scanned:
			if in.err != nil {
				return in.err
			}
		default:
		}
	}
	return in.push(&rec, nil)
}

func (in *ingest) failed() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.bad
}

// push adds a record or an entry and matches the queues' heads.
func (in *ingest) push(rec *wire.IndexRecord, e *tarscan.Entry) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.bad != nil {
		return in.bad
	}
	if rec != nil {
		in.records = append(in.records, *rec)
	} else {
		in.entries = append(in.entries, *e)
	}
	for len(in.records) > 0 && len(in.entries) > 0 {
		r, x := in.records[0], in.entries[0]
		if r.Path != x.Path || r.TarOffset != x.TarOffset {
			in.bad = fmt.Errorf("the image's tar stream does not match the agent's index: entry %d is %q at tar offset %d, the index says %q at %d",
				in.matched+1, x.Path, x.TarOffset, r.Path, r.TarOffset)
			return in.bad
		}
		in.records, in.entries = in.records[1:], in.entries[1:]
		in.matched++
	}
	if len(in.records) > maxLag || len(in.entries) > maxLag {
		in.bad = fmt.Errorf("the agent's index and its tar stream are more than %d entries apart", maxLag)
	}
	return in.bad
}

// Finish ends the payload and returns the verdict: nil when every entry
// was clean and matched its index record.
func (in *ingest) Finish() error {
	if !in.closed {
		in.closed = true
		close(in.q)
	}
	<-in.done
	if in.err != nil {
		return in.err
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	switch {
	case in.bad != nil:
		return in.bad
	case len(in.records) > 0:
		return fmt.Errorf("the agent's index lists %q at tar offset %d (and %d more), which the image's tar stream does not hold", in.records[0].Path, in.records[0].TarOffset, len(in.records)-1)
	case len(in.entries) > 0:
		return fmt.Errorf("the image's tar stream holds %q at tar offset %d (and %d more), which the agent's index does not list", in.entries[0].Path, in.entries[0].TarOffset, len(in.entries)-1)
	}
	return nil
}

// Abort stops the check (the dump failed for another reason). It may
// follow Finish.
func (in *ingest) Abort() {
	if !in.closed {
		in.closed = true
		close(in.abort)
		close(in.q)
	}
	<-in.done
}

// warnings keeps a dump's warnings within maxWarnings lines and
// maxWarningBytes bytes, each line cut at maxWarningLine; the rest is
// counted and summed up in one last line.
type warnings struct {
	lines        []string
	bytes        int
	dropped      int
	droppedBytes int64
}

func (w *warnings) add(msg string) {
	if len(msg) > maxWarningLine {
		msg = strings.ToValidUTF8(msg[:maxWarningLine], "") + fmt.Sprintf("… (%d bytes more)", len(msg)-maxWarningLine)
	}
	if len(w.lines) >= maxWarnings || w.bytes+len(msg) > maxWarningBytes {
		w.dropped++
		w.droppedBytes += int64(len(msg))
		return
	}
	w.lines = append(w.lines, msg)
	w.bytes += len(msg)
}

// list is what the report shows.
func (w *warnings) list() []string {
	if w.dropped == 0 {
		return w.lines
	}
	return append(w.lines[:len(w.lines):len(w.lines)], fmt.Sprintf("… and %d more warnings (%d bytes) from the agent, not kept (limit %d lines, %d bytes)",
		w.dropped, w.droppedBytes, maxWarnings, maxWarningBytes))
}

// capReason cuts a failure text from an agent to maxReason bytes.
func capReason(s string) string {
	if len(s) <= maxReason {
		return s
	}
	return strings.ToValidUTF8(s[:maxReason], "") + fmt.Sprintf("… (%d bytes more)", len(s)-maxReason)
}
