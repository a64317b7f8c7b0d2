package taper

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func readSample(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "mtx", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseMtxStatusSamples(t *testing.T) {
	cases := []struct {
		file           string
		changer        string
		header         [3]int // drives, slots, import/export from the header
		drives, slots  int
		full, ie       int // full slots, import/export slots
		drive0         MtxDrive
		checkSlot      MtxSlot
		noSuchSlotOver int
	}{
		{"tandberg-storageloader-lto5.txt", "/dev/sg5", [3]int{1, 7, 0}, 1, 7, 7, 0,
			MtxDrive{Index: 0}, MtxSlot{Slot: 2, Full: true, Barcode: "A00008L5"}, 7},
		{"ibm-03584l32-3drives.txt", "/dev/tape/by-id/scsi-1IBM_03584L32_0000079313020400", [3]int{3, 24, 4}, 3, 24, 11, 4,
			MtxDrive{Index: 0, Full: true, Source: 12, Barcode: "BRU003"}, MtxSlot{Slot: 21, ImportExport: true}, 24},
		{"proxmox-2drives-cleaning.txt", "/dev/tape/by-id/scsi-387408F60F0000", [3]int{2, 24, 4}, 2, 24, 5, 4,
			MtxDrive{Index: 0}, MtxSlot{Slot: 4, Full: true, Barcode: "CLN001CU"}, 24},
		{"amanda-chg-zd-mtx-example.txt", "/dev/changer", [3]int{1, 9, 0}, 1, 10, 10, 1,
			MtxDrive{Index: 0}, MtxSlot{Slot: 10, ImportExport: true, Full: true, Barcode: "SR0009"}, 10},
		{"mtx-1.1-dds-autoloader-nobarcode.txt", "", [3]int{-1, -1, -1}, 1, 4, 3, 0,
			MtxDrive{Index: 0, Full: true, Source: 1}, MtxSlot{Slot: 3, Full: true}, 4},
	}
	for _, c := range cases {
		st, err := ParseMtxStatus(readSample(t, c.file))
		if err != nil {
			t.Errorf("%s: %v", c.file, err)
			continue
		}
		full, ie := 0, 0
		for _, s := range st.Slots {
			if s.Full {
				full++
			}
			if s.ImportExport {
				ie++
			}
		}
		got := [3]int{st.HeaderDrives, st.HeaderSlots, st.HeaderImportExport}
		if st.Changer != c.changer || got != c.header || len(st.Drives) != c.drives || len(st.Slots) != c.slots || full != c.full || ie != c.ie {
			t.Errorf("%s: changer %q header %v, %d drives, %d slots (%d full, %d import/export)", c.file, st.Changer, got, len(st.Drives), len(st.Slots), full, ie)
		}
		if d, _ := st.Drive(0); d != c.drive0 {
			t.Errorf("%s: drive 0 = %+v, want %+v", c.file, d, c.drive0)
		}
		if s, ok := st.Slot(c.checkSlot.Slot); !ok || s != c.checkSlot {
			t.Errorf("%s: slot %d = %+v, want %+v", c.file, c.checkSlot.Slot, s, c.checkSlot)
		}
		if _, ok := st.Slot(c.noSuchSlotOver + 1); ok {
			t.Errorf("%s: slot %d exists", c.file, c.noSuchSlotOver+1)
		}
		// The parser reads its own output back the same.
		again, err := ParseMtxStatus(st.Format())
		if err != nil || !reflect.DeepEqual(again.Drives, st.Drives) || !reflect.DeepEqual(again.Slots, st.Slots) {
			t.Errorf("%s: Format does not parse back: %v\n%s", c.file, err, st.Format())
		}
	}
}

func TestParseMtxStatusErrors(t *testing.T) {
	hdr := "  Storage Changer /dev/sg3:1 Drives, 2 Slots ( 0 Import/Export )\n"
	cases := []struct {
		name, out, want string
	}{
		{"empty", "", "printed nothing"},
		{"tape drive", "Product Type: Tape Drive\nVendor ID: 'HP'\n", "is the device the changer"},
		{"no drives", hdr + "      Storage Element 1:Empty\n", "no \"Data Transfer Element\" line"},
		{"bad drive state", hdr + "Data Transfer Element 0:Fool\n", `line 2 "Data Transfer Element 0:Fool": want "Empty" or "Full"`},
		{"no colon", hdr + "Data Transfer Element 0 Empty\n", `want ":"`},
		{"bad slot number", hdr + "Data Transfer Element 0:Empty\n      Storage Element x:Full\n", "no element number"},
		{"slot zero", hdr + "Data Transfer Element 0:Empty\n      Storage Element 0:Full\n", "count from 1"},
		{"huge number", hdr + "Data Transfer Element 99999999999:Empty\n", "too large"},
		{"duplicate slot", hdr + "Data Transfer Element 0:Empty\n      Storage Element 1:Empty\n      Storage Element 1:Full\n", "listed twice"},
		{"duplicate drive", hdr + "Data Transfer Element 0:Empty\nData Transfer Element 0:Empty\n", "listed twice"},
		{"bad source", hdr + "Data Transfer Element 0:Full (Storage Element x Loaded)\n", "bad source element"},
		{"unclosed source", hdr + "Data Transfer Element 0:Full (Storage Element 1 Loaded\n", `no ")"`},
		{"junk after state", hdr + "Data Transfer Element 0:Empty\n      Storage Element 1:Full :Colour=red\n", `unexpected "Colour=red"`},
		{"tag with a space", hdr + "Data Transfer Element 0:Empty\n      Storage Element 1:Full :VolumeTag=AB CD\n", "not one word"},
		{"tag with control", hdr + "Data Transfer Element 0:Empty\n      Storage Element 1:Full :VolumeTag=A\x01B\n", "not printable"},
	}
	for _, c := range cases {
		_, err := ParseMtxStatus(c.out)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
		}
	}
	// Alternate tags are accepted and ignored; an unknown source is 0.
	st, err := ParseMtxStatus(hdr + "Data Transfer Element 0:Full (Unknown Storage Element Loaded):VolumeTag = X1:AlternateVolumeTag = Y1\n      Storage Element 1:Full :VolumeTag=X2:AlternateVolumeTag=Y2\n")
	if err != nil || st.Drives[0] != (MtxDrive{Full: true, Barcode: "X1"}) || st.Slots[0].Barcode != "X2" {
		t.Fatalf("alternate tags: %+v %v", st, err)
	}
}

func FuzzParseMtxStatus(f *testing.F) {
	for _, name := range []string{"tandberg-storageloader-lto5.txt", "ibm-03584l32-3drives.txt", "proxmox-2drives-cleaning.txt",
		"amanda-chg-zd-mtx-example.txt", "mtx-1.1-dds-autoloader-nobarcode.txt"} {
		f.Add(readSample(f, name))
	}
	f.Add("Data Transfer Element 0:Full (Unknown Storage Element Loaded):VolumeTag = A:AlternateVolumeTag = B\n")
	f.Fuzz(func(t *testing.T, out string) {
		st, err := ParseMtxStatus(out)
		if err != nil {
			return
		}
		if len(st.Drives) == 0 {
			t.Fatal("parsed without a drive")
		}
		seen := map[int]bool{}
		for _, s := range st.Slots {
			if s.Slot < 1 || s.Slot > maxElement || seen[s.Slot] || !s.Full && s.Barcode != "" {
				t.Fatalf("bad slot %+v", s)
			}
			seen[s.Slot] = true
		}
		for _, d := range st.Drives {
			if d.Index < 0 || d.Source < 0 || !d.Full && (d.Barcode != "" || d.Source != 0) {
				t.Fatalf("bad drive %+v", d)
			}
		}
		again, err := ParseMtxStatus(st.Format())
		if err != nil {
			t.Fatalf("Format output does not parse: %v\n%s", err, st.Format())
		}
		if !reflect.DeepEqual(again.Drives, st.Drives) || !reflect.DeepEqual(again.Slots, st.Slots) {
			t.Fatalf("round trip changed the status:\n%+v\n%+v", st, again)
		}
	})
}
