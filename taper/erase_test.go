package taper

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Erase empties the slot holding the volume it names, and nothing else: a
// slot with another label, another configuration's volume, a blank one,
// the loaded one and a write-protected one are refused untouched.
func TestDiskChangerErase(t *testing.T) {
	root := filepath.Join(t.TempDir(), "vtapes")
	if err := os.Mkdir(root, 0o750); err != nil {
		t.Fatal(err)
	}
	c, err := NewDiskChanger(root, 4, 64<<20, 64<<10, nil)
	if err != nil {
		t.Fatal(err)
	}
	write := func(slot int, org, label string, files int) {
		t.Helper()
		d, err := c.Load(context.Background(), slot)
		if err != nil {
			t.Fatal(err)
		}
		if err := WriteLabel(d, Label{Datestamp: "20250301010000", Label: label, Org: org, Blocksize: 64 << 10, Created: time.Unix(1740787200, 0)}); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < files; i++ {
			if err := d.WriteRecord(make([]byte, FirstRecordSize)); err != nil {
				t.Fatal(err)
			}
			if err := d.WriteFilemark(); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Eject(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	write(1, "test", "test-001", 2)
	write(2, "test", "test-002", 1)
	write(3, "other", "test-001", 1)
	os.WriteFile(filepath.Join(c.SlotDir(1), "notes.txt"), []byte("not a tape file"), 0o640)
	names := func(slot int) []string {
		ents, _ := os.ReadDir(c.SlotDir(slot))
		var n []string
		for _, e := range ents {
			n = append(n, e.Name())
		}
		return n
	}

	for _, tc := range []struct {
		slot       int
		org, label string
		want       string
	}{
		{2, "test", "test-001", "the slot holds volume test-002 of configuration \"test\", not test-001 of \"test\"; nothing erased"},
		{3, "test", "test-001", "the slot holds volume test-001 of configuration \"other\""},
		{4, "test", "test-001", "the slot holds a blank volume"},
		{5, "test", "test-001", "slots are 1 to 4"},
	} {
		if _, err := c.Erase(context.Background(), tc.slot, tc.org, tc.label); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("erase slot %d as %s: %v, want %q", tc.slot, tc.label, err, tc.want)
		}
	}
	if n := names(2); len(n) != 2 {
		t.Errorf("slot 2 was touched: %v", n)
	}
	if _, err := c.Load(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Erase(context.Background(), 1, "test", "test-001"); err == nil || !strings.Contains(err.Error(), "in drive 0; eject it first") {
		t.Errorf("erase the loaded slot: %v", err)
	}
	c.Eject(context.Background())
	os.Chmod(c.SlotDir(1), 0o550)
	if _, err := c.Erase(context.Background(), 1, "test", "test-001"); !errors.Is(err, ErrWriteProtected) {
		t.Errorf("erase a write-protected slot: %v", err)
	}
	os.Chmod(c.SlotDir(1), 0o750)

	n, err := c.Erase(context.Background(), 1, "test", "test-001")
	if err != nil || n != 3 {
		t.Fatalf("erase: %d files, %v", n, err)
	}
	if got := names(1); len(got) != 1 || got[0] != "notes.txt" {
		t.Errorf("slot 1 holds %v after the erase, want only notes.txt", got)
	}
	inv, _ := c.Inventory(context.Background())
	if !inv[0].Blank || inv[1].Label == nil || inv[2].Label == nil {
		t.Errorf("inventory after the erase: %+v", inv)
	}
}
