package tarscan

import (
	"archive/tar"
	"bytes"
	"strings"
	"testing"

	"github.com/tapir-backup/tapir/gnutar"
)

// TestScanOffsets: every entry's offset is where its first header (its pax
// header, when it has one) starts, as the client records it.
func TestScanOffsets(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	var want []int64
	add := func(h *tar.Header, data string) {
		t.Helper()
		tw.Flush()
		want = append(want, int64(buf.Len()))
		h.Format = tar.FormatPAX
		h.Size = int64(len(data))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(data))
	}
	add(&tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755, PAXRecords: map[string]string{gnutar.PAXDumpdir: gnutar.EncodeDumpdir([]gnutar.DirEntry{{Kind: 'Y', Name: "a"}, {Kind: 'D', Name: "d"}})}}, "")
	add(&tar.Header{Name: "./a", Typeflag: tar.TypeReg, Mode: 0o644}, strings.Repeat("x", 700))
	add(&tar.Header{Name: "./d/", Typeflag: tar.TypeDir, Mode: 0o700, PAXRecords: map[string]string{gnutar.PAXDumpdir: "\x00"}}, "")
	add(&tar.Header{Name: "./d/" + strings.Repeat("long", 40), Typeflag: tar.TypeSymlink, Linkname: "./a"}, "")
	tw.Close()
	var got []Entry
	n, err := Scan(bytes.NewReader(buf.Bytes()), func(e Entry) error { got = append(got, e); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if n > int64(buf.Len()) || len(got) != len(want) {
		t.Fatalf("read %d of %d bytes, %d entries", n, buf.Len(), len(got))
	}
	for i, e := range got {
		if e.TarOffset != want[i] {
			t.Errorf("entry %q at %d, want %d", e.Path, e.TarOffset, want[i])
		}
	}
	if got[0].Path != "" || !got[0].HasDumpdir || got[2].Path != "d" || got[3].Link != "a" || got[1].Size != 700 {
		t.Errorf("entries %+v", got)
	}
	lst, err := Listings(bytes.NewReader(buf.Bytes()))
	if err != nil || len(lst) != 2 || lst["d"] != "\x00" {
		t.Errorf("listings %q %v", lst, err)
	}
}

// FuzzScan: any bytes give entries or an error, never a panic.
func FuzzScan(f *testing.F) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "./x", Typeflag: tar.TypeReg, Size: 3, Format: tar.FormatPAX, PAXRecords: map[string]string{gnutar.PAXDumpdir: "Yx\x00\x00"}})
	tw.Write([]byte("abc"))
	tw.Close()
	f.Add(buf.Bytes())
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, b []byte) {
		Scan(bytes.NewReader(b), func(Entry) error { return nil })
		Listings(bytes.NewReader(b))
	})
}
