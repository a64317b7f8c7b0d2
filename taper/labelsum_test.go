package taper

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/tapir-backup/tapir/taper/fakest"
)

// TestLabelEveryByteChecked: a changed byte anywhere in a label record,
// text or padding, makes ParseLabel fail with ErrLabelChecksum, and the
// message names the line (or the padding) and the byte.
func TestLabelEveryByteChecked(t *testing.T) {
	good, err := testLabel("DailySet1-007").Marshal()
	if err != nil {
		t.Fatal(err)
	}
	end := bytes.IndexByte(good, 0)
	text := string(good[:end])
	for off := 0; off <= end+1; off++ {
		b := append([]byte(nil), good...)
		b[off] ^= 0x01
		_, err := ParseLabel(b)
		if !errors.Is(err, ErrLabelChecksum) {
			t.Fatalf("offset %d: %v, want a checksum error", off, err)
		}
		var want string
		if off >= end {
			want = "padding at offset " + itoa(off)
		} else {
			line := 1 + strings.Count(text[:off], "\n")
			want = "line " + itoa(line) + " ("
		}
		if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), ", offset "+itoa(off)+": reads ") && off < end {
			t.Fatalf("offset %d: %v, want it to name %q", off, err, want)
		}
	}
	for _, tc := range []struct {
		at   string
		i    int
		want string
	}{
		{"TAPESTART", 1, "line 1 (TAPIR TAPESTART)"},
		{" X ", 1, "line 1 (datestamp)"}, // testLabel is never written: X
		{"DailySet1-007", 1, "line 1 (label)"},
		{"org: ", 1, "line 2 (org)"},
		{"blocksize: ", 12, "line 3 (blocksize)"},
		{"created: 2024", 1, "line 4 (created)"},
		{"label-sha256", 1, "line 5 (label-sha256)"},
		{"label-sha256: ", 20, "line 5 (label-sha256)"},
	} {
		i := strings.Index(text, tc.at)
		if i < 0 {
			t.Fatalf("test bug: %q", tc.at)
		}
		b := append([]byte(nil), good...)
		b[i+tc.i] ^= 0x02
		if _, err := ParseLabel(b); !errors.Is(err, ErrLabelChecksum) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.at, err, tc.want)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestReadDamagedLabel: a volume whose label has one flipped byte is read
// as a damaged label (unreadable), never as blank, foreign or another
// volume; so are a tapir label that does not parse and one without a
// checksum.
func TestReadDamagedLabel(t *testing.T) {
	good, _ := testLabel("T-001").Marshal()
	flippedLabel := append([]byte(nil), good...)
	flippedLabel[bytes.Index(good, []byte("T-001"))+4] = '2' // T-002: another volume, if it were believed
	noSum := labelText(string(good[:bytes.Index(good, []byte(LabelSumKey))]))
	for _, tc := range []struct {
		name, want string
		rec        []byte
	}{
		{"flipped byte", "line 1 (label), offset 22: reads \"2\" where \"1\" was written", flippedLabel},
		{"checksum missing", "label checksum missing", noSum},
		{"does not parse", "label line 3: blocksize 12", labelText(strings.Replace(string(good[:bytes.IndexByte(good, 0)]), "blocksize: 4096", "blocksize: 12", 1))},
		{"short", "label record is", good[:200]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, _ := newVtape(t, 1<<30, 0)
			v.WriteRecord(tc.rec)
			v.WriteFilemark()
			l, err := ReadLabel(v)
			if l != nil || !errors.Is(err, ErrDamagedLabel) || errors.Is(err, ErrBlank) || errors.Is(err, ErrForeign) {
				t.Fatalf("ReadLabel: %+v, %v; want ErrDamagedLabel", l, err)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), v.Name()) || !strings.Contains(err.Error(), "tapir label --force") {
				t.Fatalf("ReadLabel: %v; want it to name the device, %q and what to do", err, tc.want)
			}
			if tc.name == "flipped byte" && !errors.Is(err, ErrLabelChecksum) {
				t.Errorf("a flipped byte is not a checksum error: %v", err)
			}
			si := SlotInfoOf(3, l, err)
			if si.Err == nil || si.Blank || si.Foreign != "" || si.Label != nil {
				t.Errorf("slot info %+v, want unreadable", si)
			}
		})
	}
}

// TestDiskChangerDamagedLabel: the inventory reports a slot whose label
// was changed on disk as unreadable, with the checksum error.
func TestDiskChangerDamagedLabel(t *testing.T) {
	root := t.TempDir()
	c, err := NewDiskChanger(root, 2, 1<<30, testBS, nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := c.Load(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteLabel(d, testLabel("T-001")); err != nil {
		t.Fatal(err)
	}
	c.Eject(context.Background())
	p := filepath.Join(c.SlotDir(1), "00000.LABEL")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[bytes.Index(b, []byte("blocksize: "))+12] ^= 1
	os.WriteFile(p, b, 0o640)
	inv, err := c.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s := inv[0]; s.Err == nil || !errors.Is(s.Err, ErrLabelChecksum) || !strings.Contains(s.Err.Error(), "line 3 (blocksize)") || s.Blank || s.Label != nil {
		t.Errorf("slot 1: %+v", s)
	}
}

// TestRobotChangerDamagedLabel: a robot scans a cartridge whose label has a
// flipped byte: the slot is unreadable (with the checksum error), and stays
// so after a restart, from what the robot remembers.
func TestRobotChangerDamagedLabel(t *testing.T) {
	lib := newFakeLibrary(t, []string{"A00001L6", "A00002L6"}, "")
	d := fakest.New(fakest.Options{Cartridges: []string{"A00001L6", "A00002L6"}, Empty: true})
	labelCartridges(t, d, map[string]string{"A00001L6": "DailySet1-001"})
	// A00002L6: a label with one flipped bit.
	rec, _ := testLabel("DailySet1-002").Marshal()
	rec[bytes.Index(rec, []byte("org: "))+6] ^= 0x04
	if err := d.Insert("A00002L6"); err != nil {
		t.Fatal(err)
	}
	h, _ := d.Open(fakest.NST0, syscall.O_RDWR)
	tp, err := NewTape("mem", h)
	if err != nil {
		t.Fatal(err)
	}
	tp.WriteRecord(rec)
	tp.WriteFilemark()
	tp.Eject()
	tp.Close()
	if _, err := d.Remove(); err != nil {
		t.Fatal(err)
	}
	cfg := RobotConfig{Changer: "/dev/sg3", MTX: lib.MTX, Drives: []string{"/dev/nst0"}, StateFile: filepath.Join(t.TempDir(), "robot.json"), Open: followingOpener(t, lib, d)}
	c, err := NewRobotChanger(cfg)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := c.Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	check := func(when string, inv []SlotInfo) {
		t.Helper()
		if inv[0].Label == nil || inv[0].Label.Label != "DailySet1-001" {
			t.Errorf("%s: slot 1: %+v", when, inv[0])
		}
		if s := inv[1]; !errors.Is(s.Err, ErrDamagedLabel) || !strings.Contains(s.Err.Error(), "line 2 (org)") || s.Blank || s.Foreign != "" || s.Label != nil {
			t.Errorf("%s: slot 2: %+v", when, s)
		}
	}
	check("scan", inv)
	c.Eject(context.Background())
	c.Close()
	c2, err := NewRobotChanger(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	inv, _ = c2.Inventory(context.Background())
	check("after a restart", inv)
}

// TestLabelSumByHand: the sed/sha256sum recipe of docs/format/volume.md.
func TestLabelSumByHand(t *testing.T) {
	for _, tool := range []string{"sh", "sed", "sha256sum", "grep", "cut"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	const recipe = `sed -E "s/^(label-sha256: )[0-9a-f]{64}\$/\1$(printf '%064d' 0)/" "$1" | sha256sum | cut -c1-64; ` +
		`grep -a '^label-sha256: ' "$1" | cut -c15-`
	doc, err := os.ReadFile(filepath.Join("..", "docs", "format", "volume.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), `sed -E "s/^(label-sha256: )[0-9a-f]{64}\$/\1$(printf '%064d' 0)/" LABEL | sha256sum | cut -c1-64`) ||
		!strings.Contains(string(doc), `grep -a '^label-sha256: ' LABEL | cut -c15-`) {
		t.Fatal("docs/format/volume.md does not give the recipe this test runs")
	}
	b, _ := testLabel("DailySet1-001").Marshal()
	file := filepath.Join(t.TempDir(), "00000.LABEL")
	run := func() []string {
		t.Helper()
		os.WriteFile(file, b, 0o600)
		out, err := exec.Command("sh", "-c", recipe, "sh", file).Output()
		if err != nil {
			t.Fatalf("recipe: %v", err)
		}
		return strings.Fields(string(out))
	}
	if got := run(); len(got) != 2 || got[0] != got[1] {
		t.Fatalf("by hand, a good label: %q", got)
	}
	b[LabelSize-1] = 1
	if got := run(); len(got) != 2 || got[0] == got[1] {
		t.Fatalf("by hand, a damaged label passes: %q", got)
	}
}
