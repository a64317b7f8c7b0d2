package holding

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/tapir-backup/tapir/image"
)

// TmpSuffix marks an image still being written.
const TmpSuffix = ".tmp"

// Writer writes one image into a holding directory.
type Writer struct {
	f     *os.File
	tmp   string
	final string
	n     int64
	sum   hash.Hash
	done  bool
}

// Create starts <dir>/<datestamp>/<stem>.tmp with room for the header.
func Create(dir, datestamp, stem string) (*Writer, error) {
	if stem == "" || strings.ContainsAny(stem, "/\x00") {
		return nil, fmt.Errorf("holding %s: invalid image name %q", dir, stem)
	}
	rundir := filepath.Join(dir, datestamp)
	if err := os.MkdirAll(rundir, 0o750); err != nil {
		return nil, fmt.Errorf("holding %s: %w", dir, err)
	}
	final := filepath.Join(rundir, stem)
	tmp := final + TmpSuffix
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return nil, fmt.Errorf("holding: create image file: %w", err)
	}
	if _, err := f.Write(make([]byte, image.HeaderSize)); err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("holding: write %s: %w", tmp, err)
	}
	return &Writer{f: f, tmp: tmp, final: final, sum: sha256.New()}, nil
}

// Write appends payload bytes.
func (w *Writer) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.n += int64(n)
	w.sum.Write(p[:n])
	if err != nil {
		return n, fmt.Errorf("holding: write %s: %w", w.tmp, err)
	}
	return n, nil
}

// Size is the number of payload bytes written so far.
func (w *Writer) Size() int64 { return w.n }

// SHA256 is the hex SHA-256 of the payload written so far.
func (w *Writer) SHA256() string { return hex.EncodeToString(w.sum.Sum(nil)) }

// TmpPath is the path of the file while it is written.
func (w *Writer) TmpPath() string { return w.tmp }

// Finish checks the payload against h (size and SHA-256 computed here, not
// trusted from the sender), writes h in place of the placeholder, fsyncs,
// renames the file to its final name and fsyncs the directory. On any
// error the .tmp file is removed and nothing is left that looks complete.
func (w *Writer) Finish(h *image.Header) (string, error) {
	if w.done {
		return "", errors.New("holding: image already finished")
	}
	w.done = true
	fail := func(err error) (string, error) {
		w.f.Close()
		os.Remove(w.tmp)
		return "", err
	}
	if h.PayloadSize != w.n {
		return fail(fmt.Errorf("holding %s: received %d payload bytes, the client announced %d", w.tmp, w.n, h.PayloadSize))
	}
	if got := w.SHA256(); h.SHA256 != got {
		return fail(fmt.Errorf("holding %s: SHA-256 of the received payload is %s, the client announced %s: the stream was corrupted in transit", w.tmp, got, h.SHA256))
	}
	hb, err := h.Marshal()
	if err != nil {
		return fail(fmt.Errorf("holding %s: %w", w.tmp, err))
	}
	if _, err := w.f.WriteAt(hb, 0); err != nil {
		return fail(fmt.Errorf("holding: write header of %s: %w", w.tmp, err))
	}
	if err := w.f.Sync(); err != nil {
		return fail(fmt.Errorf("holding: fsync %s: %w", w.tmp, err))
	}
	if err := w.f.Close(); err != nil {
		return fail(fmt.Errorf("holding: close %s: %w", w.tmp, err))
	}
	if err := os.Rename(w.tmp, w.final); err != nil {
		os.Remove(w.tmp)
		return "", fmt.Errorf("holding: rename %s: %w", w.tmp, err)
	}
	if err := syncDir(filepath.Dir(w.final)); err != nil {
		return "", fmt.Errorf("holding: fsync directory of %s: %w", w.final, err)
	}
	return w.final, nil
}

// Abort removes the partial file.
func (w *Writer) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	w.f.Close()
	if err := os.Remove(w.tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("holding: remove partial image %s: %w", w.tmp, err)
	}
	return nil
}

// Open opens a complete holding image and parses its header. The file is
// positioned at the start of the payload.
func Open(path string) (*image.Header, *os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("holding: %w", err)
	}
	h, err := image.ReadHeader(f)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("holding %s: %w", path, err)
	}
	return h, f, nil
}

// Remove deletes a holding image that is safe on a volume, and its run
// directory when that is left empty.
func Remove(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("holding: remove %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	os.Remove(dir) // fails harmlessly while other images remain
	return syncDir(filepath.Dir(dir))
}

// Verify re-reads a holding image and checks its payload against its header.
func Verify(path string) (*image.Header, error) {
	h, f, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := image.VerifyPayload(io.Reader(f), h); err != nil {
		return h, fmt.Errorf("holding %s: %w", path, err)
	}
	return h, nil
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
