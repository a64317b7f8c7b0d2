package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/tapir-backup/tapir/holding"
	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/report"
	"github.com/tapir-backup/tapir/taper"
)

// tapeItem is one image waiting for the taper: a complete holding image
// (of this run or, flushed, of an earlier one).
type tapeItem struct {
	j     *job
	path  string
	space *holding.Space // this run's reservation; nil for a leftover of an earlier run
	bytes int64          // bytes on the holding disk, for a leftover
	kind  holding.Kind
}

// directItem is a stream a dumper sends straight to the taper.
type directItem struct {
	j   *job
	hdr image.Header
	r   io.Reader
	res chan directResult
}

// testHookTaped, when set (tests only), is called between the catalog
// commit of a holding image and the delete of its holding file: a test
// kills the process there, as kill -9 could.
var testHookTaped func(holdingPath string)

// errStopping is why the taper writes nothing more after Deps.Stop.
var errStopping = errors.New("the server was asked to stop (SIGTERM); the next run flushes it")

type directResult struct {
	res     *taper.ImageResult
	err     error
	starved time.Duration // the drive's wait for the dumper after the first byte
}

// Where a streamItem is (taperLoop.mu).
const (
	streamOffered = iota // the dumper writes it; the taper may start it
	streamTaping         // the taper writes it while the dumper does
	streamLeft           // the taper gave it up (tape error): the dumper queues it whole
	streamGone           // the dumper is done with it (queued whole, or failed)
)

// streamItem is an image the dumper is still writing to the holding
// disk, offered to the taper so that it may start it before it is
// complete (taper.StartNow). The dumper says when it is complete and
// recorded (streamDone) or failed (streamFailed); only then does the
// reader of the growing file see its end.
type streamItem struct {
	j      *job
	g      *holding.Growing
	hdr    image.Header // as the dump began: sizes and checksum Unknown
	dumpID int64        // of this attempt (a retry has another)
	est    int64        // estimated payload bytes
	space  *holding.Space

	// under taperLoop.mu
	state int
	done  bool   // the dump finished and the image is recorded at path
	path  string // the holding image, once done
}

// taperLoop writes the volumes, with one worker per drive of the run
// ([changer] tapers). The workers take complete holding images in the
// order they were queued, each writing whole images to its own drive's
// volume, and accept a stream straight from a dumper only while a drive
// is idle (holding full, or an image that holding cannot take). When the
// run may use no further volume they stop taping; what is queued stays on
// the holding disk.
type taperLoop struct {
	r      *run
	vols   *volumes
	drives []*taperDrive

	mu       sync.Mutex
	queue    []*tapeItem
	offered  []*streamItem // images being dumped that the taper may start
	speed    float64       // the drive's rate, bytes/s ([tapetype] speed)
	minRate  float64       // the slowest it matches its speed to, bytes/s ([tapetype] min_rate); 0: none
	closed   bool
	dead     error  // no further volume: nothing more is taped
	noVolume string // the first "no usable volume" that left an image on the holding disk
	changed  chan struct{}
	done     chan struct{}
}

// assumedDriveBuffer is the buffer a tape drive is assumed to stream
// from when starvation is measured: LTO drives have 256 MiB to 1 GiB; the
// smaller figure hides no stop a small buffer would have made.
const assumedDriveBuffer = 64 << 20

// taperDrive is the worker of one drive: its scribe and what it does.
type taperDrive struct {
	scribe *taper.Scribe
	tape   bool   // a real drive, which stops when it is not fed (not vtapes)
	name   string // for a person: "drive 1 (/dev/nst1)", "the drive"
	wake   chan struct{}

	// under taperLoop.mu
	direct      *directItem
	busy        bool        // an image is being written, or a direct stream was accepted
	busyHolding bool        // the image being written is on the holding disk
	streaming   *streamItem // the image being written while it is dumped
	busyTime    time.Duration
	retired     error // the drive can write no further volume; the others go on
}

func newTaperLoop(r *run, vols *volumes) *taperLoop {
	return &taperLoop{r: r, vols: vols, speed: float64(r.cfg.Tapetype().Speed), minRate: float64(r.cfg.Tapetype().MinRate),
		changed: make(chan struct{}), done: make(chan struct{})}
}

// setDrives gives the loop one worker per drive of vols (before run).
func (t *taperLoop) setDrives() {
	t.drives = nil
	for _, d := range t.vols.drives {
		sc := taper.NewScribe(d, t.r.log)
		sc.Clock = t.r.clock
		tape := d.ch.Properties().Kind != "disk"
		if tape {
			// Starvation is the time a drive streaming at the tapetype's
			// speed would have found its buffer empty mid-image.
			sc.DriveSpeed, sc.DriveBuffer = t.speed, assumedDriveBuffer
		}
		t.drives = append(t.drives, &taperDrive{scribe: sc, name: orDrive(d.name), tape: tape, wake: make(chan struct{}, 1)})
	}
	if len(t.drives) == 0 {
		// Degraded: no drive, yet one worker leaves each queued image
		// on the holding disk.
		t.drives = []*taperDrive{{wake: make(chan struct{}, 1)}}
	}
}

// busyTime is the time the drives spent writing images, added up.
func (t *taperLoop) busyTime() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	var sum time.Duration
	for _, td := range t.drives {
		sum += td.busyTime
	}
	return sum
}

// stop makes the loop tape nothing more (degraded mode, or after the
// volumes ran out).
func (t *taperLoop) stop(reason error) {
	t.mu.Lock()
	if t.dead == nil {
		t.dead = reason
	}
	t.notifyLocked()
	t.mu.Unlock()
}

func (t *taperLoop) notifyLocked() {
	t.poke()
	close(t.changed)
	t.changed = make(chan struct{})
}

// Changed returns a channel closed when the taper's state changes.
func (t *taperLoop) Changed() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.changed
}

// enqueue hands a complete holding image to the taper.
func (t *taperLoop) enqueue(it *tapeItem) {
	t.mu.Lock()
	t.queue = append(t.queue, it)
	t.notifyLocked()
	t.mu.Unlock()
	t.r.pool.Poke()
}

// tryDirect accepts a stream straight from a dumper if a drive is idle
// and usable; the result of the write arrives on the returned channel.
func (t *taperLoop) tryDirect(j *job, hdr image.Header, r io.Reader) (<-chan directResult, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dead != nil || t.closed || len(t.queue) > 0 {
		return nil, false
	}
	for _, td := range t.drives {
		if !td.busy {
			d := &directItem{j: j, hdr: hdr, r: r, res: make(chan directResult, 1)}
			td.direct, td.busy = d, true
			t.notifyLocked()
			return d.res, true
		}
	}
	return nil, false
}

// usable reports whether the taper may still write.
func (t *taperLoop) usable() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.dead == nil
}

// draining reports whether holding space is about to be released.
func (t *taperLoop) draining() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dead != nil {
		return false
	}
	free := false // a drive that will take the queue's next image
	for _, td := range t.drives {
		// A drive following an image still being dumped waits for that
		// dump: only a finished one frees space soon.
		if td.busyHolding || (td.streaming != nil && td.streaming.done) {
			return true
		}
		free = free || (td.streaming == nil && td.retired == nil)
	}
	return free && len(t.queue) > 0
}

// close tells the loop that no more images come; it ends once the queue
// is done.
func (t *taperLoop) close() {
	t.mu.Lock()
	t.closed = true
	t.notifyLocked()
	t.mu.Unlock()
}

// run runs one worker per drive until the queue is done.
func (t *taperLoop) run(ctx context.Context) {
	defer close(t.done)
	var wg sync.WaitGroup
	for _, td := range t.drives {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.work(ctx, td)
		}()
	}
	wg.Wait()
}

// work is the loop of one drive's worker.
func (t *taperLoop) work(ctx context.Context, td *taperDrive) {
	cancelled := ctx.Done()
	stop := t.r.stop
	for {
		t.mu.Lock()
		var st *streamItem
		for td.direct == nil && len(t.queue) == 0 && !t.closed {
			if st = t.readyLocked(td); st != nil {
				break
			}
			t.mu.Unlock()
			select {
			case <-td.wake:
			case <-cancelled:
				cancelled = nil
				t.stop(fmt.Errorf("the run was cancelled: %w", ctx.Err()))
			case <-stop:
				stop = nil
				t.stop(t.r.stopErr())
			}
			t.mu.Lock()
		}
		if d := td.direct; d != nil {
			td.direct = nil
			t.mu.Unlock()
			start := t.r.clock.Now()
			wr := &waitReader{r: d.r, clock: t.r.clock}
			res, err := td.scribe.WriteImage(ctx, d.hdr, wr, d.hdr.Name())
			t.leftFiles(ctx, d.j, d.hdr.Level, res, err)
			if errors.Is(err, taper.ErrNoVolume) && !t.retire(td, err) {
				t.stop(err)
			}
			// Unblock the dumper if the write ended before its stream did.
			if pr, ok := d.r.(*io.PipeReader); ok {
				if err != nil {
					pr.CloseWithError(err)
				} else {
					pr.Close()
				}
			}
			d.res <- directResult{res: res, err: err, starved: starvation(wr.Waited(), res)}
			if t.idle(td, start) {
				return
			}
			continue
		}
		if st != nil {
			// Not busyHolding: its space is released only once its dump
			// is done (draining), and a dump waiting for space must not
			// wait for this taper.
			st.state = streamTaping
			td.busy, td.streaming = true, st
			t.notifyLocked()
			t.mu.Unlock()
			start := t.r.clock.Now()
			t.tapeStream(ctx, td, st)
			if t.idle(td, start) {
				return
			}
			continue
		}
		if len(t.queue) == 0 && t.closed {
			t.mu.Unlock()
			return
		}
		if t.dead == nil && t.r.stopping() {
			t.dead = t.r.stopErr()
		}
		it := t.queue[0]
		t.queue = t.queue[1:]
		dead := t.dead
		if dead == nil {
			td.busy, td.busyHolding = true, true
		}
		t.mu.Unlock()
		start := t.r.clock.Now()
		if dead != nil {
			t.leaveFor(it, dead)
		} else {
			t.tapeHolding(ctx, td, it)
		}
		if t.idle(td, start) {
			return
		}
	}
}

// idle marks the drive idle again after a write begun at start, and
// reports whether it is retired (its worker ends).
func (t *taperLoop) idle(td *taperDrive, start time.Time) bool {
	d := t.r.clock.Now().Sub(start)
	t.mu.Lock()
	td.busy, td.busyHolding, td.streaming = td.retired != nil, false, nil
	td.busyTime += d
	retired := td.retired != nil
	t.notifyLocked()
	t.mu.Unlock()
	t.r.pool.Poke()
	return retired
}

// retire takes a drive that can write no further volume (err: runtapes
// reached, no volume left for it) out of the run while another drive
// still writes: the images go on with the others. It reports false,
// retiring nothing, when td is the last drive (the caller stops the
// taper).
func (t *taperLoop) retire(td *taperDrive, err error) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dead != nil || td.retired != nil {
		return td.retired != nil
	}
	alive := 0
	for _, x := range t.drives {
		if x != td && x.retired == nil {
			alive++
		}
	}
	if alive == 0 {
		return false
	}
	td.retired = err
	t.r.log.Warn("a drive can write no further volume; the other drives go on", "drive", td.name, "err", err)
	t.r.note(fmt.Sprintf("taper: %s can write no further volume (%v); the images it would have written went to the other drives", td.name, err))
	return true
}

// requeueHolding puts a holding image back at the head of the queue.
func (t *taperLoop) requeueHolding(it *tapeItem) {
	t.mu.Lock()
	t.queue = append([]*tapeItem{it}, t.queue...)
	t.notifyLocked()
	t.mu.Unlock()
}

// leaveFor records that an image stays on the holding disk because of
// err; for want of a volume, the report says err once (run.sayOnce).
func (t *taperLoop) leaveFor(it *tapeItem, err error) {
	if errors.Is(err, taper.ErrNoVolume) {
		it.j.noVolume = true
		t.mu.Lock()
		if t.noVolume == "" {
			t.noVolume = err.Error()
		}
		t.mu.Unlock()
	}
	t.leave(it, err.Error())
}

// leave records that an image stays on the holding disk.
func (t *taperLoop) leave(it *tapeItem, why string) {
	j := it.j
	j.res.Status = report.StatusHolding
	j.res.Reason = "on the holding disk, not on a volume: " + why
	j.prog.mark("holding", j.res.Reason, t.r.clock.Now())
	if it.space != nil {
		// The space stays used by the image; it no longer waits for a writer.
		it.space.Shrink()
	}
}

// tapeHolding writes one holding image, checks the SHA-256 of what was
// written against its header, records every part in the catalog and only
// then deletes the holding file. A device error gives the image one more
// try on the next volume.
func (t *taperLoop) tapeHolding(ctx context.Context, td *taperDrive, it *tapeItem) {
	j, r := it.j, t.r
	start := r.clock.Now()
	j.prog.target.Store("")
	j.prog.mark("taping", "", start)
	var res *taper.ImageResult
	var hdr image.Header
	for attempt := 1; ; attempt++ {
		im, err := holding.OpenImage(it.path, r.disks)
		if err != nil {
			t.leave(it, fmt.Sprintf("cannot read it (%v); it is kept for inspection", err))
			return
		}
		hdr = *im.Header
		if hdr.Extra != nil {
			delete(hdr.Extra, holding.ChunksKey)
		}
		res, err = td.scribe.WriteImage(ctx, hdr, im.Reader(), hdr.Name())
		im.Close()
		t.leftFiles(ctx, j, hdr.Level, res, err)
		if err == nil {
			break
		}
		if errors.Is(err, taper.ErrNoVolume) && ctx.Err() == nil && t.retire(td, err) {
			t.requeueHolding(it) // another drive takes it
			return
		}
		if errors.Is(err, taper.ErrNoVolume) || ctx.Err() != nil {
			t.stop(err)
			t.leaveFor(it, err)
			return
		}
		r.log.Error("taping failed", "host", j.dle.Host, "path", j.dle.Path, "attempt", attempt, "err", err)
		if attempt == 2 {
			t.leave(it, fmt.Sprintf("taping failed twice, last: %v", err))
			return
		}
		r.note(fmt.Sprintf("taper: %s:%s level %d: taping failed (%v); trying again on the next volume", j.dle.Host, j.dle.Path, hdr.Level, err))
	}
	if res.SHA256 != hdr.SHA256 || res.Bytes != hdr.PayloadSize {
		msg := fmt.Sprintf("holding file %s is corrupt: what was read has SHA-256 %s and %d bytes, its header says %s and %d bytes; it was NOT recorded as taped and is kept for inspection",
			it.path, res.SHA256, res.Bytes, hdr.SHA256, hdr.PayloadSize)
		r.note(fmt.Sprintf("taper: %s:%s level %d: %s", j.dle.Host, j.dle.Path, hdr.Level, msg))
		t.unrecorded(ctx, j, hdr.Level, res, "its SHA-256 or size does not match the holding file's header")
		t.leave(it, msg)
		j.res.Status = report.StatusFailed
		j.prog.mark("failed", msg, r.clock.Now())
		return
	}
	if err := t.commit(ctx, j, res); err != nil {
		t.unrecorded(ctx, j, hdr.Level, res, err.Error())
		t.leave(it, err.Error())
		return
	}
	t.dropHolding(it, start)
	if td.tape {
		// A real drive waited for the holding disk: one too slow to feed
		// it makes it stop and reposition.
		t.starved(j, res, res.Idle, "the holding disk")
	}
	r.log.Info("taped", "host", j.dle.Host, "path", j.dle.Path, "parts", len(res.Parts), "volume", res.Parts[0].Volume, "file", res.Parts[0].Pos.File, "bytes", res.Bytes)
}

// dropHolding deletes the holding copy of an image committed on tape
// (only then) and gives its space back; the image was taped from start.
func (t *taperLoop) dropHolding(it *tapeItem, start time.Time) {
	r := t.r
	if testHookTaped != nil {
		testHookTaped(it.path)
	}
	if err := holding.Remove(it.path, r.disks); err != nil {
		r.note("holding: " + err.Error())
	}
	if it.space != nil {
		it.space.Free()
	} else {
		r.pool.Release(it.path, it.bytes, it.kind)
	}
	it.j.holding = ""
	it.j.res.TapeTime = r.clock.Now().Sub(start)
}

// leftFiles records in the catalog the tape files a write left on volumes
// that hold no image it can record (RecordFailedFile): those of a failed
// write (a truncated part, parts of an image that failed on a later
// volume) are problems of the report; a header abandoned at the end of a
// volume is a note. So neither verify nor a person takes them for images.
func (t *taperLoop) leftFiles(ctx context.Context, j *job, level int, res *taper.ImageResult, err error) {
	var we *taper.WriteError
	switch {
	case errors.As(err, &we):
		t.recordLeft(ctx, j, level, we.Files, true)
	case err == nil && res != nil:
		t.recordLeft(ctx, j, level, res.Abandoned, false)
	}
}

// unrecorded records as failed files the parts of an image that was
// written whole but is not recorded as an image: what was written did
// not match the image's checksum, or the catalog refused the commit.
func (t *taperLoop) unrecorded(ctx context.Context, j *job, level int, res *taper.ImageResult, why string) {
	var files []taper.LeftFile
	for _, p := range res.Parts {
		files = append(files, taper.LeftFile{Volume: p.Volume, Slot: p.Slot, FileNo: p.Pos.File, Bytes: p.Length,
			Why: fmt.Sprintf("part %d of an image written whole but not recorded as one: %s", p.Part, why)})
	}
	t.recordLeft(ctx, j, level, files, true)
}

// recordLeft records each file with RecordFailedFile and puts it in the
// report: a problem when a write failed, else a note.
func (t *taperLoop) recordLeft(ctx context.Context, j *job, level int, files []taper.LeftFile, failed bool) {
	for _, f := range files {
		where := fmt.Sprintf("volume %s file %d", f.Volume, f.FileNo)
		what := fmt.Sprintf("%s:%s level %d: %s", j.dle.Host, j.dle.Path, level, f.Why)
		rerr := t.r.cat.RecordFailedFile(context.WithoutCancel(ctx), catalog.FailedFile{Volume: f.Volume, FileNo: f.FileNo, Datestamp: t.r.datestamp,
			Host: j.dle.Host, Path: j.dle.Path, Level: level, Reason: f.Why})
		switch {
		case rerr != nil:
			t.r.log.Error("could not record a failed tape file", "volume", f.Volume, "file", f.FileNo, "err", rerr)
			t.r.problem(where, what+fmt.Sprintf("; it could NOT be recorded as a failed file (%v): verify lists it as a file the catalog does not know, no restore uses it", rerr))
		case failed:
			t.r.problem(where, what+"; recorded as a failed file (verify skips it, no restore uses it)")
		default:
			t.r.note(fmt.Sprintf("taper: %s: %s; recorded as a failed file (verify skips it)", where, what))
		}
	}
}

// commit records the parts of a taped image in the catalog and in the
// report. The dump must be in state holding.
func (t *taperLoop) commit(ctx context.Context, j *job, res *taper.ImageResult) error {
	return t.commitDump(ctx, j, j.dumpID, res)
}

// commitDump is commit for the dump id of j (a streamed image keeps the
// id of the attempt that wrote it).
func (t *taperLoop) commitDump(ctx context.Context, j *job, dumpID int64, res *taper.ImageResult) error {
	parts := make([]catalog.Part, len(res.Parts))
	for i, p := range res.Parts {
		parts[i] = catalog.Part{DumpID: dumpID, Volume: p.Volume, Part: p.Part, FileNo: p.Pos.File, Record: p.Pos.Record,
			LogicalPos: p.Pos.Logical, Offset: p.Offset, Length: p.Length}
	}
	if err := t.r.cat.CommitTaped(context.WithoutCancel(ctx), dumpID, parts, t.r.clock.Now()); err != nil {
		return err
	}
	for _, p := range res.Parts {
		t.vols.account(p.Volume, p.Length)
	}
	j.res.Parts = nil
	for _, p := range res.Parts {
		j.res.Parts = append(j.res.Parts, report.Part{Volume: p.Volume, FileNo: p.Pos.File, Part: p.Part, Bytes: p.Length})
	}
	if len(res.Parts) > 1 {
		var where []string
		for _, p := range res.Parts {
			where = append(where, fmt.Sprintf("%s file %d", p.Volume, p.Pos.File))
		}
		t.r.note(fmt.Sprintf("taper: %s:%s level %d spans %d volumes: %s", j.dle.Host, j.dle.Path, j.res.Level, len(res.Parts), strings.Join(where, ", ")))
	}
	j.res.Status = report.StatusOK
	if len(j.res.Strange) > 0 {
		j.res.Status = report.StatusStrange
	}
	j.prog.mark("done", "", t.r.clock.Now())
	return nil
}
