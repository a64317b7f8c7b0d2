package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/tapir-backup/tapir/internal/bytesize"
	"github.com/tapir-backup/tapir/internal/clock"
	"github.com/tapir-backup/tapir/taper"
)

// Taping while dumping (docs/format/holding.md). A dumper writing to the
// holding disk offers its growing image to the taper (offer); each write
// wakes the taper, which starts the image when taper.StartNow says the
// drive cannot catch up with the dumper, or takes it whole from the
// queue once the dump is done. The image is committed on tape, and its
// holding file deleted, only when the dump finished and was recorded and
// the SHA-256 of what was written equals the dumper's.

// offer lets the taper start s before its dump is complete.
func (t *taperLoop) offer(s *streamItem) {
	s.g.OnChange(t.poke)
	t.mu.Lock()
	s.state = streamOffered
	t.offered = append(t.offered, s)
	t.mu.Unlock()
	t.poke()
}

// poke wakes the drives' workers to look at the offered images again.
func (t *taperLoop) poke() {
	for _, td := range t.drives {
		select {
		case td.wake <- struct{}{}:
		default:
		}
	}
}

// readyLocked returns the first offered image the drive td should start
// now, nil when none (or the taper may start nothing). A vtape starts an
// image at its first bytes: it never stops and repositions, so following
// the dumper costs it nothing, and the night does not end with the rest
// of the image still to write.
func (t *taperLoop) readyLocked(td *taperDrive) *streamItem {
	if t.dead != nil || t.r.stopping() {
		return nil
	}
	speed, minRate := t.speed, t.minRate
	if !td.tape {
		speed, minRate = 1, 0
	}
	for _, s := range t.offered {
		if s.state != streamOffered {
			continue
		}
		written, rate := s.g.Progress()
		if taper.StartNow(written, s.est, rate, speed, minRate) {
			t.removeOfferedLocked(s)
			return s
		}
	}
	return nil
}

func (t *taperLoop) removeOfferedLocked(s *streamItem) {
	for i, x := range t.offered {
		if x == s {
			t.offered = append(t.offered[:i:i], t.offered[i+1:]...)
			return
		}
	}
}

// streamDone tells the taper that the dump of s finished and the image is
// recorded at path. It reports whether the taper is writing it (it then
// commits it and deletes the holding file); otherwise the dumper queues
// it whole.
func (t *taperLoop) streamDone(s *streamItem, path string) bool {
	t.mu.Lock()
	t.removeOfferedLocked(s)
	if s.state == streamTaping {
		s.done, s.path = true, path
		t.notifyLocked()
		t.mu.Unlock()
		t.r.pool.Poke() // its space is now draining
		return true
	}
	s.state = streamGone
	t.mu.Unlock()
	return false
}

// streamFailed tells the taper that the dump of s failed: not started, it
// is withdrawn; being written, the reader gets the dumper's error (Fail)
// and the taper records the cut tape file as a failed file.
func (t *taperLoop) streamFailed(s *streamItem, err error) {
	t.mu.Lock()
	t.removeOfferedLocked(s)
	if s.state != streamTaping {
		s.state = streamGone
	}
	t.mu.Unlock()
	s.g.Fail(err)
}

// tapeStream writes an image the dumper is still writing, following the
// growing holding file.
func (t *taperLoop) tapeStream(ctx context.Context, td *taperDrive, s *streamItem) {
	j, r := s.j, t.r
	written, rate := s.g.Progress()
	r.log.Info("taping started while dumping", "host", j.dle.Host, "path", j.dle.Path, "level", s.hdr.Level,
		"written", written, "estimate", s.est, "dump_rate", int64(rate), "drive_rate", int64(t.speed), "drive_min_rate", int64(t.minRate))
	start := r.clock.Now()
	rd := s.g.NewReader()
	res, err := td.scribe.WriteImage(ctx, s.hdr, rd, s.hdr.Name())
	rd.Close()
	starved := starvation(rd.Waited(), res)
	if err != nil {
		// The cut tape file is a failed file (verify and rebuild skip it,
		// no restore uses it); the next image follows it on the volume.
		t.leftFiles(ctx, j, s.hdr.Level, res, err)
		if derr := s.g.Err(); derr != nil {
			r.log.Error("the dump failed while it was taped; the tape file is recorded as failed", "host", j.dle.Host, "path", j.dle.Path, "err", derr)
			return
		}
		r.log.Error("taping while dumping failed", "host", j.dle.Host, "path", j.dle.Path, "err", err)
		switch {
		case errors.Is(err, taper.ErrNoVolume) && ctx.Err() == nil && t.retire(td, err):
			// Another drive takes the image once it is complete.
		case errors.Is(err, taper.ErrNoVolume) || ctx.Err() != nil:
			t.stop(err)
		default:
			r.note(fmt.Sprintf("taper: %s:%s level %d: taping while dumping failed (%v); the image is taped again from the holding disk once it is complete", j.dle.Host, j.dle.Path, s.hdr.Level, err))
		}
		t.requeue(s)
		return
	}
	final := s.g.Final()
	if final == nil { // cannot be: the reader ends only after Finish
		t.unrecorded(ctx, j, s.hdr.Level, res, "the dump had not finished when the taper read the end of the image")
		t.requeue(s)
		return
	}
	if res.SHA256 != final.SHA256 || res.Bytes != final.PayloadSize {
		why := fmt.Sprintf("what was written has SHA-256 %s and %d bytes, the dumper's image %s and %d bytes", res.SHA256, res.Bytes, final.SHA256, final.PayloadSize)
		r.note(fmt.Sprintf("taper: %s:%s level %d: taped while dumping, but %s; it is taped again from the holding disk", j.dle.Host, j.dle.Path, s.hdr.Level, why))
		t.unrecorded(ctx, j, s.hdr.Level, res, why)
		t.requeue(s)
		return
	}
	it := &tapeItem{j: j, path: s.path, space: s.space, kind: kindOf(s.hdr.Level)}
	if err := t.commitDump(ctx, j, s.dumpID, res); err != nil {
		t.unrecorded(ctx, j, s.hdr.Level, res, err.Error())
		t.leave(it, err.Error())
		return
	}
	// Only now, committed on tape, does the holding copy go.
	t.dropHolding(it, start)
	j.res.Streamed = true
	t.starved(j, res, starved, "the dumper")
	r.log.Info("taped", "host", j.dle.Host, "path", j.dle.Path, "parts", len(res.Parts), "volume", res.Parts[0].Volume, "file", res.Parts[0].Pos.File,
		"bytes", res.Bytes, "streamed", true, "starved", starved, "rate", int64(taper.Rate(res.Bytes, j.res.TapeTime)))
}

// requeue gives an image back whose streamed write failed but whose dump
// goes on (or is done): it is taped whole from the holding disk.
func (t *taperLoop) requeue(s *streamItem) {
	t.mu.Lock()
	if !s.done {
		s.state = streamLeft // the dumper queues it when it is complete
		t.mu.Unlock()
		return
	}
	s.state = streamGone
	t.queue = append([]*tapeItem{{j: s.j, path: s.path, space: s.space, kind: kindOf(s.hdr.Level)}}, t.queue...)
	t.notifyLocked()
	t.mu.Unlock()
}

// starved records the time the drive waited for the dumper in the middle
// of an image: in the report (the image, the volume of its last part) and
// as a note when there was any.
func (t *taperLoop) starved(j *job, res *taper.ImageResult, d time.Duration, source string) {
	j.res.Starved = d
	if len(res.Parts) == 0 {
		return
	}
	label := res.Parts[len(res.Parts)-1].Volume
	t.vols.mu.Lock()
	for i := range t.vols.used {
		if t.vols.used[i].Label == label {
			t.vols.used[i].Starved += d
		}
	}
	t.vols.mu.Unlock()
	if d > 0 {
		t.r.note(fmt.Sprintf("taper: %s:%s level %d: the drive waited %.1f s for %s in the middle of the image (%s at %s/s)",
			j.dle.Host, j.dle.Path, j.res.Level, d.Seconds(), source, bytesize.Format(res.Bytes), bytesize.Format(int64(taper.Rate(res.Bytes, j.res.TapeTime)))))
	}
}

// starvation is the time the drive waited for the dumper: both the
// reader of the source waited for the dumper (waited) and the drive for
// a record (the scribe's Idle). Either alone overstates it (the reader
// waits while the read-ahead still feeds the drive; the drive waits for
// a disk too), so the smaller one is taken.
func starvation(waited time.Duration, res *taper.ImageResult) time.Duration {
	if res == nil {
		return waited
	}
	return min(waited, res.Idle)
}

// waitReader measures the time Read waits for the source after its first
// byte: for a stream straight from a dumper, the time the drive waited.
type waitReader struct {
	r     io.Reader
	clock clock.Clock
	mu    sync.Mutex
	n     int64
	wait  time.Duration
}

func (w *waitReader) Read(p []byte) (int, error) {
	t0 := w.clock.Now()
	n, err := w.r.Read(p)
	d := w.clock.Now().Sub(t0)
	w.mu.Lock()
	if w.n > 0 {
		w.wait += d
	}
	w.n += int64(n)
	w.mu.Unlock()
	return n, err
}

// Waited is the time Read waited after the first byte.
func (w *waitReader) Waited() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.wait
}

// streamEstimate is the payload the dump of j at its level is expected to
// write: the estimate times the compression ratio; 0 when unknown.
func (j *job) streamEstimate() int64 {
	e, ok := j.est[j.level]
	if !ok || e.Bytes <= 0 {
		return 0
	}
	return int64(float64(e.Bytes) * j.ratio)
}
