package image

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"strings"
	"testing"
)

// table builds a payload of frames with the given compressed/decompressed
// sizes (frame bytes are filler) followed by a seek table.
func table(t testing.TB, sizes [][2]int64) ([]byte, []Frame) {
	var b bytes.Buffer
	var frames []Frame
	var off, tarOff int64
	for i, s := range sizes {
		b.Write(bytes.Repeat([]byte{byte(i)}, int(s[0])))
		frames = append(frames, Frame{Index: i, TarOffset: tarOff, TarSize: s[1], Offset: off, Size: s[0]})
		off += s[0]
		tarOff += s[1]
	}
	if err := AppendSeekTable(&b, frames); err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), frames
}

func TestReadSeekTable(t *testing.T) {
	good, frames := table(t, [][2]int64{{10, 100}, {20, 200}, {5, 7}})
	got, err := ReadSeekTable(bytes.NewReader(good), int64(len(good)))
	if err != nil || !reflect.DeepEqual(got, frames) {
		t.Fatalf("ReadSeekTable = %v, %v; want %v", got, err, frames)
	}
	// Layout check against the spec: skippable magic, frame size, entries, footer.
	tab := good[35:]
	if binary.LittleEndian.Uint32(tab) != 0x184D2A5E || binary.LittleEndian.Uint32(tab[4:]) != 3*8+9 ||
		binary.LittleEndian.Uint32(tab[8:]) != 10 || binary.LittleEndian.Uint32(tab[12:]) != 100 ||
		binary.LittleEndian.Uint32(tab[len(tab)-9:]) != 3 || tab[len(tab)-5] != 0 ||
		binary.LittleEndian.Uint32(tab[len(tab)-4:]) != 0x8F92EAB1 {
		t.Fatalf("seek table layout wrong: % x", tab)
	}

	// With the checksum flag, entries are 12 bytes and still readable.
	var ck bytes.Buffer
	ck.Write(bytes.Repeat([]byte{1}, 30))
	binary.Write(&ck, binary.LittleEndian, []uint32{0x184D2A5E, 2*12 + 9, 10, 100, 0xdead, 20, 200, 0xbeef, 2})
	ck.Write([]byte{0x80})
	binary.Write(&ck, binary.LittleEndian, uint32(0x8F92EAB1))
	got, err = ReadSeekTable(bytes.NewReader(ck.Bytes()), int64(ck.Len()))
	if err != nil || len(got) != 2 || got[1] != (Frame{Index: 1, TarOffset: 100, TarSize: 200, Offset: 10, Size: 20}) {
		t.Fatalf("checksummed table: %v %v", got, err)
	}

	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte{}, good...)) }
	n := len(good)
	tests := []struct {
		name string
		b    []byte
		want string
	}{
		{"tiny", good[:5], "too small"},
		{"no magic", mod(func(b []byte) []byte { b[n-1] ^= 1; return b }), "no seekable magic"},
		{"truncated", good[:n-3], "no seekable magic"},
		{"reserved bits", mod(func(b []byte) []byte { b[n-5] = 0x04; return b }), "reserved bits"},
		{"too many frames", mod(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[n-9:], 1000); return b }), "needs"},
		{"over limit", mod(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[n-9:], MaxFrames+1); return b }), "exceed"},
		{"fewer frames", mod(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[n-9:], 2); return b }), "magic"},
		{"skippable magic", mod(func(b []byte) []byte { b[35] ^= 1; return b }), "table frame at payload offset 35 has magic"},
		{"frame size", mod(func(b []byte) []byte { b[39]++; return b }), "table frame size"},
		{"zero size", mod(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[43:], 0); return b }), "compressed size 0"},
		{"sum too big", mod(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[43:], 1000); return b }), "precede the table"},
		{"sum too small", mod(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[43:], 9); return b }), "precede the table"},
		{"extra bytes before", append([]byte{0}, good...), "precede the table"},
	}
	for _, tc := range tests {
		_, err := ReadSeekTable(bytes.NewReader(tc.b), int64(len(tc.b)))
		if err == nil || !strings.HasPrefix(err.Error(), "image seek table: ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}

func FuzzReadSeekTable(f *testing.F) {
	good, _ := table(f, [][2]int64{{10, 100}, {20, 200}})
	f.Add(good)
	empty, _ := table(f, nil)
	f.Add(empty)
	f.Add([]byte{0x5e, 0x2a, 0x4d, 0x18, 9, 0, 0, 0, 0, 0, 0, 0, 0x80, 0xb1, 0xea, 0x92, 0x8f})
	f.Fuzz(func(t *testing.T, b []byte) {
		frames, err := ReadSeekTable(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		var off, tarOff int64
		for i, fr := range frames {
			if fr.Index != i || fr.Offset != off || fr.TarOffset != tarOff || fr.Size <= 0 || fr.TarSize < 0 {
				t.Fatalf("frame %d inconsistent: %+v", i, fr)
			}
			off += fr.Size
			tarOff += fr.TarSize
		}
		if off > int64(len(b)) {
			t.Fatalf("frames cover %d bytes of a %d-byte payload", off, len(b))
		}
	})
}
