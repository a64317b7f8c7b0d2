package taper

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// MtxStatus is what `mtx -f CHANGER status` reports about a SCSI media
// changer: its drives (data transfer elements) and its slots (storage
// elements, import/export elements among them).
type MtxStatus struct {
	Changer string     // the device named in the header, "" without one
	Drives  []MtxDrive // in the order listed
	Slots   []MtxSlot  // in the order listed
	// Counts from the header line, -1 without one. mtx's header is not
	// always consistent with the elements listed; the lists are the truth.
	HeaderDrives, HeaderSlots, HeaderImportExport int
}

// MtxDrive is one data transfer element.
type MtxDrive struct {
	Index   int    // mtx's drive number (0 for old mtx that prints none)
	Full    bool   // holds a volume
	Source  int    // storage element the volume came from, 0 when unknown
	Barcode string // volume tag, "" without a barcode reader
}

// MtxSlot is one storage element.
type MtxSlot struct {
	Slot         int // mtx's storage element number, from 1
	ImportExport bool
	Full         bool
	Barcode      string // volume tag, "" without a barcode reader
}

// Drive returns the drive with mtx number n.
func (s *MtxStatus) Drive(n int) (MtxDrive, bool) {
	for _, d := range s.Drives {
		if d.Index == n {
			return d, true
		}
	}
	return MtxDrive{}, false
}

// Slot returns the storage element with number n.
func (s *MtxStatus) Slot(n int) (MtxSlot, bool) {
	for _, sl := range s.Slots {
		if sl.Slot == n {
			return sl, true
		}
	}
	return MtxSlot{}, false
}

// maxElement bounds drive and slot numbers (the largest libraries have a
// few tens of thousands of slots).
const maxElement = 1000000

var mtxHeader = regexp.MustCompile(`^Storage Changer (.*):(\d+) Drives, (\d+) Slots \( (\d+) Import/Export \)$`)

// ParseMtxStatus parses the output of `mtx status`. Lines that are not
// part of the table (mtx's Request Sense reports, "Mode sense ... failed",
// blank lines) are skipped; a line that starts like an element but does
// not parse is an error naming the line. It accepts the layouts of mtx 1.1
// (no drive number, tabs) to 1.3, with or without barcodes.
func ParseMtxStatus(out string) (*MtxStatus, error) {
	st := &MtxStatus{HeaderDrives: -1, HeaderSlots: -1, HeaderImportExport: -1}
	drives, slots := map[int]bool{}, map[int]bool{}
	first := ""
	for i, raw := range strings.Split(out, "\n") {
		n := i + 1
		line := strings.TrimSpace(raw)
		if first == "" && line != "" {
			first = line
		}
		errf := func(format string, args ...any) error {
			return fmt.Errorf("mtx status line %d %q: "+format, append([]any{n, clip(line)}, args...)...)
		}
		switch {
		case strings.HasPrefix(line, "Storage Changer"):
			if m := mtxHeader.FindStringSubmatch(line); m != nil {
				st.Changer = m[1]
				st.HeaderDrives, _ = strconv.Atoi(m[2])
				st.HeaderSlots, _ = strconv.Atoi(m[3])
				st.HeaderImportExport, _ = strconv.Atoi(m[4])
			} else {
				st.Changer = strings.TrimSpace(strings.TrimPrefix(line, "Storage Changer"))
			}
		case strings.HasPrefix(line, "Data Transfer Element"):
			d, err := parseMtxDrive(strings.TrimPrefix(line, "Data Transfer Element"), len(st.Drives))
			if err != nil {
				return nil, errf("%v", err)
			}
			if drives[d.Index] {
				return nil, errf("drive %d is listed twice", d.Index)
			}
			drives[d.Index] = true
			st.Drives = append(st.Drives, d)
		case strings.HasPrefix(line, "Storage Element"):
			s, err := parseMtxSlot(strings.TrimPrefix(line, "Storage Element"))
			if err != nil {
				return nil, errf("%v", err)
			}
			if slots[s.Slot] {
				return nil, errf("storage element %d is listed twice", s.Slot)
			}
			slots[s.Slot] = true
			st.Slots = append(st.Slots, s)
		}
	}
	if len(st.Drives) == 0 {
		if first == "" {
			return nil, errors.New("mtx status printed nothing")
		}
		return nil, fmt.Errorf("mtx status output has no \"Data Transfer Element\" line (it begins %q): is the device the changer, not a tape drive?", clip(first))
	}
	return st, nil
}

func clip(s string) string {
	if len(s) > 100 {
		return s[:100] + "..."
	}
	return s
}

// number reads a decimal element number at the start of s.
func number(s string) (n int, rest string, err error) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, s, errors.New("no element number")
	}
	if i > 7 {
		return 0, s, fmt.Errorf("element number %.10s... is too large", s)
	}
	n, _ = strconv.Atoi(s[:i])
	if n > maxElement {
		return 0, s, fmt.Errorf("element number %d is too large", n)
	}
	return n, s[i:], nil
}

// parseMtxDrive parses what follows "Data Transfer Element":
// " 0:Full (Storage Element 3 Loaded):VolumeTag = X".
func parseMtxDrive(s string, pos int) (MtxDrive, error) {
	d := MtxDrive{Index: pos}
	s = strings.TrimLeft(s, " \t")
	if s != "" && s[0] >= '0' && s[0] <= '9' {
		n, rest, err := number(s)
		if err != nil {
			return d, err
		}
		d.Index, s = n, strings.TrimLeft(rest, " \t")
	}
	full, s, err := elementState(s, "drive")
	if err != nil || !full {
		return d, err
	}
	d.Full = true
	s = strings.TrimLeft(s, " \t")
	if inner, ok := strings.CutPrefix(s, "("); ok {
		end := strings.IndexByte(inner, ')')
		if end < 0 {
			return d, errors.New(`no ")" after "Full ("`)
		}
		src := inner[:end]
		s = inner[end+1:]
		switch {
		case src == "Unknown Storage Element Loaded":
		case strings.HasPrefix(src, "Storage Element ") && strings.HasSuffix(src, " Loaded"):
			n, rest, err := number(strings.TrimPrefix(src, "Storage Element "))
			if err != nil || rest != " Loaded" || n < 1 {
				return d, fmt.Errorf("bad source element %q", src)
			}
			d.Source = n
		default:
			return d, fmt.Errorf("bad source element %q", src)
		}
	}
	tag, err := volumeTags(s)
	d.Barcode = tag
	return d, err
}

// parseMtxSlot parses what follows "Storage Element":
// " 3 IMPORT/EXPORT:Full :VolumeTag=X".
func parseMtxSlot(s string) (MtxSlot, error) {
	var sl MtxSlot
	n, s, err := number(strings.TrimLeft(s, " \t"))
	if err != nil {
		return sl, err
	}
	if n < 1 {
		return sl, errors.New("storage element 0 (they count from 1)")
	}
	sl.Slot = n
	s = strings.TrimLeft(s, " \t")
	if rest, ok := strings.CutPrefix(s, "IMPORT/EXPORT"); ok {
		sl.ImportExport, s = true, strings.TrimLeft(rest, " \t")
	}
	full, s, err := elementState(s, "element")
	if err != nil || !full {
		return sl, err
	}
	sl.Full = true
	sl.Barcode, err = volumeTags(s)
	return sl, err
}

// elementState parses ":Empty" or ":Full..." after an element's number
// and returns whether it is full and what follows "Full".
func elementState(s, what string) (full bool, rest string, err error) {
	s, ok := strings.CutPrefix(s, ":")
	if !ok {
		return false, s, fmt.Errorf(`want ":" after the %s number`, what)
	}
	s = strings.TrimSpace(s)
	if s == "Empty" {
		return false, "", nil
	}
	rest, ok = strings.CutPrefix(s, "Full")
	if !ok {
		return false, s, errors.New(`want "Empty" or "Full"`)
	}
	return true, rest, nil
}

// volumeTags parses ":VolumeTag = X" (drives) or " :VolumeTag=X" (slots),
// optionally followed by ":AlternateVolumeTag = Y" (ignored), and returns
// the primary tag.
func volumeTags(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", nil
	}
	primary, seen := "", false
	for _, part := range strings.Split(strings.TrimPrefix(s, ":"), ":") {
		key, val, ok := strings.Cut(part, "=")
		key = strings.TrimSpace(key)
		if !ok || key != "VolumeTag" && key != "AlternateVolumeTag" {
			return "", fmt.Errorf("unexpected %q after the element's state", clip(part))
		}
		fields := strings.Fields(val)
		if len(fields) != 1 {
			return "", fmt.Errorf("%s %q is not one word", key, strings.TrimSpace(val))
		}
		for _, r := range fields[0] {
			if r < 0x21 || r > 0x7e {
				return "", fmt.Errorf("%s %q has a character that is not printable ASCII", key, fields[0])
			}
		}
		if key == "VolumeTag" {
			if seen {
				return "", errors.New("two VolumeTags")
			}
			primary, seen = fields[0], true
		}
	}
	return primary, nil
}

// Format prints the status as mtx 1.3 does (used to check the parser
// against itself, and by the tests' fake mtx).
func (s *MtxStatus) Format() string {
	var b strings.Builder
	ie := 0
	for _, sl := range s.Slots {
		if sl.ImportExport {
			ie++
		}
	}
	fmt.Fprintf(&b, "  Storage Changer %s:%d Drives, %d Slots ( %d Import/Export )\n", s.Changer, len(s.Drives), len(s.Slots), ie)
	for _, d := range s.Drives {
		fmt.Fprintf(&b, "Data Transfer Element %d:", d.Index)
		switch {
		case !d.Full:
			b.WriteString("Empty")
		case d.Source > 0:
			fmt.Fprintf(&b, "Full (Storage Element %d Loaded)", d.Source)
		default:
			b.WriteString("Full (Unknown Storage Element Loaded)")
		}
		if d.Full && d.Barcode != "" {
			fmt.Fprintf(&b, ":VolumeTag = %s", d.Barcode)
		}
		b.WriteByte('\n')
	}
	for _, sl := range s.Slots {
		fmt.Fprintf(&b, "      Storage Element %d", sl.Slot)
		if sl.ImportExport {
			b.WriteString(" IMPORT/EXPORT")
		}
		if !sl.Full {
			b.WriteString(":Empty\n")
			continue
		}
		b.WriteString(":Full ")
		if sl.Barcode != "" {
			fmt.Fprintf(&b, ":VolumeTag=%s", sl.Barcode)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// mtxRunner runs the mtx program on one changer device.
type mtxRunner struct {
	program   string
	changer   string
	noBarcode bool
	timeout   time.Duration
}

// run runs `mtx -f CHANGER args...` and returns its standard output. A
// failure names the command, how it ended, and what mtx said.
func (m mtxRunner) run(parent context.Context, args ...string) (string, error) {
	if err := parent.Err(); err != nil {
		return "", fmt.Errorf("%s -f %s %s: not run: %w", m.program, m.changer, strings.Join(args, " "), err)
	}
	ctx, cancel := context.WithTimeout(parent, m.timeout)
	defer cancel()
	argv := append([]string{"-f", m.changer}, args...)
	cmd := exec.CommandContext(ctx, m.program, argv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err == nil {
		return stdout.String(), nil
	}
	what := m.program + " " + strings.Join(argv, " ")
	if err := parent.Err(); err != nil {
		return "", fmt.Errorf("%s: stopped (killed): %w", what, err)
	}
	if ctx.Err() != nil {
		return "", fmt.Errorf("%s: no answer within %v (killed); check the library", what, m.timeout)
	}
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
		return "", fmt.Errorf("%s: %w; install mtx or set the changer's mtx path", what, err)
	}
	said := lastLines(stderr.String()+stdout.String(), 4)
	if said == "" {
		said = "(no message)"
	}
	return "", fmt.Errorf("%s: %v: %s", what, err, said)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " / ")
}

func (m mtxRunner) status(ctx context.Context) (*MtxStatus, error) {
	args := []string{"status"}
	if m.noBarcode {
		args = []string{"nobarcode", "status"}
	}
	out, err := m.run(ctx, args...)
	if err != nil {
		return nil, err
	}
	st, err := ParseMtxStatus(out)
	if err != nil {
		return nil, fmt.Errorf("%s -f %s status: %w", m.program, m.changer, err)
	}
	return st, nil
}
