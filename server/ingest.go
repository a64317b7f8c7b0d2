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

// ingest checks, while an image flows from a client's agent, that its tar
// stream is what the agent's index says and that every name in it is
// clean and relative (promise 8: the server checks what it ingests). The
// payload bytes go in by Write (compressed as comp says), the index
// records by Record; Finish waits for the stream's end and says whether
// it was good. A bad stream makes Write fail, so the dump stops early.
type ingest struct {
	pw   *io.PipeWriter
	done chan struct{}
	err  error // the scan's verdict, set before done is closed

	mu      sync.Mutex
	records []wire.IndexRecord // received, not yet matched
	entries []tarscan.Entry    // scanned, not yet matched
	matched int64
	bad     error
}

func newIngest(comp image.Comp) *ingest {
	pr, pw := io.Pipe()
	in := &ingest{pw: pw, done: make(chan struct{})}
	go func() {
		defer close(in.done)
		err := in.scan(pr, comp)
		if err != nil {
			pr.CloseWithError(err)
		} else {
			io.Copy(io.Discard, pr) // what follows the tar stream (zero blocks, the seek table)
		}
		in.err = err
	}()
	return in
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
	_, err := tarscan.Scan(tr, func(e tarscan.Entry) error {
		if err := cleanEntry(e); err != nil {
			return err
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

// Write feeds payload bytes to the check.
func (in *ingest) Write(b []byte) (int, error) {
	if err := in.failed(); err != nil {
		return 0, err
	}
	n, err := in.pw.Write(b)
	if err != nil {
		if bad := in.failed(); bad != nil {
			return n, bad
		}
		<-in.done
		if in.err != nil {
			return n, in.err
		}
	}
	return n, err
}

// Record adds one index record from the agent.
func (in *ingest) Record(rec wire.IndexRecord) error {
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
	in.pw.Close()
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

// Abort stops the check (the dump failed for another reason).
func (in *ingest) Abort() {
	in.pw.CloseWithError(errors.New("dump aborted"))
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
