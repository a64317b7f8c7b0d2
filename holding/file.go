package holding

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/tapir-backup/tapir/image"
)

// TmpSuffix marks a file still being written.
const TmpSuffix = ".tmp"

// ChunksKey is the header key (image.Header.Extra) that tells how many
// chunk files a holding image has; it is absent when there is one. The
// taper drops it from the header it writes on a volume.
const ChunksKey = "holding-chunks"

// ErrDiskFull is matched by a write that the filesystem refused for lack
// of space (ENOSPC, EDQUOT) although the pool had reserved it: something
// else filled the disk.
var ErrDiskFull = errors.New("holding filesystem is full")

// writebackStep is how many bytes of a chunk file a writer lets the page
// cache gather before it asks the kernel to start writing them out
// (startWriteback): the disk writes while the dump goes on, and the fsync
// that makes the image durable (Prepare) waits for the last step only.
const writebackStep = 8 << 20

// growStep is how much more a writer reserves when its image outgrows
// the estimate: a tenth of what it has written, at least 16 MiB.
func growStep(written int64) int64 { return max(written/10, 16<<20) }

// Writer writes one image onto the holding disks: the 32 KiB header
// (a placeholder until Prepare), then the payload, cut into chunk files
// of at most the disk's chunksize: <disk>/<datestamp>/<stem>,
// <stem>.1, <stem>.2 ... (the later ones possibly on other disks), each
// named with .tmp until Commit. Every byte is taken from a Space first.
type Writer struct {
	ctx       context.Context
	space     *Space
	datestamp string
	stem      string

	chunks []*chunk
	cur    *chunk
	n      int64 // payload bytes
	sum    hash.Hash
	hdr    bool // the header placeholder is written
	state  int  // 0 writing, 1 prepared, 2 committed, 3 aborted
	final  string
}

type chunk struct {
	f     *os.File
	disk  int
	final string // path without .tmp
	size  int64  // bytes written (incl. the header in chunk 0)
	limit int64  // bytes granted for this file
	wb    int64  // the bytes before this offset are being written back
}

// Create starts an image in space s. ctx bounds the waits for more space
// (Grow) when the image outgrows its reservation.
func Create(ctx context.Context, s *Space, datestamp, stem string) (*Writer, error) {
	if stem == "" || strings.ContainsAny(stem, "/\x00") || strings.HasPrefix(stem, ".") {
		return nil, fmt.Errorf("holding: invalid image name %q", stem)
	}
	if len(datestamp) != 14 || strings.Trim(datestamp, "0123456789") != "" {
		return nil, fmt.Errorf("holding: invalid run datestamp %q", datestamp)
	}
	w := &Writer{ctx: ctx, space: s, datestamp: datestamp, stem: stem, sum: sha256.New()}
	if err := w.write(make([]byte, image.HeaderSize)); err != nil {
		w.Abort()
		return nil, err
	}
	w.hdr = true
	return w, nil
}

// Write appends payload bytes.
func (w *Writer) Write(p []byte) (int, error) {
	if w.state != 0 {
		return 0, errors.New("holding: write after the image was finished")
	}
	if err := w.write(p); err != nil {
		return 0, err
	}
	w.n += int64(len(p))
	w.sum.Write(p)
	return len(p), nil
}

func (w *Writer) write(p []byte) error {
	for len(p) > 0 {
		if w.cur == nil || w.cur.size >= w.cur.limit {
			if err := w.room(int64(len(p))); err != nil {
				return err
			}
			continue
		}
		n := min(int64(len(p)), w.cur.limit-w.cur.size)
		k, err := w.cur.f.Write(p[:n])
		w.cur.size += int64(k)
		w.space.fill(w.cur.disk, int64(k))
		if c := w.cur; c.size-c.wb >= writebackStep {
			startWriteback(c.f, c.wb, c.size-c.wb)
			c.wb = c.size
		}
		p = p[k:]
		if err != nil {
			if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
				return fmt.Errorf("holding: write %s: %w (%v); free space there or lower its `use`", w.cur.f.Name(), ErrDiskFull, err)
			}
			return fmt.Errorf("holding: write %s: %w", w.cur.f.Name(), err)
		}
	}
	return nil
}

// room makes the current chunk writable: more room in it on the same disk,
// else a new chunk file where the reservation has room, else a larger
// reservation.
func (w *Writer) room(want int64) error {
	if c := w.cur; c != nil {
		cs := w.space.chunksize(c.disk)
		if c.size < cs {
			if _, g := w.space.take(c.disk, cs-c.size); g > 0 {
				c.limit += g
				return nil
			}
		}
	}
	i, g := w.space.take(-1, w.space.chunksize(max(w.diskOr0(), 0)))
	if g == 0 {
		// Ask for a good step, but never for more than the disks could
		// give: what the write needs is the minimum.
		step := min(max(growStep(w.n), want), max(w.space.p.Total()-w.space.Reserved(), want))
		if err := w.space.Grow(w.ctx, step); err != nil {
			return fmt.Errorf("holding: image %s after %d bytes: %w", w.stem, w.n, err)
		}
		return nil
	}
	if len(w.chunks) == 0 && g < image.HeaderSize {
		return fmt.Errorf("holding: image %s: the reservation is spread too thin over the holding disks to hold the %d-byte header in one file", w.stem, image.HeaderSize)
	}
	if g > w.space.chunksize(i) {
		g = w.space.chunksize(i)
	}
	dir := filepath.Join(w.space.diskPath(i), w.datestamp)
	// The run directory is created here, the disk never (CheckDisk): a
	// disk unmounted during the run fails the image instead of filling
	// the filesystem under its mount point.
	if err := os.Mkdir(dir, 0o750); err != nil && !errors.Is(err, os.ErrExist) {
		if cerr := CheckDisk(w.space.diskPath(i)); cerr != nil {
			return cerr
		}
		return fmt.Errorf("holding disk %s: %w", w.space.diskPath(i), err)
	}
	name := w.stem
	if k := len(w.chunks); k > 0 {
		name += "." + strconv.Itoa(k)
	}
	final := filepath.Join(dir, name)
	f, err := os.OpenFile(final+TmpSuffix, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("holding: create %s: %w", final+TmpSuffix, err)
	}
	w.cur = &chunk{f: f, disk: i, final: final, limit: g}
	w.chunks = append(w.chunks, w.cur)
	return nil
}

func (w *Writer) diskOr0() int {
	if w.cur == nil {
		return 0
	}
	return w.cur.disk
}

// Size is the number of payload bytes written so far.
func (w *Writer) Size() int64 { return w.n }

// SHA256 is the hex SHA-256 of the payload written so far.
func (w *Writer) SHA256() string { return hex.EncodeToString(w.sum.Sum(nil)) }

// TmpPath is the path of the first chunk while it is written.
func (w *Writer) TmpPath() string {
	if len(w.chunks) == 0 {
		return ""
	}
	return w.chunks[0].final + TmpSuffix
}

// Prepare checks the payload against h (size and SHA-256 computed here,
// not trusted from the sender), writes h (with the chunk count) over the
// placeholder and fsyncs every chunk. The files keep their .tmp names: the
// caller records the image (at the returned final path) in the catalog and
// then calls Commit, so that a complete holding file is always known to the
// catalog. On error everything is removed.
func (w *Writer) Prepare(h *image.Header) (string, error) {
	if w.state != 0 {
		return "", errors.New("holding: image already finished")
	}
	fail := func(err error) (string, error) {
		w.Abort()
		return "", err
	}
	if h.PayloadSize != w.n {
		return fail(fmt.Errorf("holding %s: received %d payload bytes, the client announced %d", w.TmpPath(), w.n, h.PayloadSize))
	}
	if got := w.SHA256(); h.SHA256 != got {
		return fail(fmt.Errorf("holding %s: SHA-256 of the received payload is %s, the client announced %s: the stream was corrupted in transit", w.TmpPath(), got, h.SHA256))
	}
	hh := *h
	hh.Extra = map[string]string{}
	for k, v := range h.Extra {
		hh.Extra[k] = v
	}
	delete(hh.Extra, ChunksKey)
	if len(w.chunks) > 1 {
		hh.Extra[ChunksKey] = strconv.Itoa(len(w.chunks))
	}
	hb, err := hh.Marshal()
	if err != nil {
		return fail(fmt.Errorf("holding %s: %w", w.TmpPath(), err))
	}
	if _, err := w.chunks[0].f.WriteAt(hb, 0); err != nil {
		return fail(fmt.Errorf("holding: write header of %s: %w", w.TmpPath(), err))
	}
	for _, c := range w.chunks {
		if err := c.f.Sync(); err != nil {
			return fail(fmt.Errorf("holding: fsync %s: %w", c.f.Name(), err))
		}
		if err := c.f.Close(); err != nil {
			return fail(fmt.Errorf("holding: close %s: %w", c.f.Name(), err))
		}
		c.f = nil
	}
	w.space.Shrink()
	w.state = 1
	w.final = w.chunks[0].final
	return w.final, nil
}

// Commit gives the prepared chunks their final names (the first one
// last, so that its presence means the image is whole) and fsyncs the
// directories.
func (w *Writer) Commit() error {
	if w.state != 1 {
		return errors.New("holding: commit of an image that is not prepared")
	}
	if err := commitChunks(w.paths()); err != nil {
		return err
	}
	w.state = 2
	return nil
}

func (w *Writer) paths() []string {
	ps := make([]string, len(w.chunks))
	for i, c := range w.chunks {
		ps[i] = c.final
	}
	return ps
}

// commitChunks renames path.tmp to path for every chunk that still has
// its .tmp name, the first chunk last.
func commitChunks(paths []string) error {
	dirs := map[string]bool{}
	for i := len(paths) - 1; i >= 0; i-- {
		p := paths[i]
		if _, err := os.Stat(p + TmpSuffix); errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err := os.Rename(p+TmpSuffix, p); err != nil {
			return fmt.Errorf("holding: rename %s: %w", p+TmpSuffix, err)
		}
		dirs[filepath.Dir(p)] = true
	}
	for d := range dirs {
		if err := syncDir(d); err != nil {
			return fmt.Errorf("holding: fsync directory %s: %w", d, err)
		}
	}
	return nil
}

// Finish is Prepare then Commit, for callers that record the image after
// it is complete.
func (w *Writer) Finish(h *image.Header) (string, error) {
	p, err := w.Prepare(h)
	if err != nil {
		return "", err
	}
	if err := w.Commit(); err != nil {
		return "", err
	}
	return p, nil
}

// Abort removes the image (every chunk, .tmp or committed) and gives its
// space back. It is safe to call more than once and after Finish only when
// the image must go (the caller could not record it).
func (w *Writer) Abort() error {
	if w.state == 3 {
		return nil
	}
	w.state = 3
	var errs []error
	// The first chunk goes last, as in Remove: a crash in between never
	// leaves later chunks without the first one that names them.
	for k := len(w.chunks) - 1; k >= 0; k-- {
		c := w.chunks[k]
		if c.f != nil {
			c.f.Close()
		}
		for _, p := range []string{c.final + TmpSuffix, c.final} {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("holding: remove partial image %s: %w", p, err))
			}
		}
		os.Remove(filepath.Dir(c.final))
	}
	w.space.Free()
	return errors.Join(errs...)
}

// Image is a complete holding image opened for reading: its header and its
// payload across the chunk files.
type Image struct {
	Header *image.Header
	Paths  []string // the chunk files, in order
	Size   int64    // payload bytes (sum of the files minus the header)

	mu    sync.RWMutex // ReadAt may run in a read-ahead goroutine while Close is called
	files []*os.File
	ends  []int64 // payload offset at which each chunk ends
}

// chunkPaths finds the chunk files of the image whose first chunk is
// path: <dir>/<stem>.<k>, in the same run directory of path's disk or of
// any of the other holding disks. With tmpOK, a chunk may still carry its
// .tmp name (salvage after a crash between Prepare and Commit).
func chunkPaths(path string, n int, disks []string, tmpOK bool) ([]string, error) {
	ps := []string{path}
	run := filepath.Base(filepath.Dir(path))
	stem := filepath.Base(path)
	dirs := []string{filepath.Dir(path)}
	for _, d := range disks {
		if dd := filepath.Join(d, run); dd != dirs[0] {
			dirs = append(dirs, dd)
		}
	}
	for k := 1; k < n; k++ {
		name := stem + "." + strconv.Itoa(k)
		found := ""
		for _, d := range dirs {
			for _, suf := range []string{"", TmpSuffix} {
				if suf != "" && !tmpOK {
					continue
				}
				if fi, err := os.Stat(filepath.Join(d, name+suf)); err == nil && fi.Mode().IsRegular() {
					found = filepath.Join(d, name)
					break
				}
			}
			if found != "" {
				break
			}
		}
		if found == "" {
			return nil, fmt.Errorf("chunk %d of %d (%s) is missing from the holding disks", k+1, n, name)
		}
		ps = append(ps, found)
	}
	return ps, nil
}

// OpenImage opens the holding image whose first chunk is path; disks are
// the holding disks where later chunks may be. It checks that the header
// parses and that every chunk is there, not the SHA-256 (Verify does).
func OpenImage(path string, disks []string) (*Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("holding: %w", err)
	}
	h, err := image.ReadHeader(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("holding %s: %w", path, err)
	}
	n, err := chunkCount(h)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("holding %s: %w", path, err)
	}
	paths, err := chunkPaths(path, n, disks, false)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("holding %s: %w", path, err)
	}
	im := &Image{Header: h, Paths: paths, files: []*os.File{f}}
	for _, p := range paths[1:] {
		cf, err := os.Open(p)
		if err != nil {
			im.Close()
			return nil, fmt.Errorf("holding %s: %w", path, err)
		}
		im.files = append(im.files, cf)
	}
	for i, cf := range im.files {
		fi, err := cf.Stat()
		if err != nil {
			im.Close()
			return nil, fmt.Errorf("holding %s: %w", cf.Name(), err)
		}
		sz := fi.Size()
		if i == 0 {
			sz -= image.HeaderSize
		}
		im.Size += sz
		im.ends = append(im.ends, im.Size)
	}
	return im, nil
}

func chunkCount(h *image.Header) (int, error) {
	v, ok := h.Extra[ChunksKey]
	if !ok {
		return 1, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 1<<20 {
		return 0, fmt.Errorf("header key %s: %q is not a chunk count", ChunksKey, v)
	}
	return n, nil
}

// ReadAt reads payload bytes at payload offset off, across chunk files.
func (im *Image) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("holding: negative offset")
	}
	im.mu.RLock()
	defer im.mu.RUnlock()
	if im.files == nil {
		return 0, fmt.Errorf("holding %s: %w", im.Paths[0], os.ErrClosed)
	}
	total := 0
	for len(p) > 0 {
		if off >= im.Size {
			return total, io.EOF
		}
		i := 0
		for im.ends[i] <= off {
			i++
		}
		start := int64(0)
		if i > 0 {
			start = im.ends[i-1]
		}
		fileOff := off - start
		if i == 0 {
			fileOff += image.HeaderSize
		}
		n := min(int64(len(p)), im.ends[i]-off)
		k, err := im.files[i].ReadAt(p[:n], fileOff)
		total += k
		off += int64(k)
		p = p[k:]
		if err != nil && !(errors.Is(err, io.EOF) && int64(k) == n) {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return total, fmt.Errorf("holding %s: %w", im.files[i].Name(), err)
		}
	}
	return total, nil
}

// Reader returns the payload as a stream.
func (im *Image) Reader() io.Reader { return io.NewSectionReader(im, 0, im.Size) }

// Close closes the chunk files.
func (im *Image) Close() error {
	im.mu.Lock()
	defer im.mu.Unlock()
	var errs []error
	for _, f := range im.files {
		if err := f.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	im.files = nil
	return errors.Join(errs...)
}

// Remove deletes a holding image (every chunk) that is safe on a volume,
// and the run directories left empty.
func Remove(path string, disks []string) error {
	paths := []string{path}
	if im, err := OpenImage(path, disks); err == nil {
		paths = im.Paths
		im.Close()
	} else {
		paths = append(paths, continuations(path, disks)...)
	}
	var errs []error
	for i := len(paths) - 1; i >= 0; i-- {
		p := paths[i]
		for _, q := range []string{p, p + TmpSuffix} {
			if err := os.Remove(q); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("holding: remove %s: %w", q, err))
			}
		}
		dir := filepath.Dir(p)
		os.Remove(dir) // fails harmlessly while other images remain
		if err := syncDir(filepath.Dir(dir)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// continuations finds the files that look like later chunks of the image
// whose first chunk is path (<stem>.<k>[.tmp] in its run directory on any
// disk) and are not images themselves (no image header), for removing a
// damaged image whose header no longer says how many chunks it has.
func continuations(path string, disks []string) []string {
	run := filepath.Base(filepath.Dir(path))
	stem := filepath.Base(path)
	dirs := map[string]bool{filepath.Dir(path): true}
	for _, d := range disks {
		dirs[filepath.Join(d, run)] = true
	}
	var out []string
	for d := range dirs {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			rest, ok := strings.CutPrefix(e.Name(), stem+".")
			rest = strings.TrimSuffix(rest, TmpSuffix)
			if !ok || rest == "" || strings.Trim(rest, "0123456789") != "" {
				continue
			}
			p := filepath.Join(d, e.Name())
			if looksLikeImage(p) {
				continue
			}
			out = append(out, strings.TrimSuffix(p, TmpSuffix))
		}
	}
	return out
}

// looksLikeImage reports whether the file starts with an image header.
func looksLikeImage(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	b := make([]byte, len(image.FileMagic))
	_, err = io.ReadFull(f, b)
	return err == nil && string(b) == image.FileMagic
}

// Verify re-reads a holding image and checks its payload against its
// header: size, SHA-256, and for zstd the seek table.
func Verify(path string, disks []string) (*image.Header, error) {
	im, err := OpenImage(path, disks)
	if err != nil {
		return nil, err
	}
	defer im.Close()
	if im.Size != im.Header.PayloadSize {
		return im.Header, fmt.Errorf("holding %s: %d payload bytes on disk, the header says %d (truncated or grown)", path, im.Size, im.Header.PayloadSize)
	}
	if err := image.VerifyPayload(im.Reader(), im.Header); err != nil {
		return im.Header, fmt.Errorf("holding %s: %w", path, err)
	}
	return im.Header, nil
}

// Salvage finishes the commit of an image that a crash interrupted
// between Prepare and Commit: the catalog knows it at path, but its
// chunks still carry .tmp names. It returns nil when path now exists.
func Salvage(path string, disks []string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	f, err := os.Open(path + TmpSuffix)
	if err != nil {
		return fmt.Errorf("holding: %w", err)
	}
	h, err := image.ReadHeader(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("holding %s: %w", path+TmpSuffix, err)
	}
	n, err := chunkCount(h)
	if err != nil {
		return fmt.Errorf("holding %s: %w", path+TmpSuffix, err)
	}
	paths, err := chunkPaths(path, n, disks, true)
	if err != nil {
		return fmt.Errorf("holding %s: %w", path+TmpSuffix, err)
	}
	return commitChunks(paths)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	defer d.Close()
	return d.Sync()
}
