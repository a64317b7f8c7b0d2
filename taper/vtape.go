package taper

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// DefaultBlocksize is the record size a vtape assumes for a volume whose
// label does not tell (blank or foreign volumes).
const DefaultBlocksize = 256 << 10

// FirstRecordSize is the size of record 0 of every file on a vtape: the
// label in file 0, the image header in data files. Later records of a file
// are the volume's blocksize, the last one may be shorter.
const FirstRecordSize = LabelSize

// labelStem names file 0 on a vtape; defaultStem names data files when the
// writer did not call BeginFile.
const (
	labelStem   = "LABEL"
	defaultStem = "data"
	maxStemLen  = 240 // 255 (NAME_MAX) minus the number and the dot
)

// DefaultEarlyWarning returns the early-warning distance for a vtape of the
// given capacity: capacity/100, at least 1 MiB, but never more than half the
// capacity (tiny test volumes).
func DefaultEarlyWarning(capacity int64) int64 {
	ew := max(capacity/100, 1<<20)
	return min(ew, capacity/2)
}

// Vtape is the virtual-tape driver: a directory holding one regular file per
// tape file, "00000.LABEL" then "%05d.<stem>", each the concatenation of its
// records. There are no sidecar files: record boundaries follow from the
// geometry (record 0 is FirstRecordSize bytes, later records the blocksize
// from the label, the last record of a file may be short), and WriteRecord
// refuses records that would break it. Capacity and early warning behave like
// a drive's. A slot directory whose owner write bit is off (chmod a-w) is a
// write-protected volume.
//
// Vtape implements Device, FileNamer and RandomAccess. It is not safe for
// concurrent use.
type Vtape struct {
	dir           string
	capacity      int64
	earlyWarning  int64
	fallbackBlock int64 // record size when the label does not say
	blocksize     int64 // record size in effect (records 1..n of a file)

	files []vfile // index = file number
	used  int64   // sum of file sizes

	file, record int64 // position

	rf   *os.File // open for reading: file number rfNo
	rfNo int64

	wf       *os.File // file being written: always files[len(files)-1]
	wShort   bool     // the last record written to wf was short: only a filemark may follow
	wb       int64    // bytes of wf whose writeback was started
	nextStem string   // from BeginFile, used by the next file started

	ejected, closed bool
	noSync          bool // tests only: skip fsync (fuzzing speed)
	// write writes a record to the file being written; nil is
	// (*os.File).Write. Tests make it fail like a full file system.
	write func(f *os.File, p []byte) (int, error)
}

type vfile struct {
	name string
	size int64
}

// OpenVtape opens the vtape in slot directory dir (which must exist: a
// missing directory is ErrNoMedium). capacity is the volume length in bytes
// (from the tapetype); a record that would go past it fails with
// ErrVolumeFull. Once more than capacity-earlyWarning bytes are on the
// volume, every record written returns ErrEarlyWarning. The vtape is
// positioned at the beginning.
func OpenVtape(dir string, capacity, earlyWarning int64) (*Vtape, error) {
	return openVtape(dir, capacity, earlyWarning, DefaultBlocksize)
}

func openVtape(dir string, capacity, earlyWarning, fallbackBlock int64) (*Vtape, error) {
	if capacity <= 0 {
		return nil, fmt.Errorf("vtape %s: open: capacity %d bytes is not positive; set the tapetype length", dir, capacity)
	}
	if earlyWarning < 0 || earlyWarning >= capacity {
		return nil, fmt.Errorf("vtape %s: open: early warning %d bytes must be between 0 and the capacity (%d bytes)", dir, earlyWarning, capacity)
	}
	if fallbackBlock <= 0 {
		return nil, fmt.Errorf("vtape %s: open: blocksize %d is not positive", dir, fallbackBlock)
	}
	fi, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("vtape %s: open: directory does not exist: %w", dir, ErrNoMedium)
	}
	if err != nil {
		return nil, fmt.Errorf("vtape %s: open: %w", dir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("vtape %s: open: not a directory (a vtape is a directory of tape files)", dir)
	}
	files, err := scanVtape(dir)
	if err != nil {
		return nil, err
	}
	v := &Vtape{
		dir:           dir,
		capacity:      capacity,
		earlyWarning:  earlyWarning,
		fallbackBlock: fallbackBlock,
		blocksize:     fallbackBlock,
		files:         files,
		rfNo:          -1,
	}
	for _, f := range files {
		v.used += f.size
	}
	if len(files) > 0 {
		v.blocksize = v.sniffBlocksize()
	}
	return v, nil
}

// scanVtape lists the tape files in dir. A name beginning with five or more
// digits and a dot is a tape file; the numbers must run 0, 1, 2, ...
// without gaps or duplicates. Other names are ignored.
func scanVtape(dir string) ([]vfile, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("vtape %s: open: %w", dir, err)
	}
	byNo := map[int64]vfile{}
	for _, e := range ents {
		no, ok := tapeFileNumber(e.Name())
		if !ok {
			continue
		}
		if no < 0 {
			return nil, fmt.Errorf("vtape %s: open: %q looks like a tape file but its number is not written as %%05d; the volume is damaged: move the file away or relabel the volume", dir, e.Name())
		}
		if !e.Type().IsRegular() {
			return nil, fmt.Errorf("vtape %s: open: tape file %q is not a regular file; the volume is damaged", dir, e.Name())
		}
		if prev, dup := byNo[no]; dup {
			return nil, fmt.Errorf("vtape %s: open: two tape files numbered %d (%q and %q); the volume is damaged: move one away", dir, no, prev.name, e.Name())
		}
		info, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("vtape %s: open: %w", dir, err)
		}
		byNo[no] = vfile{name: e.Name(), size: info.Size()}
	}
	files := make([]vfile, len(byNo))
	for no, f := range byNo {
		if no >= int64(len(files)) {
			missing := int64(0)
			for byNo[missing].name != "" {
				missing++
			}
			return nil, fmt.Errorf("vtape %s: open: tape file %05d is missing but %q exists; the volume is damaged: move the later files away or relabel the volume", dir, missing, f.name)
		}
		files[no] = f
	}
	return files, nil
}

// tapeFileNumber parses the number of a tape file name "%05d.<stem>". ok is
// false for names that are not tape files; no is -1 for names that look like
// one but are not canonical ("000001.x").
func tapeFileNumber(name string) (no int64, ok bool) {
	i := 0
	for i < len(name) && name[i] >= '0' && name[i] <= '9' {
		i++
	}
	if i < 5 || i >= len(name)-1 || name[i] != '.' {
		return 0, false
	}
	n, err := strconv.ParseInt(name[:i], 10, 64)
	if err != nil || fmt.Sprintf("%05d", n) != name[:i] {
		return -1, true
	}
	return n, true
}

// sniffBlocksize reads the label in file 0 for the volume's record size.
func (v *Vtape) sniffBlocksize() int64 {
	f, err := os.Open(filepath.Join(v.dir, v.files[0].name))
	if err != nil {
		return v.fallbackBlock
	}
	defer f.Close()
	buf := make([]byte, FirstRecordSize)
	n, _ := io.ReadFull(f, buf)
	if l, err := ParseLabel(buf[:n]); err == nil {
		return l.Blocksize
	}
	return v.fallbackBlock
}

// Name returns "vtape:<dir>".
func (v *Vtape) Name() string { return "vtape:" + v.dir }

func (v *Vtape) errf(op string, format string, args ...any) error {
	return fmt.Errorf("vtape %s: %s: "+format, append([]any{v.dir, op}, args...)...)
}

func (v *Vtape) usable(op string) error {
	if v.closed {
		return v.errf(op, "device is closed")
	}
	if v.ejected {
		return v.errf(op, "%w", ErrNoMedium)
	}
	return nil
}

func (v *Vtape) writeProtected() (bool, error) {
	fi, err := os.Stat(v.dir)
	if err != nil {
		return false, err
	}
	return fi.Mode().Perm()&0o200 == 0, nil
}

// geometry

func (v *Vtape) recordCount(size int64) int64 {
	switch {
	case size <= 0:
		return 0
	case size <= FirstRecordSize:
		return 1
	}
	return 1 + (size-FirstRecordSize+v.blocksize-1)/v.blocksize
}

func (v *Vtape) recordOffset(r int64) int64 {
	if r == 0 {
		return 0
	}
	return FirstRecordSize + (r-1)*v.blocksize
}

func (v *Vtape) recordLimit(r int64) int64 {
	if r == 0 {
		return FirstRecordSize
	}
	return v.blocksize
}

func (v *Vtape) logical(file, record int64) int64 {
	var n int64
	for i := int64(0); i < file && i < int64(len(v.files)); i++ {
		n += v.recordCount(v.files[i].size) + 1
	}
	return n + record
}

func (v *Vtape) atBOT() bool { return v.file == 0 && v.record == 0 }
func (v *Vtape) atEOD() bool {
	return v.wf != nil || (v.file == int64(len(v.files)) && v.record == 0)
}

// Status reports the drive state; without a medium Online is false.
func (v *Vtape) Status() (Status, error) {
	if v.closed {
		return Status{}, v.errf("status", "device is closed")
	}
	if v.ejected {
		return Status{}, nil
	}
	wp, err := v.writeProtected()
	if err != nil {
		return Status{}, v.errf("status", "%w", err)
	}
	return Status{
		Online:         true,
		BOT:            v.atBOT() && v.wf == nil,
		EOF:            v.record == 0 && v.file > 0 && v.wf == nil,
		EOT:            v.used > v.capacity-v.earlyWarning,
		EOD:            v.atEOD(),
		WriteProtected: wp,
		File:           v.file,
		Record:         v.record,
	}, nil
}

// Properties declares a vtape: it names its files and opens them as
// regular files.
func (v *Vtape) Properties() DeviceProperties {
	return DeviceProperties{NamesFiles: true, RandomAccess: true}
}

// BeginFile sets the stem of the next tape file this vtape starts: file k
// is then named fmt.Sprintf("%05d.%s", k, stem). File 0 is always
// "00000.LABEL". The stem must be a single file-name component.
func (v *Vtape) BeginFile(stem string) error {
	if err := v.usable("begin file"); err != nil {
		return err
	}
	if v.wf != nil {
		return v.errf("begin file", "file %d is still being written; write a filemark first", v.file)
	}
	if err := checkStem(stem); err != nil {
		return v.errf("begin file", "%w", err)
	}
	v.nextStem = stem
	return nil
}

func checkStem(stem string) error {
	switch {
	case stem == "":
		return errors.New("empty file name stem")
	case stem == "." || stem == "..":
		return fmt.Errorf("file name stem %q is not allowed", stem)
	case len(stem) > maxStemLen:
		return fmt.Errorf("file name stem is %d bytes, at most %d fit in a file name", len(stem), maxStemLen)
	case strings.ContainsAny(stem, "/\x00"):
		return fmt.Errorf("file name stem %q contains '/' or NUL", stem)
	}
	return nil
}

// WriteRecord writes one record; see Device.
func (v *Vtape) WriteRecord(p []byte) error {
	const op = "write record"
	if err := v.usable(op); err != nil {
		return err
	}
	at := fmt.Sprintf("%s at file %d record %d", op, v.file, v.record)
	if len(p) == 0 {
		return v.errf(at, "empty record (a record holds at least one byte)")
	}
	base := v.used
	if v.wf == nil {
		switch {
		case v.atBOT():
			base = 0
		case v.atEOD():
		default:
			return v.errf(at, "%w", ErrNotAtEnd)
		}
	}
	if v.wShort {
		return v.errf(at, "the previous record was short; on a vtape only the last record of a file may be shorter than the blocksize (%d bytes): write a filemark first", v.blocksize)
	}
	if limit := v.recordLimit(v.record); int64(len(p)) > limit {
		if v.record == 0 {
			return v.errf(at, "record of %d bytes is larger than %d bytes, the size of the first record of a file on a vtape (label or image header)", len(p), limit)
		}
		return v.errf(at, "record of %d bytes is larger than the volume's blocksize (%d bytes); write records of the blocksize in the label", len(p), limit)
	}
	if base+int64(len(p)) > v.capacity {
		return v.errf(at, "%w: %d bytes used of %d", ErrVolumeFull, base, v.capacity)
	}
	if v.wf == nil {
		if err := v.startFile(at); err != nil {
			return err
		}
	}
	cur := &v.files[len(v.files)-1]
	write := v.write
	if write == nil {
		write = (*os.File).Write
	}
	n, err := write(v.wf, p)
	if err != nil || n != len(p) {
		if err == nil {
			err = io.ErrShortWrite
		}
		if cur.size == 0 {
			// The first record of a new file: a drive that fails it
			// writes nothing, so the empty file goes and the volume ends
			// at the previous filemark, as it did before.
			if rerr := v.dropNewFile(); rerr != nil {
				return v.errf(at, "write failed (%v) and the empty tape file could not be removed (%v); remove it by hand", err, rerr)
			}
		} else {
			// Take the partial record back so the file keeps its geometry.
			if terr := v.wf.Truncate(cur.size); terr != nil {
				return v.errf(at, "write failed (%v) and the partial record could not be removed (%v); the last file is damaged", err, terr)
			}
			if _, serr := v.wf.Seek(cur.size, io.SeekStart); serr != nil {
				return v.errf(at, "write failed (%v) and the file could not be repositioned (%v)", err, serr)
			}
		}
		if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
			return v.errf(at, "%w: the file system holding the vtape is full: %v", ErrVolumeFull, err)
		}
		return v.errf(at, "%w (record not written)", err)
	}
	if v.record == 0 && v.file == 0 {
		if l, err := ParseLabel(p); err == nil {
			v.blocksize = l.Blocksize
		} else {
			v.blocksize = v.fallbackBlock
		}
	}
	if int64(len(p)) < v.recordLimit(v.record) {
		v.wShort = true
	}
	cur.size += int64(len(p))
	v.used += int64(len(p))
	v.record++
	if !v.noSync && cur.size-v.wb >= writebackEvery {
		// The disk writes while the image goes on, so the filemark's
		// fsync waits for the tail only.
		startWriteback(v.wf, v.wb, cur.size-v.wb)
		v.wb = cur.size
	}
	if v.used > v.capacity-v.earlyWarning {
		return v.errf(at, "%w: %d bytes used of %d", ErrEarlyWarning, v.used, v.capacity)
	}
	return nil
}

// startFile creates the next tape file: at the beginning of the volume it
// first erases every file (from the last to the first, so that a crash
// leaves a shorter but consistent volume).
func (v *Vtape) startFile(at string) error {
	wp, err := v.writeProtected()
	if err != nil {
		return v.errf(at, "%w", err)
	}
	if wp {
		return v.errf(at, "%w (the slot directory is not writable by its owner; chmod u+w to allow writing)", ErrWriteProtected)
	}
	stem := v.nextStem
	if stem == "" {
		stem = defaultStem
	}
	if v.atBOT() {
		v.closeReader()
		for i := len(v.files) - 1; i >= 0; i-- {
			if err := os.Remove(filepath.Join(v.dir, v.files[i].name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				v.files = v.files[:i+1]
				v.used = 0
				for _, f := range v.files {
					v.used += f.size
				}
				return v.errf(at, "erase volume: %w", err)
			}
			v.files = v.files[:i]
		}
		v.used = 0
		v.blocksize = v.fallbackBlock
		stem = labelStem
	}
	name := fmt.Sprintf("%05d.%s", len(v.files), stem)
	f, err := os.OpenFile(filepath.Join(v.dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return v.errf(at, "create tape file: %w", err)
	}
	v.nextStem = ""
	v.wf = f
	v.wShort = false
	v.wb = 0
	v.files = append(v.files, vfile{name: name})
	v.file = int64(len(v.files) - 1)
	v.record = 0
	return nil
}

// dropNewFile removes the file being written, which holds nothing yet:
// the volume ends where it ended before the file was started, and the next
// file started gets the same number and name.
func (v *Vtape) dropNewFile() error {
	f := v.wf
	i := len(v.files) - 1
	name := v.files[i].name
	v.wf, v.wShort = nil, false
	f.Close()
	if err := os.Remove(filepath.Join(v.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		v.file = int64(len(v.files)) // the file stays, empty, and ended
		v.record = 0
		return err
	}
	v.files = v.files[:i]
	v.file, v.record = int64(i), 0
	if i > 0 {
		if _, stem, ok := strings.Cut(name, "."); ok && stem != defaultStem {
			v.nextStem = stem
		}
	}
	if v.noSync {
		return nil
	}
	return syncDir(v.dir)
}

// WriteFilemark ends the file being written, or writes an empty file.
func (v *Vtape) WriteFilemark() error {
	const op = "write filemark"
	if err := v.usable(op); err != nil {
		return err
	}
	at := fmt.Sprintf("%s at file %d", op, v.file)
	if v.wf == nil {
		if !v.atBOT() && !v.atEOD() {
			return v.errf(at, "%w", ErrNotAtEnd)
		}
		if err := v.startFile(at); err != nil {
			return err
		}
	}
	return v.finishFile(at)
}

// finishFile writes the filemark of the file being written: fsync the file,
// close it, fsync the directory.
func (v *Vtape) finishFile(at string) error {
	if v.wf == nil {
		return nil
	}
	f := v.wf
	v.wf = nil
	v.wShort = false
	v.file = int64(len(v.files))
	v.record = 0
	name := v.files[len(v.files)-1].name
	if v.noSync {
		return f.Close()
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return v.errf(at, "fsync %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return v.errf(at, "close %s: %w", name, err)
	}
	if err := syncDir(v.dir); err != nil {
		return v.errf(at, "fsync directory: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func (v *Vtape) closeReader() {
	if v.rf != nil {
		v.rf.Close()
		v.rf = nil
		v.rfNo = -1
	}
}

// ReadRecord reads one record; see Device.
func (v *Vtape) ReadRecord(p []byte) (int, error) {
	const op = "read record"
	if err := v.usable(op); err != nil {
		return 0, err
	}
	at := fmt.Sprintf("%s at file %d record %d", op, v.file, v.record)
	if v.wf != nil {
		return 0, v.errf(at, "file %d is being written; write a filemark and reposition before reading", v.file)
	}
	if v.file >= int64(len(v.files)) {
		return 0, v.errf(at, "%w", ErrEndOfData)
	}
	f := v.files[v.file]
	if v.record >= v.recordCount(f.size) {
		v.file++
		v.record = 0
		return 0, v.errf(at, "filemark: %w", io.EOF)
	}
	off := v.recordOffset(v.record)
	size := min(f.size, off+v.recordLimit(v.record)) - off
	if int64(len(p)) < size {
		return 0, v.errf(at, "buffer of %d bytes is smaller than the %d-byte record: %w", len(p), size, io.ErrShortBuffer)
	}
	if v.rf == nil || v.rfNo != v.file {
		v.closeReader()
		rf, err := os.Open(filepath.Join(v.dir, f.name))
		if err != nil {
			return 0, v.errf(at, "%w", err)
		}
		v.rf, v.rfNo = rf, v.file
	}
	n, err := v.rf.ReadAt(p[:size], off)
	if int64(n) != size {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, v.errf(at, "%s: %w (was the file changed behind the vtape's back?)", f.name, err)
	}
	v.record++
	return n, nil
}

// SpaceFiles moves over n filemarks; see Device.
func (v *Vtape) SpaceFiles(n int) error {
	const op = "space files"
	if err := v.usable(op); err != nil {
		return err
	}
	at := fmt.Sprintf("%s %+d from file %d", op, n, v.file)
	if err := v.finishFile(at); err != nil {
		return err
	}
	switch target := v.file + int64(n); {
	case n == 0:
	case n > 0 && target > int64(len(v.files)):
		left := int64(len(v.files)) - v.file
		v.file, v.record = int64(len(v.files)), 0
		return v.errf(at, "only %d filemarks before the end of data: %w", left, ErrEndOfData)
	case n > 0:
		v.file, v.record = target, 0
	case target < 0:
		v.file, v.record = 0, 0
		return v.errf(at, "hit the beginning of the volume")
	default:
		v.file, v.record = target, v.recordCount(v.files[target].size)
	}
	return nil
}

// SpaceRecords moves over n records within the current file; see Device.
func (v *Vtape) SpaceRecords(n int) error {
	const op = "space records"
	if err := v.usable(op); err != nil {
		return err
	}
	at := fmt.Sprintf("%s %+d at file %d record %d", op, n, v.file, v.record)
	if err := v.finishFile(at); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	if v.file >= int64(len(v.files)) {
		return v.errf(at, "%w", ErrEndOfData)
	}
	count := v.recordCount(v.files[v.file].size)
	target := v.record + int64(n)
	if target < 0 || target > count {
		return v.errf(at, "the file has %d records; spacing would cross a filemark", count)
	}
	v.record = target
	return nil
}

// Rewind goes to the beginning of the volume; see Device.
func (v *Vtape) Rewind() error {
	if err := v.usable("rewind"); err != nil {
		return err
	}
	if err := v.finishFile("rewind"); err != nil {
		return err
	}
	v.file, v.record = 0, 0
	return nil
}

// SeekToEnd positions after the last file; see Device.
func (v *Vtape) SeekToEnd() error {
	if err := v.usable("seek to end"); err != nil {
		return err
	}
	if err := v.finishFile("seek to end"); err != nil {
		return err
	}
	v.file, v.record = int64(len(v.files)), 0
	return nil
}

// Tell returns the position; Logical counts every record and filemark
// before it.
func (v *Vtape) Tell() (Position, error) {
	if err := v.usable("tell"); err != nil {
		return Position{}, err
	}
	return Position{File: v.file, Record: v.record, Logical: v.logical(v.file, v.record)}, nil
}

// Seek goes to p by file and record. If p.Logical is set as well, it must
// agree with this volume (a mismatch means the catalog describes another
// volume). A Position with only Logical set (File and Record 0) is located
// by its logical block, as on a tape.
func (v *Vtape) Seek(p Position) error {
	const op = "seek"
	if err := v.usable(op); err != nil {
		return err
	}
	at := fmt.Sprintf("%s to file %d record %d (logical %d)", op, p.File, p.Record, p.Logical)
	if err := v.finishFile(at); err != nil {
		return err
	}
	if p.File < 0 || p.Record < 0 || p.Logical < 0 {
		return v.errf(at, "negative position")
	}
	if p.File == 0 && p.Record == 0 && p.Logical > 0 {
		f, r, ok := v.fromLogical(p.Logical)
		if !ok {
			return v.errf(at, "logical block %d is past the end of data (%d): %w", p.Logical, v.logical(int64(len(v.files)), 0), ErrEndOfData)
		}
		v.file, v.record = f, r
		return nil
	}
	switch {
	case p.File > int64(len(v.files)):
		return v.errf(at, "the volume has only %d files: %w", len(v.files), ErrEndOfData)
	case p.File == int64(len(v.files)) && p.Record > 0:
		return v.errf(at, "file %d is the end of data: %w", p.File, ErrEndOfData)
	case p.File < int64(len(v.files)) && p.Record > v.recordCount(v.files[p.File].size):
		return v.errf(at, "file %d has only %d records", p.File, v.recordCount(v.files[p.File].size))
	}
	if p.Logical != 0 {
		if l := v.logical(p.File, p.Record); l != p.Logical {
			return v.errf(at, "file %d record %d is logical block %d on this volume, not %d: the position belongs to another volume or the volume changed", p.File, p.Record, l, p.Logical)
		}
	}
	v.file, v.record = p.File, p.Record
	return nil
}

func (v *Vtape) fromLogical(l int64) (file, record int64, ok bool) {
	for i, f := range v.files {
		n := v.recordCount(f.size)
		if l <= n {
			return int64(i), l, true
		}
		l -= n + 1
	}
	if l == 0 {
		return int64(len(v.files)), 0, true
	}
	return 0, 0, false
}

// Eject ends any file being written and unloads the volume; see Device.
func (v *Vtape) Eject() error {
	if v.closed {
		return v.errf("eject", "device is closed")
	}
	if v.ejected {
		return nil
	}
	err := v.finishFile("eject")
	v.closeReader()
	v.ejected = true
	v.file, v.record = 0, 0
	return err
}

// Close ends any file being written and releases the vtape. Closing twice
// is not an error.
func (v *Vtape) Close() error {
	if v.closed {
		return nil
	}
	err := v.finishFile("close")
	v.closeReader()
	v.closed = true
	return err
}

// OpenFile opens tape file fileno for reading with ReadAt and Seek. The
// first record (the label or image header) is the first FirstRecordSize
// bytes, so `dd if=FILE bs=32k skip=1` gives the payload.
func (v *Vtape) OpenFile(fileno int) (*os.File, error) {
	at := fmt.Sprintf("open file %d", fileno)
	if err := v.usable(at); err != nil {
		return nil, err
	}
	if fileno < 0 || fileno >= len(v.files) {
		return nil, v.errf(at, "the volume has files 0 to %d: %w", len(v.files)-1, ErrEndOfData)
	}
	f, err := os.Open(filepath.Join(v.dir, v.files[fileno].name))
	if err != nil {
		return nil, v.errf(at, "%w", err)
	}
	return f, nil
}

// FileNames returns the names of the tape files on the volume, in order.
func (v *Vtape) FileNames() []string {
	names := make([]string, len(v.files))
	for i, f := range v.files {
		names[i] = f.name
	}
	return names
}
