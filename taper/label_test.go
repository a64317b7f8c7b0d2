package taper

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/image"
)

// labelText pads text to a label record and, when it has a label-sha256
// line, gives that line the right value (so that tests reach the rules
// behind the checksum).
func labelText(text string) []byte {
	b := make([]byte, LabelSize)
	copy(b, text)
	if off := image.FindSumLine(b, LabelSumKey); off >= 0 {
		copy(b[off:], image.BlockSum(b, off))
	}
	return b
}

// sumLine is a label-sha256 line that labelText seals.
var sumLine = LabelSumKey + ": " + strings.Repeat("0", image.SumHexLen) + "\n"

var goodText = "TAPIR TAPESTART 20240506070809 DailySet1-007\norg: Daily Set\nblocksize: 262144\ncreated: 2024-05-06T07:08:09+02:00\n" + sumLine

func TestLabelRoundTrip(t *testing.T) {
	cases := []Label{
		{Datestamp: NeverWritten, Label: "DailySet1-001", Org: "DailySet1", Blocksize: 256 << 10, Created: testTime},
		{Datestamp: "20240506070809", Label: "a.b_c-d+e:f@g", Org: "Ünïcode org with spaces", Blocksize: 1024,
			Created: time.Date(2031, 1, 2, 3, 4, 5, 999, time.FixedZone("", -5*3600-30*60))},
		{Datestamp: "19991231235959", Label: strings.Repeat("L", MaxLabelLen), Org: strings.Repeat("o", MaxOrgLen), Blocksize: MaxBlocksize, Created: testTime},
	}
	for _, l := range cases {
		b, err := l.Marshal()
		if err != nil {
			t.Fatalf("%s: %v", l.Label, err)
		}
		if len(b) != LabelSize {
			t.Fatalf("%s: %d bytes", l.Label, len(b))
		}
		got, err := ParseLabel(b)
		if err != nil {
			t.Fatalf("%s: %v", l.Label, err)
		}
		if got.Datestamp != l.Datestamp || got.Label != l.Label || got.Org != l.Org || got.Blocksize != l.Blocksize ||
			!got.Created.Equal(l.Created.Truncate(time.Second)) {
			t.Fatalf("round trip %+v -> %+v", l, got)
		}
		again, _ := got.Marshal()
		if !bytes.Equal(again, b) {
			t.Fatalf("%s: Marshal(ParseLabel(b)) != b", l.Label)
		}
	}
	b, _ := cases[0].Marshal()
	want := "TAPIR TAPESTART X DailySet1-001\norg: DailySet1\nblocksize: 262144\ncreated: 2024-05-06T07:08:09Z\nlabel-sha256: "
	if !bytes.HasPrefix(b, []byte(want)) || bytes.IndexByte(b, 0) != len(want)+65 || !bytes.Equal(labelText(string(b[:len(want)+65])), b) {
		t.Fatalf("label text %q, want %q", b[:bytes.IndexByte(b, 0)], want)
	}
}

func TestParseLabelErrors(t *testing.T) {
	if _, err := ParseLabel(labelText(goodText)); err != nil {
		t.Fatalf("good label: %v", err)
	}
	mod := func(old, new string) []byte { return labelText(strings.Replace(goodText, old, new, 1)) }
	trailing := labelText(goodText)
	trailing[LabelSize-1] = 'x'
	full := bytes.Repeat([]byte("a"), LabelSize)
	cases := []struct {
		name string
		b    []byte
		want string
	}{
		{"short", labelText(goodText)[:LabelSize-1], "exactly 32768"},
		{"long", append(labelText(goodText), 0), "exactly 32768"},
		{"empty", nil, "exactly 32768"},
		{"no padding", full, "no NUL"},
		{"junk after text", trailing, "label checksum mismatch: the label was changed or damaged after it was written: padding at offset 32767"},
		{"junk after text, checksum right", labelText(string(trailing)), "non-NUL byte at offset 32767"},
		{"amanda", labelText("AMANDA: TAPESTART DATE X TAPE DailySet1-01\n"), "does not begin with"},
		{"no final newline", labelText(strings.TrimSuffix(goodText, "\n")), "label checksum missing"},
		{"four lines", mod("org: Daily Set\n", ""), "4 lines"},
		{"six lines", mod("org:", "extra: 1\norg:"), "6 lines"},
		{"no checksum", labelText(strings.Replace(goodText, sumLine, "", 1)), "label checksum missing"},
		{"checksum not last", labelText("TAPIR TAPESTART X L\norg: o\nblocksize: 1024\n" + sumLine + "created: 2000-01-01T00:00:00Z\n"), "label line 4"},
		{"double space", mod("TAPESTART 2024", "TAPESTART  2024"), "single spaces"},
		{"extra field", mod("DailySet1-007", "DailySet1-007 x"), "single spaces"},
		{"bad date", mod("20240506070809", "20241306070809"), "not a valid date"},
		{"short datestamp", mod("20240506070809", "2024050607080"), "neither"},
		{"lower x", mod("20240506070809", "x"), "neither"},
		{"bad label char", mod("DailySet1-007", "Daily/Set"), "has '/'"},
		{"label too long", mod("DailySet1-007", strings.Repeat("a", 65)), "at most 64"},
		{"crlf", labelText(strings.ReplaceAll(goodText, "\n", "\r\n")), ""},
		{"org order", labelText("TAPIR TAPESTART X L\nblocksize: 262144\norg: x\ncreated: 2024-05-06T07:08:09Z\n" + sumLine), "line 2"},
		{"empty org", mod("org: Daily Set", "org: "), "org is empty"},
		{"org space", mod("org: Daily Set", "org:  Daily Set"), "white space"},
		{"org tab", mod("Daily Set", "Daily\tSet"), "control"},
		{"org bad utf8", mod("Daily Set", "Daily\xffSet"), "UTF-8"},
		{"blocksize leading zero", mod("262144", "0262144"), "not a decimal"},
		{"blocksize plus", mod("262144", "+262144"), "not a decimal"},
		{"blocksize text", mod("262144", "256k"), "not a decimal"},
		{"blocksize odd", mod("262144", "1000"), "multiple of 1 KiB"},
		{"blocksize huge", mod("262144", "99999999999999999999"), "not a decimal"},
		{"blocksize too big", mod("262144", "33554432"), "multiple of 1 KiB"},
		{"created fraction", mod("07:08:09+02:00", "07:08:09.5+02:00"), "RFC 3339"},
		{"created lower z", mod("07:08:09+02:00", "07:08:09z"), "RFC 3339"},
		{"created +00:00", mod("07:08:09+02:00", "07:08:09+00:00"), "RFC 3339"},
		{"created garbage", mod("2024-05-06T07:08:09+02:00", "yesterday"), "RFC 3339"},
		{"missing key", mod("created: ", "made: "), "line 4"},
	}
	for _, c := range cases {
		l, err := ParseLabel(c.b)
		if err == nil {
			t.Errorf("%s: parsed as %+v", c.name, l)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q does not mention %q", c.name, err, c.want)
		}
	}
}

func TestMarshalErrors(t *testing.T) {
	good := testLabel("L-1")
	cases := []struct {
		name string
		mod  func(*Label)
		want string
	}{
		{"zero created", func(l *Label) { l.Created = time.Time{} }, "created time is not set"},
		{"year 10000", func(l *Label) { l.Created = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, "RFC 3339"},
		{"empty label", func(l *Label) { l.Label = "" }, "empty"},
		{"space in label", func(l *Label) { l.Label = "a b" }, "' '"},
		{"bad datestamp", func(l *Label) { l.Datestamp = "" }, "neither"},
		{"newline in org", func(l *Label) { l.Org = "a\nb" }, "control"},
		{"blocksize 0", func(l *Label) { l.Blocksize = 0 }, "blocksize 0"},
	}
	for _, c := range cases {
		l := good
		c.mod(&l)
		if _, err := l.Marshal(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error mentioning %q", c.name, err, c.want)
		}
	}
}

func TestReadLabel(t *testing.T) {
	tarHeader := make([]byte, 512)
	copy(tarHeader, "etc/passwd")
	copy(tarHeader[257:], "ustar\x0000")
	cases := []struct {
		name    string
		write   func(d Device)
		blank   bool
		foreign string // substring of Found
	}{
		{"blank", func(d Device) {}, true, ""},
		{"empty file 0", func(d Device) { d.WriteFilemark() }, true, ""},
		{"empty file 0 then data", func(d Device) {
			d.WriteFilemark()
			d.WriteRecord([]byte("x"))
			d.WriteFilemark()
		}, false, "empty file 0 followed"},
		{"amanda", func(d Device) {
			d.WriteRecord(labelText("AMANDA: TAPESTART DATE X TAPE DailySet1-01\n\014\n"))
			d.WriteFilemark()
		}, false, `an Amanda volume: "AMANDA: TAPESTART DATE X TAPE DailySet1-01"`},
		{"tar", func(d Device) { d.WriteRecord(tarHeader); d.WriteFilemark() }, false, `a tar archive (first member "etc/passwd")`},
		{"gzip", func(d Device) { d.WriteRecord([]byte{0x1f, 0x8b, 8, 0}); d.WriteFilemark() }, false, "gzip data"},
		{"text", func(d Device) { d.WriteRecord([]byte("hello world\nmore")); d.WriteFilemark() }, false, `text beginning "hello world"`},
		{"binary", func(d Device) { d.WriteRecord([]byte{1, 2, 3, 0xff}); d.WriteFilemark() }, false, "binary data beginning 01 02 03 ff"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, _ := newVtape(t, 1<<30, 0)
			c.write(v)
			l, err := ReadLabel(v)
			var fe *ForeignError
			switch {
			case c.blank:
				if !errors.Is(err, ErrBlank) || !strings.Contains(err.Error(), v.Name()) {
					t.Fatalf("got %+v, %v; want ErrBlank naming the device", l, err)
				}
			case !errors.Is(err, ErrForeign) || !errors.As(err, &fe):
				t.Fatalf("got %+v, %v; want a ForeignError", l, err)
			case !strings.Contains(fe.Found, c.foreign) || fe.Device != v.Name():
				t.Fatalf("found %q on %q, want it to contain %q", fe.Found, fe.Device, c.foreign)
			}
		})
	}

	v, _ := newVtape(t, 1<<30, 0)
	v.Eject()
	if _, err := ReadLabel(v); !errors.Is(err, ErrNoMedium) {
		t.Fatalf("no medium: %v", err)
	}
	v2, _ := newVtape(t, 1<<30, 0)
	if err := WriteLabel(v2, Label{Label: "bad label"}); err == nil {
		t.Fatal("WriteLabel of an invalid label accepted")
	}
	if names := v2.FileNames(); len(names) != 0 {
		t.Fatalf("an invalid label wrote %v", names)
	}
}

func FuzzParseLabel(f *testing.F) {
	f.Add([]byte(goodText))
	never := labelText("TAPIR TAPESTART X L\norg: o\nblocksize: 1024\ncreated: 2000-01-01T00:00:00Z\n" + sumLine)
	f.Add(never[:bytes.IndexByte(never, 0)])
	f.Add([]byte("AMANDA: TAPESTART DATE X TAPE DailySet1-01\n"))
	f.Add([]byte("TAPIR TAPESTART 20240506070809 A B\norg: \xff\nblocksize: 00\ncreated: 2024-05-06T07:08:09.1Z\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// As it is, padded, and padded with its checksum line (if any)
		// set right, so that the rules behind the checksum are fuzzed too.
		for _, b := range [][]byte{data, padLabel(data), labelText(string(padLabel(data)))} {
			l, err := ParseLabel(b)
			if err != nil {
				if l != nil {
					t.Fatal("label and error both returned")
				}
				continue
			}
			again, err := l.Marshal()
			if err != nil {
				t.Fatalf("parsed label %+v does not marshal: %v", l, err)
			}
			if !bytes.Equal(again, b) {
				t.Fatalf("Marshal(ParseLabel(b)) != b for %q", b[:bytes.IndexByte(b, 0)])
			}
		}
	})
}

func padLabel(b []byte) []byte {
	if len(b) >= LabelSize {
		return b
	}
	p := make([]byte, LabelSize)
	copy(p, b)
	return p
}
