package indexd

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/wire"
)

// plan is what a restore of a selection reads: per image, the entries and
// the frames that hold them.
type plan struct {
	images  []wire.ImageInfo
	dumps   []catalog.Dump
	entries []wire.EntryInfo // Image = index in images; per image in tar order
	frames  [][]image.Frame  // per image, in order
	// sealed: per encrypted image, what is sent of each frame (nil for a
	// plain image); reads: per image, the payload ranges read (the frames,
	// or the ciphertext of an encrypted image's sealed frames).
	sealed [][]sealedFrame
	reads  [][]image.Frame
	parts  [][]catalog.Part // per image, all its parts (none: the holding disk)
	needed []string         // the volumes the reads load, in order
}

// plan resolves the selection (paths relative to the DLE root; "/" or ""
// is the whole DLE) in the view into the entries and frames to send. The
// work is bounded: at most wire.MaxRequestPaths paths, looked up one
// directory at a time (not one directory listing per path), each subtree
// walked once, at most wire.MaxPlanEntries entries; and it stops when ctx
// is done (the shell went away).
func (s *Server) plan(ctx context.Context, v *catalog.View, paths []string) (*plan, error) {
	if len(paths) == 0 {
		return nil, errors.New("nothing to extract: add files or directories first")
	}
	if len(paths) > wire.MaxRequestPaths {
		return nil, fmt.Errorf("the extraction list holds %d paths; one extract takes at most %d: add their directories instead, or extract in several steps", len(paths), wire.MaxRequestPaths)
	}
	step := func() error {
		if s.hooks.planStep != nil {
			s.hooks.planStep(ctx)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("planning the extraction stopped: %w", context.Cause(ctx))
		}
		return nil
	}
	// The selection, in the order found, and where each path is in it.
	var recs []catalog.ViewRecord
	sel := map[string]int{}
	add := func(r catalog.ViewRecord) error {
		if _, ok := sel[r.Path]; ok {
			return nil
		}
		if len(sel) >= wire.MaxPlanEntries {
			return fmt.Errorf("the selection holds more than %d entries; extract it in smaller pieces", wire.MaxPlanEntries)
		}
		if len(sel)%1024 == 1023 {
			if err := step(); err != nil {
				return err
			}
		}
		sel[r.Path] = len(recs)
		recs = append(recs, r)
		return nil
	}
	picked, err := s.lookup(ctx, v, paths, step)
	if err != nil {
		return nil, err
	}
	// A path under a selected directory comes with its walk: walk each
	// subtree once, however many of its paths were named.
	dirs := map[string]bool{}
	for _, r := range picked {
		if covered(r.Path, dirs) {
			continue
		}
		if r.Path != "" {
			if err := add(r); err != nil {
				return nil, err
			}
		}
		if r.IsDir() {
			dirs[r.Path] = true
			if err := step(); err != nil {
				return nil, err
			}
			if err := v.Walk(ctx, r.Path, add); err != nil {
				return nil, err
			}
		}
	}
	// Each image's entries, in slices of their final size: a whole DLE
	// is hundreds of thousands of entries, and growing slices of them
	// cost the plan a third of its time.
	perDump := map[int]int{}
	for i := range recs {
		perDump[recs[i].Dump]++
	}
	byDump := make(map[int][]wire.EntryInfo, len(perDump))
	for d, n := range perDump {
		byDump[d] = make([]wire.EntryInfo, 0, n)
	}
	for i := range recs {
		if i%1024 == 1023 {
			if err := step(); err != nil {
				return nil, err
			}
		}
		r := &recs[i]
		e := entryOf(*r)
		if r.Type == '1' {
			// A hard link: kept as a link when its target is restored from
			// the same image (earlier in its stream); otherwise the target's
			// data is restored under the link's name.
			if t, ok := sel[r.Link]; !ok || recs[t].Dump != r.Dump {
				tr, err := s.Catalog.Entry(ctx, v.Chain[r.Dump].ID, r.Link)
				if err != nil {
					return nil, fmt.Errorf("%s is a hard link to %s, which its image does not hold: %w", r.Path, r.Link, err)
				}
				e = entryOf(catalog.ViewRecord{FileRecord: *tr, Dump: r.Dump})
				e.Source, e.Path = tr.Path, r.Path
			}
		}
		byDump[r.Dump] = append(byDump[r.Dump], e)
	}
	var idx []int
	for i := range byDump {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	p := &plan{entries: make([]wire.EntryInfo, 0, len(recs))}
	for _, ci := range idx {
		d := v.Chain[ci]
		es := byDump[ci]
		slices.SortStableFunc(es, func(a, b wire.EntryInfo) int { return cmp.Compare(a.TarOffset, b.TarOffset) })
		frames, err := s.framesFor(ctx, d, es)
		if err != nil {
			return nil, err
		}
		pi := len(p.images)
		ii := s.imageInfo(ctx, d, true)
		ii.Entries, ii.Frames = len(es), len(frames)
		reads := frames
		var sealed []sealedFrame
		if d.Encrypted() && len(frames) > 0 {
			if sealed, err = sealFrames(d, frames); err != nil {
				return nil, err
			}
			reads = cipherReads(sealed)
		}
		for _, f := range reads {
			ii.Bytes += f.Size
		}
		for i := range es {
			es[i].Image = pi
		}
		parts, err := partsToRead(ctx, s.Catalog, s.Volumes, d)
		if err != nil {
			return nil, fmt.Errorf("level %d image %s of %s:%s: read its parts: %w", d.Level, d.Datestamp, d.Host, d.Path, err)
		}
		p.images = append(p.images, ii)
		p.dumps = append(p.dumps, d)
		p.frames = append(p.frames, frames)
		p.sealed = append(p.sealed, sealed)
		p.reads = append(p.reads, reads)
		p.parts = append(p.parts, parts)
		p.entries = append(p.entries, es...)
	}
	return p.inTapeOrder(), nil
}

// inTapeOrder reorders the plan's images into the order a restore reads
// them: the holding disk first, then one forward pass per volume
// (TapeOrder over the parts that hold the frames asked for), and fills in
// the volumes the reads load. Each entry comes from exactly one image, so
// the order of the images changes nothing else: a hard link is kept as a
// link only with its target in the same image, and the shell sets the
// directories' times after the last image.
func (p *plan) inTapeOrder() *plan {
	reads := make([][]catalog.Part, len(p.dumps))
	for i := range p.dumps {
		reads[i] = PartsFor(p.parts[i], p.reads[i])
	}
	order := TapeOrder(reads)
	if slices.Equal(order, rangeOf(len(order))) {
		// Already in tape order (one image, or a chain on one volume): the
		// entries stay where they are, not copied.
		p.needed = Needed(reads)
		return p
	}
	q := &plan{entries: make([]wire.EntryInfo, 0, len(p.entries))}
	// p.entries holds each image's entries in one run, in image order.
	byImage := make([][]wire.EntryInfo, len(p.dumps))
	for start := 0; start < len(p.entries); {
		i, end := p.entries[start].Image, start
		for end < len(p.entries) && p.entries[end].Image == i {
			end++
		}
		byImage[i] = p.entries[start:end]
		start = end
	}
	sorted := make([][]catalog.Part, 0, len(order))
	for ni, oi := range order {
		q.images = append(q.images, p.images[oi])
		q.dumps = append(q.dumps, p.dumps[oi])
		q.frames = append(q.frames, p.frames[oi])
		q.sealed = append(q.sealed, p.sealed[oi])
		q.reads = append(q.reads, p.reads[oi])
		q.parts = append(q.parts, p.parts[oi])
		sorted = append(sorted, reads[oi])
		n := len(q.entries)
		q.entries = append(q.entries, byImage[oi]...)
		for k := n; k < len(q.entries); k++ {
			q.entries[k].Image = ni
		}
	}
	q.needed = Needed(sorted)
	return q
}

// rangeOf returns 0, 1, ..., n-1.
func rangeOf(n int) []int {
	r := make([]int, n)
	for i := range r {
		r[i] = i
	}
	return r
}

// lookup returns the records of the paths (cleaned, each once, sorted),
// reading each directory of the view once for all the names asked in it.
func (s *Server) lookup(ctx context.Context, v *catalog.View, paths []string, step func() error) ([]catalog.ViewRecord, error) {
	byDir := map[string][]string{}
	for _, p := range paths {
		c, err := cleanPath(p)
		if err != nil {
			return nil, err
		}
		dir, name := "", c
		if i := strings.LastIndexByte(c, '/'); i >= 0 {
			dir, name = c[:i], c[i+1:]
		}
		if c == "" {
			dir, name = "\x00root", ""
		}
		byDir[dir] = append(byDir[dir], name)
	}
	var out []catalog.ViewRecord
	for _, dir := range slices.Sorted(maps.Keys(byDir)) {
		names := byDir[dir]
		if err := step(); err != nil {
			return nil, err
		}
		slices.Sort(names)
		names = slices.Compact(names)
		if len(names) == 1 {
			p := names[0]
			if dir != "\x00root" && dir != "" {
				p = dir + "/" + p
			}
			r, err := v.Stat(ctx, p)
			if err != nil {
				return nil, err
			}
			out = append(out, *r)
			continue
		}
		recs, err := v.Records(ctx, dir)
		if err != nil {
			// Say it as a lookup of the first path would.
			_, serr := v.Stat(ctx, path.Join(dir, names[0]))
			return nil, cmp.Or(serr, err)
		}
		byName := make(map[string]int, len(recs))
		for i, r := range recs {
			byName[path.Base(r.Path)] = i
		}
		for _, n := range names {
			i, ok := byName[n]
			if !ok {
				_, err := v.Stat(ctx, path.Join(dir, n))
				return nil, cmp.Or(err, fmt.Errorf("%s is not in the backup", path.Join(dir, n)))
			}
			out = append(out, recs[i])
		}
	}
	slices.SortFunc(out, func(a, b catalog.ViewRecord) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}

// covered reports whether p is under one of the directories.
func covered(p string, dirs map[string]bool) bool {
	if len(dirs) == 0 {
		return false
	}
	if dirs[""] {
		return true
	}
	for i := len(p) - 1; i > 0; i-- {
		if p[i] == '/' && dirs[p[:i]] {
			return true
		}
	}
	return false
}

// framesFor returns the frames of an image that hold the entries: from the
// frame of each entry's first header to the frame of its last byte (the
// next entry's start when the span is known, the end of the stream
// otherwise). Directories with no entry of their own (tar offset 0: the
// DLE root's entry is never indexed) need no frame.
func (s *Server) framesFor(ctx context.Context, d catalog.Dump, es []wire.EntryInfo) ([]image.Frame, error) {
	need := false
	for _, e := range es {
		if e.TarOffset > 0 {
			need = true
		}
	}
	if !need {
		return nil, nil
	}
	all, err := s.Catalog.Frames(ctx, d.ID)
	if err != nil {
		return nil, err
	}
	if len(all) == 0 || d.FrameSize <= 0 {
		return nil, fmt.Errorf("the frame list of level %d image %s of %s:%s is not in the catalog; rebuild the catalog from the volumes (tapir admin rebuild)", d.Level, d.Datestamp, d.Host, d.Path)
	}
	want := make([]bool, len(all))
	for _, e := range es {
		if e.TarOffset <= 0 {
			continue
		}
		first := e.TarOffset / d.FrameSize
		last := int64(len(all) - 1)
		if e.Span > 0 {
			last = min(last, (e.TarOffset+e.Span-1)/d.FrameSize)
		}
		if first > last {
			return nil, fmt.Errorf("%s: tar offset %d is past the %d frames of level %d image %s; the catalog does not match the image (rebuild it)", e.Path, e.TarOffset, len(all), d.Level, d.Datestamp)
		}
		for i := first; i <= last; i++ {
			want[i] = true
		}
	}
	var out []image.Frame
	for i, w := range want {
		if w {
			out = append(out, all[i])
		}
	}
	return out, nil
}

// restore sends the plan, then the frames of each image, one image after
// the other, in the plan's (tape) order. One Pass lends the volumes to all
// the images: the next image on the volume in the drive is reached by
// locating forward, without a rewind or a second label read. An image
// that cannot be read is reported (ImageStart with Error) and the others
// are still sent.
func (ss *session) restore(ctx context.Context, p *plan) error {
	start := time.Now()
	if err := ss.entries(withCrypt(wire.IndexReply{OK: true, Images: p.images, Count: len(p.entries), Needed: p.needed}, p.dumps, true), p.entries); err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	send := func(m wire.RestoreMsg) error {
		ss.nc.SetWriteDeadline(time.Now().Add(ss.s.stall()))
		return ss.c.WriteMsg(m)
	}
	var vols VolumeSource // nil: no changer (openPart says so)
	if ss.s.Volumes != nil {
		pass := &Pass{Source: ss.s.Volumes}
		defer pass.Close()
		if ss.s.Volumes.Properties().WaitsForPerson {
			pass.Ask = func(msg string) { ss.ask(msg, cancel) }
		}
		vols = pass
	}
	links := ss.s.Peers.Links(ss.s.Catalog)
	defer links.Close()
	var sent int64
	for i, d := range p.dumps {
		if len(p.frames[i]) == 0 {
			if err := send(wire.RestoreMsg{Image: &wire.ImageStart{Image: i, Where: "the catalog (directories only)"}}); err != nil {
				return err
			}
			continue
		}
		is := NewImageReader(ctx, vols, ss.s.Holding, d, p.parts[i])
		is.Peers = links
		// A volume this server, or the other one, waits for is asked of
		// the shell.
		is.Ask = func(msg string) { ss.ask(msg, cancel) }
		n, err := ss.sendImage(ctx, i, is, p.frames[i], p.sealed[i])
		sent += n
		var ce *connError
		if errors.As(err, &ce) {
			return ce.err
		}
		if err != nil {
			ss.log.Warn("restore: image not sent", "datestamp", d.Datestamp, "level", d.Level, "err", err)
			msg, _ := ss.s.explain(err)
			if err := send(wire.RestoreMsg{Image: &wire.ImageStart{Image: i, Error: msg}}); err != nil {
				return err
			}
		}
	}
	if err := send(wire.RestoreMsg{End: &wire.RestoreEnd{}}); err != nil {
		return err
	}
	ss.log.Info("restore sent", "entries", len(p.entries), "images", len(p.dumps), "volumes", strings.Join(p.needed, " "), "payload_bytes", sent, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// ask tells the shell what a person must do for the restore to go on (a
// volume to insert), while the source waits for it. Nothing else is
// written until the volume is there, however long that takes: the write
// deadline is cleared once the question is out, and the next write sets
// its own. A question that cannot be written ends the restore (cancel):
// nobody is there to answer it.
func (ss *session) ask(msg string, cancel context.CancelCauseFunc) {
	ss.log.Info("restore: asking the shell for a volume", "ask", msg)
	ss.nc.SetWriteDeadline(time.Now().Add(ss.s.stall()))
	if err := ss.c.WriteMsg(wire.RestoreMsg{Ask: &wire.VolumeAsk{Msg: msg}}); err != nil {
		cancel(fmt.Errorf("%w: asking it for a volume (%s): %v", errPeerGone, msg, err))
		return
	}
	ss.nc.SetWriteDeadline(time.Time{})
}

// connError is a failure to write to the shell: the session ends.
type connError struct{ err error }

func (e *connError) Error() string { return e.err.Error() }

// sendImage sends the frames of image i, read with is (closed at the end):
// as they are on the volume, or, for an encrypted image (sealed set), the
// ciphertext of the age chunks that hold them.
func (ss *session) sendImage(ctx context.Context, i int, is *ImageReader, frames []image.Frame, sealed []sealedFrame) (int64, error) {
	defer is.close()
	rangeOf := func(k int) (off, size int64) {
		if sealed != nil {
			return sealed[k].off, sealed[k].n
		}
		return frames[k].Offset, frames[k].Size
	}
	expect := make([]wire.Range, 0, len(frames))
	for k := range frames {
		if off, size := rangeOf(k); size > 0 {
			expect = append(expect, wire.Range{Off: off, Len: size})
		}
	}
	is.Expect(expect)
	var sent int64
	var buf []byte
	announced := 0
	for k, f := range frames {
		if ctx.Err() != nil {
			return sent, &connError{context.Cause(ctx)}
		}
		off, size := rangeOf(k)
		msg := wire.RestoreMsg{Chunk: &wire.Chunk{Image: i, Frame: f.Index, TarOffset: f.TarOffset, TarSize: f.TarSize, Size: f.Size}}
		if sealed != nil {
			s := sealed[k].msg
			s.Image = i
			msg = wire.RestoreMsg{Sealed: &s}
		}
		if int64(cap(buf)) < size {
			buf = make([]byte, size)
		}
		b := buf[:size]
		if size == 0 {
			// Its only chunk went with the frame before.
		} else if err := is.readAt(b, off); err != nil {
			if ctx.Err() != nil { // the shell left while the read waited (for a volume)
				return sent, &connError{context.Cause(ctx)}
			}
			return sent, err
		}
		for ; announced < len(is.where); announced++ {
			ss.nc.SetWriteDeadline(time.Now().Add(ss.s.stall()))
			if err := ss.c.WriteMsg(wire.RestoreMsg{Image: &wire.ImageStart{Image: i, Where: is.where[announced]}}); err != nil {
				return sent, &connError{err}
			}
		}
		ss.nc.SetWriteDeadline(time.Now().Add(ss.s.stall()))
		if err := ss.c.WriteMsg(msg); err != nil {
			return sent, &connError{err}
		}
		if _, err := (wire.DataWriter{C: ss.c, Chunk: 1 << 20}).Write(b); err != nil {
			return sent, &connError{err}
		}
		sent += size
	}
	if err := ss.c.Flush(); err != nil {
		return sent, &connError{err}
	}
	return sent, nil
}
