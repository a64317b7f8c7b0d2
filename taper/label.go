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
	copy(b, fmt.Sprintf("%s%s %s\norg: %s\nblocksize: %d\ncreated: %s\n",
		labelMagic, l.Datestamp, l.Label, l.Org, l.Blocksize, created))
	return b, nil
}

// ParseLabel parses a label record. It is strict: exactly LabelSize bytes,
// the four lines in order, each field in the form Marshal writes, then only
// NUL bytes; so Marshal of the result gives back b.
func ParseLabel(b []byte) (*Label, error) {
	if len(b) != LabelSize {
		return nil, fmt.Errorf("label record is %d bytes, a tapir label is exactly %d", len(b), LabelSize)
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
	if len(lines) != 4 {
		return nil, fmt.Errorf("label has %d lines, want 4 (TAPESTART, org, blocksize, created)", len(lines))
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
// a volume that is not tapir's, and the device's error for anything else.
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
	if perr != nil {
		return nil, &ForeignError{Device: d.Name(), Found: describeRecord(buf[:n], perr)}
	}
	return l, nil
}

// describeRecord tells a person what a foreign first record looks like.
func describeRecord(b []byte, perr error) string {
	text := func() string {
		s := string(b[:min(len(b), 200)])
		if i := strings.IndexByte(s, 0); i >= 0 {
			s = s[:i]
		}
		return firstLine(strings.ToValidUTF8(s, "?"))
	}
	switch {
	case bytes.HasPrefix(b, []byte(strings.TrimSpace(labelMagic))):
		return fmt.Sprintf("a damaged tapir label (%v)", perr)
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
