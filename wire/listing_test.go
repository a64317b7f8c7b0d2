package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

func TestListingRoundTrip(t *testing.T) {
	in := []ListingRecord{{"", "Da\x00Yb\x00Nc\x00"}, {"a/b", ""}, {"é/x", "Y\xff\x00"}}
	var b []byte
	for _, r := range in {
		b = AppendListing(b, r.Dir, r.Dumpdir)
	}
	var out []ListingRecord
	if err := DecodeListings(b, func(r ListingRecord) error { out = append(out, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("got %q, want %q", out, in)
	}
	for i := range in {
		if out[i] != in[i] {
			t.Errorf("record %d: %q, want %q", i, out[i], in[i])
		}
	}
	stop := errors.New("stop")
	if err := DecodeListings(b, func(ListingRecord) error { return stop }); err != stop {
		t.Errorf("the callback's error is not returned: %v", err)
	}
}

func TestListingRefusesBadBatches(t *testing.T) {
	good := AppendListing(nil, "d", "Yx\x00")
	long := binary.AppendUvarint(nil, MaxPathLen+1)
	long = append(long, strings.Repeat("a", MaxPathLen+1)...)
	long = binary.AppendUvarint(long, 0)
	hugeDumpdir := binary.AppendUvarint(AppendListing(nil, "d", "")[:2], MaxDumpdirLen+1)
	for name, b := range map[string][]byte{
		"truncated":          good[:len(good)-1],
		"no dumpdir":         good[:2],
		"overlong number":    {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"dir over the limit": long,
		"announced huge":     hugeDumpdir,
	} {
		err := DecodeListings(b, func(ListingRecord) error { return nil })
		if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), "listing record") {
			t.Errorf("%s: %v, want a protocol error naming the listing record", name, err)
		}
	}
}

// A listing frame is read as a frame type, not refused as unknown.
func TestListingFrame(t *testing.T) {
	var buf bytes.Buffer
	c := NewConn(&buf)
	if err := c.WriteFrame(FrameListing, AppendListing(nil, "", "Ya\x00"), true); err != nil {
		t.Fatal(err)
	}
	typ, b, err := NewConn(&buf).ReadFrame()
	if err != nil || typ != FrameListing || len(b) == 0 {
		t.Fatalf("ReadFrame: %q %q %v", typ, b, err)
	}
}

// FuzzDecodeListings: any bytes decode to records within the bounds or a
// protocol error; never a panic.
func FuzzDecodeListings(f *testing.F) {
	f.Add(AppendListing(AppendListing(nil, "", "Da\x00"), "a/b", "Nx\x00Yy\x00"))
	f.Add([]byte{0xff, 0xff, 0xff})
	f.Add([]byte{0x01, 'a', 0x80, 0x80, 0x80, 0x02})
	f.Add(AppendIndex(nil, IndexRecord{Path: "x", Type: '0', Size: 1, Mode: 0o644, TarOffset: 512}))
	f.Fuzz(func(t *testing.T, b []byte) {
		n := 0
		err := DecodeListings(b, func(r ListingRecord) error {
			if len(r.Dir) > MaxPathLen || len(r.Dumpdir) > MaxDumpdirLen {
				t.Fatalf("over-long record accepted: %d, %d bytes", len(r.Dir), len(r.Dumpdir))
			}
			n++
			return nil
		})
		if err != nil && !errors.Is(err, ErrProtocol) {
			t.Fatalf("not a protocol error: %v", err)
		}
		if err == nil && len(b) > 0 && n == 0 {
			t.Fatalf("%d bytes decoded to no record", len(b))
		}
	})
}
