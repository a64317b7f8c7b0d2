package taper

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tapir-backup/tapir/image"
)

// LabelSize is the size of the label record, file 0 of every volume.
const LabelSize = 32 << 10

// Limits on label fields.
const (
	MaxLabelLen  = 64
	MaxOrgLen    = 128
	MinBlocksize = 1 << 10
	MaxBlocksize = 16 << 20
)

// NeverWritten is the datestamp of a volume that is labelled but holds no
// run yet.
const NeverWritten = "X"

const labelMagic = "TAPIR TAPESTART "

// ErrBlank is wrapped by ReadLabel for a volume with nothing on it.
var ErrBlank = errors.New("blank volume (no label)")

// ErrDamagedLabel is wrapped by ReadLabel for a volume whose file 0 is a
// tapir label that fails its checksum (ErrLabelChecksum) or does not
// parse: tapir's, but which volume it is cannot be trusted. A changer
// reports such a volume as unreadable (SlotInfo.Err); it is never written
// over unless a person relabels it or autolabel claims unreadable volumes.
var ErrDamagedLabel = errors.New("damaged tapir label")

// ErrLabelChecksum is matched (errors.Is) by the error of ParseLabel for a
// label whose label-sha256 line is missing or does not match.
var ErrLabelChecksum = errors.New("label checksum mismatch")

// LabelSumKey is the key of the label's checksum line, line 5: the SHA-256
// of the whole LabelSize-byte record with the 64 hex digits of the line read
// as '0' characters (the rule of image headers, docs/format/volume.md).
const LabelSumKey = "label-sha256"

// ErrForeign is wrapped by ReadLabel for a volume whose file 0 is not a
// tapir label. Use errors.As with *ForeignError for what was found.
var ErrForeign = errors.New("not a tapir volume")

// ForeignError describes a volume that is not ours. It matches ErrForeign
// with errors.Is.
type ForeignError struct {
	Device string // the device name
	Found  string // what file 0 holds, for a person: "an Amanda label: AMANDA: TAPESTART ..."
}

func (e *ForeignError) Error() string {
	return fmt.Sprintf("%s: %v: found %s; tapir never writes over it unless you relabel it explicitly", e.Device, ErrForeign, e.Found)
}

// Is makes errors.Is(err, ErrForeign) true.
func (e *ForeignError) Is(target error) bool { return target == ErrForeign }

// Label is the content of file 0 of a volume:
//
//	TAPIR TAPESTART <datestamp|X> <label>
//	org: <org>
//	blocksize: <bytes>
//	created: <RFC 3339 time>
//	label-sha256: <64 hex digits: the record's checksum>
//
// then NUL padding to LabelSize bytes.
type Label struct {
	Datestamp string    // run that wrote the volume, YYYYMMDDhhmmss, or "X" (NeverWritten)
	Label     string    // the volume label, e.g. "DailySet1-007"
	Org       string    // the configuration's org
	Blocksize int64     // record size of the data files on the volume
	Created   time.Time // when the label was written (kept to the second)
}

// CheckLabelName reports whether s can be a volume label: 1 to 64
// characters from letters, digits and . _ - + : @
func CheckLabelName(s string) error {
	if s == "" {
		return errors.New("volume label is empty")
	}
	if len(s) > MaxLabelLen {
		return fmt.Errorf("volume label %.20q... is %d bytes, at most %d", s, len(s), MaxLabelLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._-+:@", c) >= 0 {
			continue
		}
		return fmt.Errorf("volume label %q has %q at byte %d; use letters, digits and . _ - + : @", s, c, i)
	}
	return nil
}

func checkDatestamp(s string) error {
	if s == NeverWritten {
		return nil
	}
	if len(s) != 14 || strings.Trim(s, "0123456789") != "" {
		return fmt.Errorf("datestamp %q is neither YYYYMMDDhhmmss nor X", s)
	}
	if _, err := time.Parse("20060102150405", s); err != nil {
		return fmt.Errorf("datestamp %q is not a valid date and time (YYYYMMDDhhmmss)", s)
	}
	return nil
}

func checkOrg(s string) error {
	switch {
	case s == "":
		return errors.New("org is empty")
	case len(s) > MaxOrgLen:
		return fmt.Errorf("org is %d bytes, at most %d", len(s), MaxOrgLen)
	case !utf8.ValidString(s):
		return fmt.Errorf("org %q is not valid UTF-8", s)
	case strings.TrimSpace(s) != s:
		return fmt.Errorf("org %q begins or ends with white space", s)
	}
	for _, r := range s {
		if unicode.IsControl(r) || !unicode.IsPrint(r) && r != ' ' {
			return fmt.Errorf("org %q contains the control or non-printable character %U", s, r)
		}
	}
	return nil
}

func checkBlocksize(n int64) error {
	if n < MinBlocksize || n > MaxBlocksize || n%1024 != 0 {
		return fmt.Errorf("blocksize %d is not a multiple of 1 KiB between %d and %d bytes", n, MinBlocksize, MaxBlocksize)
	}
	return nil
}

func formatCreated(t time.Time) (string, error) {
	if t.IsZero() {
		return "", errors.New("created time is not set")
	}
	s := t.Format(time.RFC3339)
	if _, err := time.Parse(time.RFC3339, s); err != nil {
		return "", fmt.Errorf("created time %s cannot be written as RFC 3339", s)
	}
	return s, nil
}

// Marshal returns the LabelSize-byte label record, or an error naming the
// field that cannot be written.
func (l Label) Marshal() ([]byte, error) {
	if err := checkDatestamp(l.Datestamp); err != nil {
		return nil, fmt.Errorf("label: %w", err)
	}
	if err := CheckLabelName(l.Label); err != nil {
		return nil, fmt.Errorf("label: %w", err)
	}
	if err := checkOrg(l.Org); err != nil {
		return nil, fmt.Errorf("label %s: %w", l.Label, err)
	}
	if err := checkBlocksize(l.Blocksize); err != nil {
		return nil, fmt.Errorf("label %s: %w", l.Label, err)
	}
	created, err := formatCreated(l.Created)
	if err != nil {
		return nil, fmt.Errorf("label %s: %w", l.Label, err)
	}
	b := make([]byte, LabelSize)
	text := fmt.Sprintf("%s%s %s\norg: %s\nblocksize: %d\ncreated: %s\n%s: ",
		labelMagic, l.Datestamp, l.Label, l.Org, l.Blocksize, created, LabelSumKey)
	copy(b, text)
	copy(b[len(text):], strings.Repeat("0", image.SumHexLen)+"\n")
	copy(b[len(text):], image.BlockSum(b, len(text)))
	return b, nil
}

// labelSumError is a label that fails its checksum.
type labelSumError struct{ msg string }

func (e *labelSumError) Error() string        { return e.msg }
func (e *labelSumError) Is(target error) bool { return target == ErrLabelChecksum }

// checkLabelSum checks the label-sha256 line of a LabelSize-byte record;
// a record that is no tapir label at all (no such line, another first
// line) passes, for the parser to describe.
func checkLabelSum(b []byte) error {
	off := image.FindSumLine(b, LabelSumKey)
	if off >= 0 && image.BlockSum(b, off) == string(b[off:off+image.SumHexLen]) {
		return nil
	}
	if off < 0 && !bytes.HasPrefix(b, []byte(labelMagic)) {
		return nil
	}
	where, exact := labelDamage(b)
	if off < 0 && !exact {
		return &labelSumError{fmt.Sprintf("label checksum missing: the label has no %s line: it was written by a tapir from before label checksums (such labels are refused) or that line was damaged", LabelSumKey)}
	}
	return &labelSumError{fmt.Sprintf("label checksum mismatch: the label was changed or damaged after it was written: %s; none of its fields can be trusted", where)}
}

// labelDamage names the byte of a label that was changed, when one changed
// byte explains its checksum (image.FindChangedByte).
func labelDamage(b []byte) (string, bool) {
	off, was, ok := image.FindChangedByte(b, LabelSumKey, nil)
	if !ok {
		return "more than one flipped bit or digit, which line cannot be told", false
	}
	fixed := append([]byte(nil), b...)
	fixed[off] = was
	now := b[off]
	what := fmt.Sprintf("reads %s where %s was written", byteName(now), byteName(was))
	end := bytes.IndexByte(fixed, 0)
	if end < 0 {
		end = len(fixed)
	}
	if off >= end {
		return fmt.Sprintf("padding at offset %d: %s", off, what), true
	}
	line := 1 + bytes.Count(fixed[:off], []byte{'\n'})
	names := []string{"TAPESTART line", "org", "blocksize", "created", LabelSumKey}
	field := "line"
	if line <= len(names) {
		field = names[line-1]
	}
	if line == 1 {
		switch col := off; {
		case col < len(labelMagic)-1:
			field = "TAPIR TAPESTART"
		case col < len(labelMagic)+bytes.IndexByte(fixed[len(labelMagic):], ' '):
			field = "datestamp"
		default:
			field = "label"
		}
	}
	return fmt.Sprintf("line %d (%s), offset %d: %s", line, field, off, what), true
}

func byteName(c byte) string {
	if c == 0 {
		return "a NUL"
	}
	return strconv.QuoteToASCII(string(rune(c)))
}

// ParseLabel parses a label record. It is strict: exactly LabelSize bytes,
// a label-sha256 line that matches (else an error matching
// ErrLabelChecksum, naming the changed byte when one explains it), the five
// lines in order, each field in the form Marshal writes, then only NUL
// bytes; so Marshal of the result gives back b.
func ParseLabel(b []byte) (*Label, error) {
	if len(b) != LabelSize {
		return nil, fmt.Errorf("label record is %d bytes, a tapir label is exactly %d", len(b), LabelSize)
	}
	if err := checkLabelSum(b); err != nil {
		return nil, err
	}
	end := bytes.IndexByte(b, 0)
	if end < 0 {
		return nil, errors.New("label record has no NUL padding after its text")
	}
	if i := bytes.IndexFunc(b[end:], func(r rune) bool { return r != 0 }); i >= 0 {
		return nil, fmt.Errorf("label record has a non-NUL byte at offset %d, after the text ended at %d", end+i, end)
	}
	text := string(b[:end])
	if !strings.HasPrefix(text, labelMagic) {
		return nil, fmt.Errorf("label line 1 %q does not begin with %q", firstLine(text), labelMagic)
	}
	if !strings.HasSuffix(text, "\n") {
		return nil, errors.New("label text does not end with a newline")
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) != 5 {
		return nil, fmt.Errorf("label has %d lines, want 5 (TAPESTART, org, blocksize, created, %s)", len(lines), LabelSumKey)
	}
	var l Label
	fields := strings.Split(strings.TrimPrefix(lines[0], labelMagic), " ")
	if len(fields) != 2 {
		return nil, fmt.Errorf("label line 1 %q: want %q followed by a datestamp and a label separated by single spaces", lines[0], labelMagic)
	}
	l.Datestamp, l.Label = fields[0], fields[1]
	if err := checkDatestamp(l.Datestamp); err != nil {
		return nil, fmt.Errorf("label line 1: %w", err)
	}
	if err := CheckLabelName(l.Label); err != nil {
		return nil, fmt.Errorf("label line 1: %w", err)
	}
	value := func(n int, key string) (string, error) {
		v, ok := strings.CutPrefix(lines[n-1], key+": ")
		if !ok {
			return "", fmt.Errorf("label line %d %q: want %q", n, lines[n-1], key+": ...")
		}
		return v, nil
	}
	var err error
	if l.Org, err = value(2, "org"); err != nil {
		return nil, err
	}
	if err := checkOrg(l.Org); err != nil {
		return nil, fmt.Errorf("label line 2: %w", err)
	}
	bs, err := value(3, "blocksize")
	if err != nil {
		return nil, err
	}
	if l.Blocksize, err = strconv.ParseInt(bs, 10, 64); err != nil || strconv.FormatInt(l.Blocksize, 10) != bs {
		return nil, fmt.Errorf("label line 3: blocksize %q is not a decimal number of bytes", bs)
	}
	if err := checkBlocksize(l.Blocksize); err != nil {
		return nil, fmt.Errorf("label line 3: %w", err)
	}
	created, err := value(4, "created")
	if err != nil {
		return nil, err
	}
	if l.Created, err = time.Parse(time.RFC3339, created); err != nil || l.Created.Format(time.RFC3339) != created {
		return nil, fmt.Errorf("label line 4: created %q is not an RFC 3339 time like 2006-01-02T15:04:05Z or 2006-01-02T15:04:05+02:00 (no fractions)", created)
	}
	// Line 5 is the checksum, checked above: here only its place.
	if _, err := value(5, LabelSumKey); err != nil {
		return nil, err
	}
	return &l, nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return s
}

// maxProbe is the largest first record ReadLabel reads to describe a
// foreign volume.
const maxProbe = 256 << 10

// ReadLabel rewinds d and reads its label. It returns an error wrapping
// ErrBlank for a volume with nothing on it, a *ForeignError (ErrForeign) for
// a volume that is not tapir's, an error wrapping ErrDamagedLabel (and
// ErrLabelChecksum when that is why) for a tapir label that fails its
// checksum or does not parse, and the device's error for anything else.
// The device is left after the label record.
func ReadLabel(d Device) (*Label, error) {
	if err := d.Rewind(); err != nil {
		return nil, fmt.Errorf("read label: %w", err)
	}
	buf := make([]byte, maxProbe)
	n, err := d.ReadRecord(buf)
	switch {
	case errors.Is(err, ErrEndOfData):
		return nil, fmt.Errorf("%s: %w", d.Name(), ErrBlank)
	case errors.Is(err, io.EOF):
		// An empty file 0: an interrupted label write if nothing follows.
		_, err2 := d.ReadRecord(buf)
		if errors.Is(err2, ErrEndOfData) {
			return nil, fmt.Errorf("%s: %w (an empty file 0: an interrupted label write)", d.Name(), ErrBlank)
		}
		return nil, &ForeignError{Device: d.Name(), Found: "an empty file 0 followed by more data"}
	case errors.Is(err, io.ErrShortBuffer):
		return nil, &ForeignError{Device: d.Name(), Found: fmt.Sprintf("a first record larger than %d bytes", maxProbe)}
	case err != nil:
		return nil, fmt.Errorf("read label: %w", err)
	}
	l, perr := ParseLabel(buf[:n])
	switch {
	case perr == nil:
		return l, nil
	case errors.Is(perr, ErrLabelChecksum) || bytes.HasPrefix(buf[:n], []byte(strings.TrimSpace(labelMagic))):
		return nil, fmt.Errorf("%s: %w: %w; tapir treats the volume as unreadable: it is not used or written over until a person relabels it (tapir label --force erases it), and its images can still be restored by hand (docs/format/image.md)",
			d.Name(), ErrDamagedLabel, perr)
	}
	return nil, &ForeignError{Device: d.Name(), Found: describeRecord(buf[:n])}
}

// describeRecord tells a person what a foreign first record looks like.
func describeRecord(b []byte) string {
	text := func() string {
		s := string(b[:min(len(b), 200)])
		if i := strings.IndexByte(s, 0); i >= 0 {
			s = s[:i]
		}
		return firstLine(strings.ToValidUTF8(s, "?"))
	}
	switch {
	case bytes.HasPrefix(b, []byte("AMANDA: ")):
		return fmt.Sprintf("an Amanda volume: %q", text())
	case len(b) >= 263 && string(b[257:262]) == "ustar":
		name, _, _ := bytes.Cut(b[:100], []byte{0})
		return fmt.Sprintf("a tar archive (first member %q)", firstLine(strings.ToValidUTF8(string(name), "?")))
	case bytes.HasPrefix(b, []byte{0x1f, 0x8b}):
		return "gzip data"
	case bytes.HasPrefix(b, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return "zstd data"
	}
	probe := b[:min(len(b), 64)]
	printable := len(probe) > 0
	for _, c := range probe {
		if c != '\n' && c != '\t' && c != '\r' && c != 0 && (c < 0x20 || c > 0x7e) {
			printable = false
			break
		}
	}
	if printable && text() != "" {
		return fmt.Sprintf("a %d-byte record of text beginning %q", len(b), text())
	}
	return fmt.Sprintf("a %d-byte record of binary data beginning % x", len(b), b[:min(len(b), 8)])
}

// WriteLabel rewinds d and writes l as file 0 (the label record and a
// filemark). This erases everything on the volume; choosing a volume that
// may be erased is ChooseVolume's job. The device is left at the end of
// data, ready for the first image.
func WriteLabel(d Device, l Label) error {
	b, err := l.Marshal()
	if err != nil {
		return fmt.Errorf("write label on %s: %w", d.Name(), err)
	}
	if err := d.Rewind(); err != nil {
		return fmt.Errorf("write label %s: %w", l.Label, err)
	}
	if err := d.WriteRecord(b); err != nil && !errors.Is(err, ErrEarlyWarning) {
		return fmt.Errorf("write label %s: %w", l.Label, err)
	}
	if err := d.WriteFilemark(); err != nil {
		return fmt.Errorf("write label %s: %w", l.Label, err)
	}
	return nil
}
