package wire

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestEntryRoundTrip(t *testing.T) {
	es := []EntryInfo{
		{Path: "etc/passwd", Type: '0', Image: 1, Size: 1234, Mode: 0o644, Mtime: 1700000000123456789, UID: 1000, GID: 100, TarOffset: 1 << 33, Span: 2048},
		{Path: "bin/run-again.sh", Type: '0', Image: 0, Source: "bin/run.sh", TarOffset: 512},
		{Path: "l", Type: '2', Link: "../x", Mtime: -5},
		{Path: "dir with spaces/\xff", Type: '5'},
	}
	var buf bytes.Buffer
	c := NewConn(&buf)
	if err := c.WriteEntries(es); err != nil {
		t.Fatal(err)
	}
	c.Flush()
	var got []EntryInfo
	if err := c.ReadEntries(len(es), func(e EntryInfo) error { got = append(got, e); return nil }); err != nil {
		t.Fatal(err)
	}
	for i := range es {
		if got[i] != es[i] {
			t.Errorf("entry %d: got %+v want %+v", i, got[i], es[i])
		}
	}
	// More records than announced, and truncated batches, are errors.
	var b []byte
	for _, e := range es {
		b = AppendEntry(b, e)
	}
	c2 := NewConn(bytes.NewBuffer(append([]byte{FrameIndex, 0, 0, byte(len(b) >> 8), byte(len(b))}, b...)))
	if err := c2.ReadEntries(2, func(EntryInfo) error { return nil }); !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), "more entry records") {
		t.Errorf("too many records: %v", err)
	}
	if err := DecodeEntries(b[:len(b)-3], func(EntryInfo) error { return nil }); !errors.Is(err, ErrProtocol) {
		t.Errorf("truncated batch: %v", err)
	}
	bad := AppendEntry(nil, EntryInfo{Path: "x", Mode: 0o170000})
	if err := DecodeEntries(bad, func(EntryInfo) error { return nil }); !errors.Is(err, ErrProtocol) {
		t.Errorf("mode out of range: %v", err)
	}
}

// FuzzDecodeEntries: any bytes decode to records or a protocol error,
// never a panic, and what decodes encodes back to the same bytes.
func FuzzDecodeEntries(f *testing.F) {
	f.Add(AppendEntry(nil, EntryInfo{Path: "a/b", Type: '0', Size: 3, Mode: 0o644, TarOffset: 512, Span: 1024}))
	f.Add(AppendEntry(AppendEntry(nil, EntryInfo{Path: "x", Type: '5'}), EntryInfo{Path: "y", Type: '1', Link: "x", Source: "x"}))
	f.Add([]byte{0x80, 0x80, 0x80})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var out []byte
		err := DecodeEntries(b, func(e EntryInfo) error {
			out = AppendEntry(out, e)
			return nil
		})
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error %v does not match ErrProtocol", err)
			}
			return
		}
		var again []EntryInfo
		if err := DecodeEntries(out, func(e EntryInfo) error { again = append(again, e); return nil }); err != nil {
			t.Fatalf("re-encoded records do not decode: %v", err)
		}
	})
}

func FuzzIndexRequest(f *testing.F) {
	f.Add([]byte(`{"op":"ls","host":"web1","dle":"/srv","path":"etc"}`))
	f.Add([]byte(`{"op":"restore","paths":["a","b"],"date":"20250601"}`))
	f.Add([]byte(`{"op":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r IndexRequest
		if err := DecodeMsg(b, &r); err != nil && !errors.Is(err, ErrProtocol) {
			t.Fatalf("error %v does not match ErrProtocol", err)
		}
		var m RestoreMsg
		if err := DecodeMsg(b, &m); err != nil && !errors.Is(err, ErrProtocol) {
			t.Fatalf("error %v does not match ErrProtocol", err)
		}
	})
}
