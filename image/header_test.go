package image

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

func sampleHeader() *Header {
	return &Header{
		Datestamp: "20250102030405", Host: "client.example.org", Path: "/home", Level: 0,
		Part: 1, Parts: 1, Comp: CompZstd,
		OriginalSize: 123456, PayloadSize: 7890,
		SHA256:    strings.Repeat("ab", 32),
		FrameSize: 1 << 20, Frames: 1, Files: 42, Encryption: "none", Blocksize: 256 << 10,
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		mod  func(h *Header)
	}{
		{"plain", func(h *Header) {}},
		{"space in path", func(h *Header) { h.Path = "/srv/my files" }},
		{"quotes and backslash", func(h *Header) { h.Path = `/a "b" 'c' \d` + "`e`" }},
		{"newline and tab", func(h *Header) { h.Path = "/x\ny\tz\r" }},
		{"non-utf8", func(h *Header) { h.Path = "/bad\xff\xfe/é" }},
		{"unicode printable stays bare", func(h *Header) { h.Path = "/données/日本" }},
		{"empty host, root path", func(h *Header) { h.Host, h.Path = "", "/" }},
		{"path looks like keyword", func(h *Header) { h.Path = "/lev" }},
		{"host with spaces", func(h *Header) { h.Host = "my host" }},
		{"path starting with quote", func(h *Header) { h.Path = `/"x` }},
		{"multi part", func(h *Header) { h.Part, h.Parts = 2, 5 }},
		{"parts unknown (on a volume)", func(h *Header) { h.Part, h.Parts = 3, Unknown }},
		{"gzip", func(h *Header) { h.Comp = CompGzip }},
		{"none", func(h *Header) { h.Comp = CompNone }},
		{"incremental", func(h *Header) { h.Level = 7 }},
		{"unknown sizes", func(h *Header) {
			h.OriginalSize, h.PayloadSize, h.Frames, h.Files, h.SHA256 = Unknown, Unknown, Unknown, Unknown, ""
		}},
		{"holding blocksize", func(h *Header) { h.Blocksize = 0 }},
		{"extra keys", func(h *Header) {
			h.Extra = map[string]string{"x-future": "some value: with colon", "empty": "", "z9": " leading space"}
		}},
		{"odd encryption", func(h *Header) { h.Encryption = "age-x25519" }},
		{"age", func(h *Header) { h.Encryption, h.Recipients = EncAge, []string{"0123456789abcdef", "fedcba9876543210"} }},
		{"age, multi part", func(h *Header) {
			h.Encryption, h.Recipients, h.Part, h.Parts = EncAge, []string{"0123456789abcdef"}, 2, Unknown
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := sampleHeader()
			tc.mod(h)
			b, err := h.Marshal()
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if len(b) != HeaderSize {
				t.Fatalf("Marshal gave %d bytes, want %d", len(b), HeaderSize)
			}
			got, err := ReadHeader(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("ReadHeader: %v\n%s", err, b[:bytes.IndexByte(b, 0)])
			}
			if !reflect.DeepEqual(got, h) {
				t.Fatalf("round trip:\n got %#v\nwant %#v", got, h)
			}
		})
	}
}

func TestHeaderText(t *testing.T) {
	h := sampleHeader()
	h.Path = "/srv/a b"
	b, err := h.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	text := string(b[:bytes.IndexByte(b, 0)])
	for _, want := range []string{
		"TAPIR FILE 20250102030405 client.example.org \"/srv/a b\" lev 0 part 1/1 comp zst\n",
		"\nsha256: " + strings.Repeat("ab", 32) + "\n",
		"\nencryption: none\nblocksize: 262144\nheader-sha256: ",
		"To restore from tape:  dd if=/dev/nst0 bs=256k skip=1 | zstd -dc | tar -xpf -\n",
		"To restore from a vtape or holding file:  dd if=FILE bs=32k skip=1 | zstd -dc | tar -xpf -\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("header text lacks %q:\n%s", want, text)
		}
	}
	h.Comp, h.Blocksize, h.Level = CompGzip, 1<<20, 1
	b, _ = h.Marshal()
	if !bytes.Contains(b, []byte("dd if=/dev/nst0 bs=1M skip=1 | gzip -dc | tar --listed-incremental=/dev/null -xpf -\n")) {
		t.Errorf("gzip/1M/incremental restore line missing:\n%s", b[:bytes.IndexByte(b, 0)])
	}
	h.Comp = CompNone
	b, _ = h.Marshal()
	if !bytes.Contains(b, []byte("dd if=FILE bs=32k skip=1 | tar --listed")) {
		t.Errorf("none restore line missing:\n%s", b[:bytes.IndexByte(b, 0)])
	}
	// The multi-part hint reads tape records of the volume's blocksize:
	// bs=32k on 256 KiB records fails with ENOMEM.
	for _, parts := range []int{3, Unknown} {
		h.Comp, h.Blocksize, h.Level, h.Part, h.Parts = CompZstd, 256<<10, 0, 2, parts
		b, _ = h.Marshal()
		text := string(b[:bytes.IndexByte(b, 0)])
		if !strings.Contains(text, "(dd if=/dev/nst0 bs=256k skip=1; dd if=/dev/nst0 bs=256k skip=1; ...) | zstd -dc | tar -xpf -\n") ||
			!strings.Contains(text, "(dd if=PART1 bs=32k skip=1; dd if=PART2 bs=32k skip=1; ...) | zstd -dc | tar -xpf -\n") {
			t.Errorf("parts %d: multi-part hint does not read tape records of the blocksize:\n%s", parts, text)
		}
	}
}

func TestMarshalRejects(t *testing.T) {
	tests := []struct {
		name string
		mod  func(h *Header)
		want string
	}{
		{"datestamp short", func(h *Header) { h.Datestamp = "2025" }, "datestamp"},
		{"datestamp invalid", func(h *Header) { h.Datestamp = "20251399000000" }, "not a valid date"},
		{"level", func(h *Header) { h.Level = 100 }, "level 100"},
		{"negative level", func(h *Header) { h.Level = -1 }, "level -1"},
		{"part 0", func(h *Header) { h.Part = 0 }, "part 0/1"},
		{"parts < part", func(h *Header) { h.Part, h.Parts = 3, 2 }, "part 3/2"},
		{"comp", func(h *Header) { h.Comp = "xz" }, "compression \"xz\""},
		{"size", func(h *Header) { h.PayloadSize = -2 }, "payload-size -2"},
		{"frame size", func(h *Header) { h.FrameSize = 0 }, "frame-size 0"},
		{"blocksize", func(h *Header) { h.Blocksize = -1 }, "blocksize -1"},
		{"sha", func(h *Header) { h.SHA256 = "ABCD" }, "sha256"},
		{"encryption", func(h *Header) { h.Encryption = "a b" }, "encryption"},
		{"age without recipients", func(h *Header) { h.Encryption = EncAge }, "without recipients"},
		{"recipients without age", func(h *Header) { h.Recipients = []string{"0123456789abcdef"} }, "only an age payload"},
		{"bad fingerprint", func(h *Header) { h.Encryption, h.Recipients = EncAge, []string{"age1xyz"} }, "16 lower-case hex"},
		{"extra key", func(h *Header) { h.Extra = map[string]string{"Bad Key": "x"} }, "extra key"},
		{"extra known", func(h *Header) { h.Extra = map[string]string{"frames": "3"} }, "duplicates a known key"},
		{"extra value", func(h *Header) { h.Extra = map[string]string{"k": "a\nb"} }, "control character"},
		{"too big", func(h *Header) { h.Path = "/" + strings.Repeat("\x01", 9000) }, "does not fit"},
		{"relative path", func(h *Header) { h.Path = "etc" }, "not absolute"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := sampleHeader()
			tc.mod(h)
			_, err := h.Marshal()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Marshal error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// pad makes a HeaderSize block from text.
func pad(text string) []byte {
	b := make([]byte, HeaderSize)
	copy(b, text)
	return b
}

// seal gives b a matching checksum when it has a header-sha256 line (so
// that a test reaches the parser behind the checksum), and returns it.
func seal(b []byte) []byte {
	b = append([]byte(nil), b...)
	if off := FindSumLine(b, HeaderSumKey); off >= 0 {
		copy(b[off:], BlockSum(b, off))
	}
	return b
}

// sumLine is a header-sha256 line to be sealed.
var sumLine = HeaderSumKey + ": " + strings.Repeat("0", SumHexLen) + "\n"

func TestParseHeaderRejects(t *testing.T) {
	good, err := sampleHeader().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	goodText := string(good[:bytes.IndexByte(good, 0)])
	repl := func(old, new string) []byte {
		if !strings.Contains(goodText, old) {
			t.Fatalf("test bug: %q not in header", old)
		}
		return pad(strings.Replace(goodText, old, new, 1))
	}
	tests := []struct {
		name string
		b    []byte
		want string
	}{
		{"short", good[:1000], "got 1000 bytes"},
		{"long", append(append([]byte{}, good...), 0), "got 32769 bytes"},
		{"no NUL", bytes.Repeat([]byte("x"), HeaderSize), "no NUL padding"},
		{"garbage after NUL", func() []byte { b := append([]byte{}, good...); b[HeaderSize-1] = 'x'; return b }(), "non-NUL byte at offset 32767"},
		{"all zero", make([]byte, HeaderSize), "line 1: does not start with"},
		{"wrong magic", repl("TAPIR FILE", "AMANDA FILE"), "not a tapir image"},
		{"label", pad("TAPIR TAPESTART 20250101000000 VOL001\n"), "volume label"},
		{"no newline", pad("TAPIR FILE 20250102030405 h /p lev 0 part 1/1 comp zst"), "not terminated"},
		{"truncated kv", pad(goodText[:strings.Index(goodText, "frames:")]), "no blank line"},
		{"bad datestamp", repl("20250102030405", "2025010203040x"), "line 1: datestamp"},
		{"missing field", repl(" comp zst", ""), "line 1: 7 fields"},
		{"keyword", repl(" lev ", " level "), "want \"lev\""},
		{"level number", repl("lev 0", "lev x"), "line 1: level"},
		{"level leading zero", repl("lev 0", "lev 00"), "line 1: level"},
		{"level range", repl("lev 0", "lev 100"), "line 1: level"},
		{"part", repl("part 1/1", "part 2/1"), "line 1: part"},
		{"part garbage", repl("part 1/1", "part 1-1"), "line 1: part"},
		{"comp", repl("comp zst", "comp xz"), "line 1: compression"},
		{"double space", repl(" /home ", "  /home "), "two spaces"},
		{"trailing space", repl("comp zst\n", "comp zst \n"), "trailing space"},
		{"bad quote", repl(" /home ", ` "/home `), "bad quoted string"},
		{"quote glued", repl(" /home ", ` "/home"x `), "want a space after"},
		{"bare needs quote", repl("/home", "/ho\x01me"), "must be quoted"},
		{"quoted keyword", repl(" lev ", ` "lev" `), "want \"lev\""},
		{"number", repl("original-size: 123456", "original-size: 12x"), "line 2: key \"original-size\""},
		{"negative", repl("original-size: 123456", "original-size: -5"), "line 2"},
		{"plus sign", repl("files: 42", "files: +42"), "key \"files\""},
		{"huge", repl("files: 42", "files: 99999999999999999999"), "key \"files\""},
		{"frame size zero", repl("frame-size: 1048576", "frame-size: 0"), "must be > 0"},
		{"frame size unknown", repl("frame-size: 1048576", "frame-size: unknown"), "key \"frame-size\""},
		{"sha", repl("sha256: abab", "sha256: ABab"), "key \"sha256\""},
		{"no colon", repl("files: 42", "files 42"), "want \"key: value\""},
		{"duplicate", repl("files: 42", "files: 42\nfiles: 43"), "appears twice"},
		{"missing key", repl("files: 42\n", ""), "missing key \"files\""},
		{"upper key", repl("files: 42", "Files: 42"), "lower-case key"},
		{"control in value", repl("encryption: none", "encryption: no\rne"), "control character"},
		{"bad encryption", repl("encryption: none", "encryption: a/b"), "key \"encryption\""},
		{"extra non-utf8", repl("blocksize: 262144\n", "blocksize: 262144\nx: \xff\n"), "not valid UTF-8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// The rules behind the checksum: with a checksum that matches.
			b := seal(tc.b)
			h, err := ParseHeaderUnchecked(b)
			if err == nil {
				t.Fatalf("ParseHeaderUnchecked accepted it: %#v", h)
			}
			if !strings.HasPrefix(err.Error(), "image header: ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %q, want prefix \"image header: \" and %q", err, tc.want)
			}
			if h, err := ParseHeader(b); err == nil {
				t.Fatalf("ParseHeader accepted it: %#v", h)
			}
			// As changed, without resealing: refused too.
			if h, err := ParseHeader(tc.b); err == nil {
				t.Fatalf("ParseHeader of the unsealed header: %#v", h)
			}
		})
	}
}

func TestReadHeaderTruncated(t *testing.T) {
	good, _ := sampleHeader().Marshal()
	_, err := ReadHeader(bytes.NewReader(good[:5000]))
	if err == nil || !strings.Contains(err.Error(), "truncated: read 5000 of 32768") {
		t.Fatalf("ReadHeader of short input: %v", err)
	}
}

func TestParseHeaderKeepsUnknownKeysAndIgnoresHumanText(t *testing.T) {
	text := "TAPIR FILE 20250102030405 h /p lev 3 part 1/2 comp gz\n" +
		"blocksize: 0\nencryption: none\nfiles: unknown\nframes: 9\nframe-size: 65536\n" +
		"sha256: unknown\npayload-size: 10\noriginal-size: 20\nnew-key: v2\n" + sumLine + "\nanything at all\n\x01\n"
	h, err := ParseHeader(seal(pad(text)))
	if err != nil {
		t.Fatal(err)
	}
	want := &Header{Datestamp: "20250102030405", Host: "h", Path: "/p", Level: 3, Part: 1, Parts: 2, Comp: CompGzip,
		OriginalSize: 20, PayloadSize: 10, FrameSize: 65536, Frames: 9, Files: Unknown, Encryption: "none",
		Extra: map[string]string{"new-key": "v2"}}
	if !reflect.DeepEqual(h, want) {
		t.Fatalf("got %#v\nwant %#v", h, want)
	}
}

// FuzzParseHeader: no input panics; whatever parses marshals and parses
// back the same. Each input is tried as it is (mostly a checksum error;
// its diagnosis is fuzzed by FuzzDiagnoseHeader, which is slower) and
// sealed (its header-sha256 line, if any, set to the right value), so the
// parser behind the checksum is fuzzed too.
func FuzzParseHeader(f *testing.F) {
	for _, mod := range []func(*Header){
		func(h *Header) {},
		func(h *Header) { h.Path = "/a \"b\"\n\xff"; h.Comp = CompGzip; h.Part, h.Parts = 2, 3 },
		func(h *Header) { h.Extra = map[string]string{"k": "v"}; h.SHA256 = ""; h.Files = Unknown },
	} {
		h := sampleHeader()
		mod(h)
		b, err := h.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[:bytes.IndexByte(b, 0)])
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		if len(text) >= HeaderSize {
			return
		}
		b := make([]byte, HeaderSize)
		copy(b, text)
		for _, b := range [][]byte{b, seal(b)} {
			h, err := ParseHeader(b)
			if err != nil {
				if h2, err2 := ParseHeaderUnchecked(b); err2 == nil {
					// Parses without the checksum: Marshal gives a header
					// that parses with it.
					m, err := h2.Marshal()
					if err != nil {
						t.Fatalf("header parsed unchecked does not marshal: %v\n%#v", err, h2)
					}
					if h3, err := ParseHeader(m); err != nil || !reflect.DeepEqual(h2, h3) {
						t.Fatalf("round trip of an unchecked parse: %v\n%#v\n%#v", err, h2, h3)
					}
				}
				continue
			}
			// Whatever parses must marshal and parse back to the same header.
			m, err := h.Marshal()
			if err != nil {
				t.Fatalf("parsed header does not marshal: %v\n%#v", err, h)
			}
			h2, err := ParseHeader(m)
			if err != nil {
				t.Fatalf("marshalled header does not parse: %v", err)
			}
			if !reflect.DeepEqual(h, h2) {
				t.Fatalf("round trip differs:\n%#v\n%#v", h, h2)
			}
		}
	})
}

// An encrypted header tells a person to put age -d before the decompressor,
// for a tape, a file and the parts of a multi-part image, and names the
// fingerprints of the keys.
func TestHeaderTextEncrypted(t *testing.T) {
	h := sampleHeader()
	h.Encryption, h.Recipients, h.Level, h.Part, h.Parts = EncAge, []string{"0123456789abcdef"}, 2, 1, 2
	b, err := h.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	text := string(b[:bytes.IndexByte(b, 0)])
	for _, want := range []string{
		"encryption: age\nrecipients: 0123456789abcdef\n",
		"dd if=/dev/nst0 bs=256k skip=1 | age -d -i KEYFILE | zstd -dc | tar --listed-incremental=/dev/null -xpf -",
		"dd if=FILE bs=32k skip=1 | age -d -i KEYFILE | zstd -dc | tar --listed-incremental=/dev/null -xpf -",
		"(dd if=PART1 bs=32k skip=1; dd if=PART2 bs=32k skip=1; ...) | age -d -i KEYFILE | zstd -dc",
		"fingerprints 0123456789abcdef",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("header lacks %q:\n%s", want, text)
		}
	}
}

// TestHeaderPayload: a command DLE's header says so (the key "payload"),
// a tar image's header has no such key, and a bad or incremental command
// payload is refused both ways.
func TestHeaderPayload(t *testing.T) {
	h := sampleHeader()
	h.Level = 0
	b, err := h.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "payload:") {
		t.Error("a tar image's header has a payload key")
	}
	h.Payload = PayloadCommand
	if b, err = h.Marshal(); err != nil {
		t.Fatal(err)
	}
	got, err := ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Payload != PayloadCommand || len(got.Extra) != 0 {
		t.Errorf("parsed payload %q, extra %v", got.Payload, got.Extra)
	}
	h.Level = 1
	if _, err := h.Marshal(); err == nil || !strings.Contains(err.Error(), "level 0 only") {
		t.Errorf("a level-1 command payload: %v", err)
	}
	h.Level, h.Payload = 0, "cpio"
	if _, err := h.Marshal(); err == nil {
		t.Error("payload cpio accepted")
	}
}
