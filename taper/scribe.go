package taper

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/internal/clock"
)

// Volume is a volume loaded in a drive, labelled for this run and
// positioned at its end of data, ready for the next file.
type Volume struct {
	Label     string
	Slot      int
	Dev       Device
	Blocksize int
}

// VolumeSource hands the scribe one volume after another. Next is called
// when an image needs a volume and the current one is full (or there is
// none yet); it fails when the run may use no further volume (runtapes
// reached, none usable, or no one inserted one in time). The Scribe wraps
// its errors so that they match ErrNoVolume.
type VolumeSource interface {
	Next(ctx context.Context) (*Volume, error)
}

// PartInfo is where one part of an image landed.
type PartInfo struct {
	Part   int
	Volume string
	Slot   int
	// Position of the part's tape file (its header record): file number,
	// record 0, and the drive's logical block number.
	Pos Position
	// Offset and Length of the payload bytes this part holds.
	Offset, Length int64
}

// ImageResult is the outcome of a WriteImage: the parts written, the
// payload size and its SHA-256, computed on the bytes written.
type ImageResult struct {
	Parts  []PartInfo
	Bytes  int64
	SHA256 string
	// Abandoned are tape files the image began and gave up on the way: a
	// header written as the volume reached its end, with no payload after
	// it (the image went on as the same part on the next volume). They
	// belong to no image; the caller records them as failed files.
	Abandoned []LeftFile
	// Idle is the time the drive waited for the next record after the
	// first: the source did not deliver as fast as the drive wrote (for
	// an image read from a disk, the disk's latency).
	Idle time.Duration
}

// LeftFile is a tape file that a WriteImage wrote but that holds no image
// the caller can record.
type LeftFile struct {
	Volume string
	Slot   int
	FileNo int64
	Bytes  int64 // payload bytes after the header
	// Why says what the file is, for a person: "truncated: ...", "a
	// complete part of an image that failed on a later volume", "header
	// only: ...".
	Why string
}

// WriteError is the error of a WriteImage that failed after it had begun
// tape files: the parts finished on earlier volumes and the one it was
// writing when it failed (truncated, ended with a filemark when the drive
// still took one), plus any abandoned header. Record them as failed
// files, so that neither verify nor a person takes them for images.
// errors.Is and errors.As see through it to the cause (ErrNoVolume ...).
type WriteError struct {
	Files []LeftFile
	Err   error
}

func (e *WriteError) Error() string { return e.Err.Error() }
func (e *WriteError) Unwrap() error { return e.Err }

// Scribe writes images onto volumes as tape files, one part per volume:
// when a volume reaches its early warning (or is full), the part ends with
// a filemark and the image continues as the next part at the start of the
// next volume. It reads the source ahead in a goroutine (double
// buffering), so that a source that delivers in bursts does not make the
// drive stop and start; memory stays at Buffers records. A Scribe is not
// safe for concurrent use: one image at a time, like the drive.
type Scribe struct {
	src VolumeSource
	log *slog.Logger
	// Buffers is the number of records read ahead (default 16).
	Buffers int
	// Clock measures the drive's idle time (ImageResult.Idle); nil is
	// the wall clock.
	Clock clock.Clock
	// DriveSpeed, when > 0, is the rate in bytes/s at which the drive
	// streams from its buffer of DriveBuffer bytes: Idle is then the time
	// such a drive would have found its buffer empty between two records
	// (it stops and repositions), not every wait for the source, most of
	// which the buffer absorbs.
	DriveSpeed  float64
	DriveBuffer int64

	cur *Volume
}

// NewScribe returns a Scribe taking volumes from src.
func NewScribe(src VolumeSource, log *slog.Logger) *Scribe {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Scribe{src: src, log: log}
}

// Current returns the volume being written, nil before the first image or
// after a volume was given up.
func (s *Scribe) Current() *Volume { return s.cur }

type record struct {
	b   []byte
	err error // io.EOF after the last record
}

// WriteImage writes one image: hdr describes it (Part and Parts are set
// here for each part; sizes may be Unknown for an image streamed straight
// from a client), r delivers the payload until io.EOF, and stem names the
// tape files on drives that keep names (vtapes). The result lists every
// part; on error, parts already written are useless (not recorded
// anywhere) and the error says where it failed: once tape files were begun
// it is a *WriteError naming them, so that the caller records them as
// failed files. An error matching
// ErrNoVolume means the image did not fit on the volumes the run may use.
// On error, r may still be read by the read-ahead goroutine until the
// caller closes it (or it returns an error).
func (s *Scribe) WriteImage(ctx context.Context, hdr image.Header, r io.Reader, stem string) (*ImageResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if hdr.Extra != nil {
		x := make(map[string]string, len(hdr.Extra))
		for k, v := range hdr.Extra {
			x[k] = v
		}
		hdr.Extra = x
	}
	if s.cur == nil {
		v, err := s.next(ctx)
		if err != nil {
			return nil, err
		}
		s.cur = v
	}
	bs := s.cur.Blocksize
	nbuf := s.Buffers
	if nbuf <= 0 {
		nbuf = 16
	}
	free := make(chan []byte, nbuf)
	for range nbuf {
		free <- make([]byte, bs)
	}
	full := make(chan record, nbuf)
	// Three stages, each on its own buffers: the reader fills, the writer
	// writes, the hasher sums what was written and frees the buffer. So
	// hashing never holds up the drive, nor reading.
	written := make(chan []byte, nbuf)
	sum := sha256.New()
	hashed := make(chan struct{})
	go func() {
		defer close(hashed)
		for b := range written {
			sum.Write(b)
			free <- b[:cap(b)]
		}
	}()
	stopHasher := sync.OnceFunc(func() { close(written); <-hashed })
	defer stopHasher()
	go func() {
		defer close(full)
		for {
			var b []byte
			select {
			case b = <-free:
			case <-ctx.Done():
				return
			}
			n, err := io.ReadFull(r, b)
			if n > 0 {
				select {
				case full <- record{b: b[:n]}:
				case <-ctx.Done():
					return
				}
			}
			if err == io.ErrUnexpectedEOF {
				err = io.EOF
			}
			if err != nil {
				select {
				case full <- record{err: err}:
				case <-ctx.Done():
				}
				return
			}
		}
	}()

	res := &ImageResult{}
	var part *PartInfo
	var off int64
	headerOnly := func(p *PartInfo, why string) {
		res.Abandoned = append(res.Abandoned, LeftFile{Volume: p.Volume, Slot: p.Slot, FileNo: p.Pos.File, Why: "header only: " + why})
	}
	// endPart ends the part being written with a filemark and keeps it.
	// A part whose filemark fails is not kept but returned: st reports a
	// write error of records it buffered at the filemark (a deferred
	// error), so what the part holds is not known; the caller fails the
	// image with it as the cut part.
	endPart := func() (*PartInfo, error) {
		p := part
		part = nil
		if err := s.cur.Dev.WriteFilemark(); err != nil {
			return p, err
		}
		if p != nil && p.Length > 0 {
			res.Parts = append(res.Parts, *p)
		} else if p != nil {
			headerOnly(p, "the volume was full after it; the part went to the next volume")
		}
		return nil, nil
	}
	// endCut ends the part being written when the image fails for a
	// reason of its own (its source, the run cancelled), so that the
	// volume can take the next image. When the filemark fails the volume
	// is given up: the next image's header would continue this file. It
	// returns how the cut part ends, for fail.
	endCut := func() string {
		if part == nil {
			return ""
		}
		if err := s.cur.Dev.WriteFilemark(); err != nil {
			s.log.Warn("filemark after a failed image; the volume is given up for this run", "volume", s.cur.Label, "err", err)
			s.cur = nil
			return fmt.Sprintf("no filemark: %v; the volume is given up for this run", err)
		}
		return "ended with a filemark"
	}
	// fail ends the image with err and names every tape file it leaves
	// behind; cut is the part being written when it failed (nil if none).
	fail := func(err error, cut *PartInfo, why string) (*ImageResult, error) {
		var files []LeftFile
		for _, p := range res.Parts {
			files = append(files, LeftFile{Volume: p.Volume, Slot: p.Slot, FileNo: p.Pos.File, Bytes: p.Length,
				Why: fmt.Sprintf("part %d of an image whose write failed later: %v", p.Part, err)})
		}
		if cut != nil {
			files = append(files, LeftFile{Volume: cut.Volume, Slot: cut.Slot, FileNo: cut.Pos.File, Bytes: cut.Length,
				Why: fmt.Sprintf("truncated after %d payload bytes (%s): %v", cut.Length, why, err)})
		}
		files = append(files, res.Abandoned...)
		if len(files) == 0 {
			return nil, err
		}
		return nil, &WriteError{Files: files, Err: err}
	}
	// The drive's idle time in the middle of the image: the waits for a
	// record to write after the first one.
	clk := clock.Or(s.Clock)
	var waitFrom time.Time
	drive := driveModel{speed: s.DriveSpeed, buffer: float64(s.DriveBuffer)}
	for rec := range full {
		if rec.err == io.EOF {
			break
		}
		var waited time.Duration // for the source, since the last record was written
		if !waitFrom.IsZero() && rec.err == nil {
			waited = clk.Now().Sub(waitFrom)
			if drive.speed <= 0 {
				res.Idle += waited
			}
		}
		if rec.err != nil {
			cut := part
			why := endCut()
			return fail(fmt.Errorf("reading the image %s: %w", stem, rec.err), cut, why)
		}
		for written := false; !written; {
			if s.cur == nil {
				v, err := s.next(ctx)
				if err != nil {
					return fail(err, nil, "")
				}
				if v.Blocksize != bs {
					s.cur = v
					return fail(fmt.Errorf("volume %s has blocksize %d but the image was cut into records of %d; the volumes of one run must share a blocksize", v.Label, v.Blocksize, bs), nil, "")
				}
				s.cur = v
			}
			if part == nil {
				p, err := s.startPart(hdr, len(res.Parts)+1, off, stem)
				if errors.Is(err, ErrVolumeFull) || errors.Is(err, ErrEarlyWarning) {
					s.log.Info("volume full before the header of a part; continuing on the next volume", "volume", s.cur.Label)
					if errors.Is(err, ErrEarlyWarning) {
						// The header is on the volume: end its file, and
						// name it, since no part will own it.
						s.cur.Dev.WriteFilemark()
						headerOnly(p, "the volume reached its early warning with it; the part went to the next volume")
					}
					s.cur = nil
					continue
				}
				if err != nil {
					label := s.cur.Label
					s.cur = nil
					return fail(fmt.Errorf("volume %s: %w", label, err), nil, "")
				}
				part = p
			}
			vol := s.cur
			err := s.cur.Dev.WriteRecord(rec.b)
			if err == nil || errors.Is(err, ErrEarlyWarning) {
				res.Idle += drive.wrote(vol, len(rec.b), waited, clk.Now())
			}
			switch {
			case err == nil:
				part.Length += int64(len(rec.b))
				written = true
			case errors.Is(err, ErrEarlyWarning):
				part.Length += int64(len(rec.b))
				written = true
				s.log.Info("early warning: ending the part, the image continues on the next volume", "volume", s.cur.Label, "part", part.Part, "bytes", part.Length)
				label := s.cur.Label
				cut, err := endPart()
				s.cur = nil
				if err != nil {
					return fail(fmt.Errorf("volume %s: write the filemark that ends part %d of %s at the early warning: %w (the volume is given up for this run)", label, cut.Part, stem, err), cut, "its filemark failed, so records the drive buffered may be lost")
				}
			case errors.Is(err, ErrVolumeFull):
				s.log.Info("volume full: the record goes to the next volume", "volume", s.cur.Label, "part", part.Part)
				label := s.cur.Label
				cut, err := endPart()
				s.cur = nil
				if err != nil {
					return fail(fmt.Errorf("volume %s: write the filemark that ends part %d of %s at the end of the volume: %w (the volume is given up for this run)", label, cut.Part, stem, err), cut, "its filemark failed, so records the drive buffered may be lost")
				}
			default:
				why := "no filemark"
				if s.cur.Dev.WriteFilemark() == nil {
					why = "ended with a filemark"
				}
				label := s.cur.Label
				s.cur = nil
				return fail(fmt.Errorf("volume %s: %w (the volume is given up for this run)", label, err), part, why)
			}
		}
		off += int64(len(rec.b))
		res.Bytes = off
		written <- rec.b
		waitFrom = clk.Now()
	}
	if err := ctx.Err(); err != nil {
		cut := part
		why := endCut()
		return fail(err, cut, why)
	}
	if part == nil && off == 0 {
		return fail(fmt.Errorf("image %s has an empty payload", stem), nil, "")
	}
	if part != nil {
		label := s.cur.Label
		if cut, err := endPart(); err != nil {
			s.cur = nil
			return fail(fmt.Errorf("volume %s: write the filemark after %s: %w (the volume is given up for this run)", label, stem, err), cut, "complete, but its filemark failed, so records the drive buffered may be lost")
		}
	}
	stopHasher()
	res.SHA256 = hex.EncodeToString(sum.Sum(nil))
	return res, nil
}

func (s *Scribe) next(ctx context.Context) (*Volume, error) {
	v, err := s.src.Next(ctx)
	if err != nil {
		if errors.Is(err, ErrNoVolume) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", ErrNoVolume, err)
	}
	return v, nil
}

// startPart begins a tape file on the current volume: its name, its
// position, and the header record of part n.
func (s *Scribe) startPart(hdr image.Header, n int, off int64, stem string) (*PartInfo, error) {
	dev := s.cur.Dev
	if dev.Properties().NamesFiles {
		if err := dev.BeginFile(stem); err != nil {
			return nil, err
		}
	}
	pos, err := dev.Tell()
	if err != nil {
		return nil, err
	}
	hdr.Part, hdr.Parts = n, image.Unknown
	hdr.Blocksize = int64(s.cur.Blocksize)
	hb, err := hdr.Marshal()
	if err != nil {
		return nil, err
	}
	p := &PartInfo{Part: n, Volume: s.cur.Label, Slot: s.cur.Slot, Pos: pos, Offset: off}
	if err := dev.WriteRecord(hb); errors.Is(err, ErrEarlyWarning) {
		return p, err // the header is written
	} else if err != nil {
		return nil, err
	}
	s.log.Info("tape file begun", "volume", s.cur.Label, "file", pos.File, "part", n, "image", stem)
	return p, nil
}

// driveModel is a drive that streams at speed bytes/s from a buffer of
// buffer bytes, fed by the records written to it: it tells how long the
// buffer was empty between two records of one volume.
type driveModel struct {
	speed, buffer float64
	vol           *Volume
	backlog       float64 // bytes in the buffer after the last record
	last          time.Time
}

// wrote accounts a record of n bytes written to vol at now, after a wait
// of waited for the source, and returns the time the drive's buffer was
// empty since the record before. That is never more than waited: a
// drive slower than speed (a write that blocked) did not starve.
func (m *driveModel) wrote(vol *Volume, n int, waited time.Duration, now time.Time) time.Duration {
	if m.speed <= 0 {
		return 0
	}
	var idle time.Duration
	if m.vol == vol {
		drained := m.speed * now.Sub(m.last).Seconds()
		if drained > m.backlog {
			idle = min(time.Duration((drained-m.backlog)/m.speed*float64(time.Second)), waited)
		}
		m.backlog = max(m.backlog-drained, 0)
	} else {
		m.vol, m.backlog = vol, 0 // a new volume: the drive starts again
	}
	m.backlog += float64(n)
	if m.buffer > 0 {
		m.backlog = min(m.backlog, m.buffer)
	}
	m.last = now
	return idle
}
