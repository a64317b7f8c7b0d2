package image

import (
	"bytes"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// HeaderSize is the exact size of an image header: text, then NUL padding.
const HeaderSize = 32 << 10

// Comp names the compression of a payload, as written in the header.
type Comp string

const (
	CompZstd Comp = "zst"  // independent zstd frames + seek table
	CompGzip Comp = "gz"   // independent gzip members
	CompNone Comp = "none" // plain tar bytes
)

// Valid reports whether c is one of the known compressions.
func (c Comp) Valid() bool {
	return c == CompZstd || c == CompGzip || c == CompNone
}

// Unknown is the value of a size or count field that was not known when the
// header was written (an image streamed straight to a volume). It is
// written as the word "unknown"; the catalog then holds the real value.
const Unknown = -1

// MaxLevel is the highest dump level a header may carry.
const MaxLevel = 99

// FileMagic starts every image header.
const FileMagic = magicFile

const (
	magicFile  = "TAPIR FILE "
	magicLabel = "TAPIR TAPESTART"
	unknownStr = "unknown"
	stampForm  = "20060102150405"
)

// Header is the parsed form of an image header.
type Header struct {
	Datestamp   string // YYYYMMDDhhmmss of the run
	Host, Path  string // the DLE
	Level       int    // 0..MaxLevel
	Part, Parts int    // 1 <= Part <= Parts; Parts is Unknown on a volume (the taper cannot know whether the image will continue on another volume)
	Comp        Comp

	OriginalSize int64  // tar bytes, or Unknown
	PayloadSize  int64  // payload bytes incl. seek table, or Unknown
	SHA256       string // lower-case hex of the payload bytes, "" if unknown
	FrameSize    int64  // tar bytes per frame (> 0)
	Frames       int64  // number of frames, or Unknown
	Files        int64  // number of index records, or Unknown
	Encryption   string // "none" ("" is written as "none") or "age" (EncAge)
	// Recipients are the fingerprints (16 lower-case hex digits, see
	// image/crypt.Fingerprint) of the age recipients of an encrypted
	// payload; written as the recipients key, only when encrypted.
	Recipients []string
	Blocksize  int64 // bytes per record on the volume, 0 if unknown (holding)
	// Payload is what the frames hold once decompressed (and decrypted):
	// PayloadTar ("" is the same) or PayloadCommand, the standard output of
	// a command DLE's command. Written as the payload key, only for
	// PayloadCommand.
	Payload string

	// Extra holds keys this version does not know, so that later versions
	// can add keys; they are written back sorted after the known keys.
	Extra map[string]string
}

// The known keys, in the order Marshal writes them.
const (
	keyOriginalSize = "original-size"
	keyPayloadSize  = "payload-size"
	keySHA256       = "sha256"
	keyFrameSize    = "frame-size"
	keyFrames       = "frames"
	keyFiles        = "files"
	keyEncryption   = "encryption"
	keyBlocksize    = "blocksize"
	keyRecipients   = "recipients"
	keyPayload      = "payload"
)

// Payload kinds (Header.Payload).
const (
	PayloadTar     = "tar"
	PayloadCommand = "command"
)

// EncAge is the encryption of a payload that is an age file (image/crypt).
const EncAge = "age"

var knownKeys = []string{keyOriginalSize, keyPayloadSize, keySHA256, keyFrameSize,
	keyFrames, keyFiles, keyEncryption, keyBlocksize, keyRecipients, keyPayload}

func isKnownKey(k string) bool {
	for _, x := range knownKeys {
		if x == k {
			return true
		}
	}
	return false
}

// Marshal renders the header as exactly HeaderSize bytes. It fails if a
// field is invalid or if the text would not fit.
func (h *Header) Marshal() ([]byte, error) {
	if err := h.validate(); err != nil {
		return nil, err
	}
	enc := h.Encryption
	if enc == "" {
		enc = "none"
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s%s %s %s lev %d part %d/%s comp %s\n", magicFile, h.Datestamp,
		quoteField(h.Host), quoteField(h.Path), h.Level, h.Part, fmtSize(int64(h.Parts)), h.Comp)
	kv := func(k, v string) { fmt.Fprintf(&b, "%s: %s\n", k, v) }
	kv(keyOriginalSize, fmtSize(h.OriginalSize))
	kv(keyPayloadSize, fmtSize(h.PayloadSize))
	if h.SHA256 == "" {
		kv(keySHA256, unknownStr)
	} else {
		kv(keySHA256, h.SHA256)
	}
	kv(keyFrameSize, strconv.FormatInt(h.FrameSize, 10))
	kv(keyFrames, fmtSize(h.Frames))
	kv(keyFiles, fmtSize(h.Files))
	kv(keyEncryption, enc)
	if len(h.Recipients) > 0 {
		kv(keyRecipients, strings.Join(h.Recipients, " "))
	}
	if h.Payload == PayloadCommand {
		kv(keyPayload, PayloadCommand)
	}
	kv(keyBlocksize, strconv.FormatInt(h.Blocksize, 10))
	keys := make([]string, 0, len(h.Extra))
	for k := range h.Extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		kv(k, h.Extra[k])
	}
	// The header's own checksum, last of the keys: zeros now, the sum of
	// the whole block once it is padded.
	kv(HeaderSumKey, string(zeroDigits))
	sumOff := b.Len() - 1 - SumHexLen
	b.WriteByte('\n')
	for _, l := range restoreLines(h) {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	if b.Len() >= HeaderSize {
		return nil, fmt.Errorf("image header for %s:%s does not fit: %d bytes of text, the limit is %d; shorten the path or the extra keys",
			h.Host, h.Path, b.Len(), HeaderSize-1)
	}
	out := make([]byte, HeaderSize)
	copy(out, b.Bytes())
	copy(out[sumOff:], BlockSum(out, sumOff))
	return out, nil
}

func fmtSize(v int64) string {
	if v == Unknown {
		return unknownStr
	}
	return strconv.FormatInt(v, 10)
}

// validate checks every field; ParseHeader applies the same rules so that
// whatever parses also marshals.
func (h *Header) validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("image header: "+format, a...)
	}
	if err := checkDatestamp(h.Datestamp); err != nil {
		return bad("%v", err)
	}
	if h.Level < 0 || h.Level > MaxLevel {
		return bad("level %d out of range 0..%d", h.Level, MaxLevel)
	}
	if !strings.HasPrefix(h.Path, "/") {
		return bad("path %q is not absolute", h.Path)
	}
	if h.Part < 1 || (h.Parts < h.Part && h.Parts != Unknown) {
		return bad("part %d/%d: want 1 <= part <= parts (or parts unknown)", h.Part, h.Parts)
	}
	if !h.Comp.Valid() {
		return bad("unknown compression %q: want zst, gz or none", h.Comp)
	}
	for _, f := range []struct {
		k string
		v int64
	}{{keyOriginalSize, h.OriginalSize}, {keyPayloadSize, h.PayloadSize}, {keyFrames, h.Frames}, {keyFiles, h.Files}} {
		if f.v < Unknown {
			return bad("%s %d is negative (use Unknown = -1 when not known)", f.k, f.v)
		}
	}
	if h.FrameSize <= 0 {
		return bad("frame-size %d must be > 0", h.FrameSize)
	}
	if h.Blocksize < 0 {
		return bad("blocksize %d is negative (0 means unknown)", h.Blocksize)
	}
	switch h.Payload {
	case "", PayloadTar:
	case PayloadCommand:
		if h.Level != 0 {
			return bad("a command payload at level %d: command DLEs are dumped at level 0 only", h.Level)
		}
	default:
		return bad("payload %q: want %s or %s", h.Payload, PayloadTar, PayloadCommand)
	}
	if h.SHA256 != "" {
		if err := checkSHA(h.SHA256); err != nil {
			return bad("%v", err)
		}
	}
	if h.Encryption != "" && !isToken(h.Encryption) {
		return bad("encryption %q: want a word of letters, digits and . _ : -", h.Encryption)
	}
	if err := checkRecipients(h.Encryption, h.Recipients); err != nil {
		return bad("%v", err)
	}
	for k, v := range h.Extra {
		if !isKey(k) {
			return bad("extra key %q: want lower-case letters, digits and '-', starting with a letter or digit, at most 64 bytes", k)
		}
		if isKnownKey(k) || k == HeaderSumKey {
			return bad("extra key %q duplicates a known key; set the struct field instead", k)
		}
		if err := checkValue(v); err != nil {
			return bad("extra key %q: %v", k, err)
		}
	}
	return nil
}

// checkRecipients: an age payload names at least one recipient
// fingerprint, each 16 lower-case hex digits; a plain one names none.
func checkRecipients(enc string, fps []string) error {
	if enc != EncAge {
		if len(fps) > 0 {
			return fmt.Errorf("recipients given for encryption %q: only an age payload has recipients", enc)
		}
		return nil
	}
	if len(fps) == 0 {
		return fmt.Errorf("encryption age without recipients: the header must name the fingerprints of the keys that open it")
	}
	if len(fps) > 256 {
		return fmt.Errorf("%d recipients: at most 256", len(fps))
	}
	for _, f := range fps {
		if len(f) != 16 || !isLowerHex([]byte(f)) {
			return fmt.Errorf("recipient fingerprint %q: want 16 lower-case hex digits", clip(f))
		}
	}
	return nil
}

func checkDatestamp(s string) error {
	if len(s) != 14 || !allDigits(s) {
		return fmt.Errorf("datestamp %q: want 14 digits YYYYMMDDhhmmss", s)
	}
	if _, err := time.Parse(stampForm, s); err != nil {
		return fmt.Errorf("datestamp %q is not a valid date and time", s)
	}
	return nil
}

func checkSHA(s string) error {
	if len(s) != 64 {
		return fmt.Errorf("sha256 %q: want 64 lower-case hex digits", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return fmt.Errorf("sha256 %q: want 64 lower-case hex digits", s)
		}
	}
	return nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func isKey(k string) bool {
	if k == "" || len(k) > 64 || k[0] == '-' {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func isToken(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("._:-", c) >= 0) {
			return false
		}
	}
	return true
}

// checkValue accepts any valid UTF-8 without control characters.
func checkValue(v string) error {
	if !utf8.ValidString(v) {
		return fmt.Errorf("value is not valid UTF-8")
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("value contains control character %q", r)
		}
	}
	return nil
}

// needsQuote reports whether a host or path must be written Go-quoted.
func needsQuote(s string) bool {
	if s == "" || !utf8.ValidString(s) {
		return true
	}
	for _, r := range s {
		if r == ' ' || r == '"' || r == '\'' || r == '`' || r == '\\' || !strconv.IsPrint(r) {
			return true
		}
	}
	return false
}

func quoteField(s string) string {
	if needsQuote(s) {
		return strconv.Quote(s)
	}
	return s
}

// restoreLines are the human instructions after the blank line.
func restoreLines(h *Header) []string {
	dec := ""
	switch h.Comp {
	case CompZstd:
		dec = "zstd -dc | "
	case CompGzip:
		dec = "gzip -dc | "
	}
	if h.Encryption == EncAge {
		dec = "age -d -i KEYFILE | " + dec
	}
	tarCmd := "tar -xpf -"
	if h.Level > 0 {
		tarCmd = "tar --listed-incremental=/dev/null -xpf -"
	}
	bs := h.Blocksize
	if bs <= 0 {
		bs = 256 << 10
	}
	lines := []string{
		fmt.Sprintf("To restore from tape:  dd if=/dev/nst0 bs=%s skip=1 | %s%s", ddSize(bs), dec, tarCmd),
		fmt.Sprintf("To restore from a vtape or holding file:  dd if=FILE bs=32k skip=1 | %s%s", dec, tarCmd),
		"(position the tape at this file first, e.g. mt -f /dev/nst0 fsf N; run tar in the directory to restore into)",
	}
	// The parts of a multi-part image are on tape: dd reads records of the
	// volume's blocksize there (a smaller bs fails with ENOMEM), while in
	// a file the header is one 32 KiB block.
	tapeParts := fmt.Sprintf("  from tape, each part's file in turn (change cartridges between parts): (dd if=/dev/nst0 bs=%s skip=1; dd if=/dev/nst0 bs=%s skip=1; ...) | %s%s", ddSize(bs), ddSize(bs), dec, tarCmd)
	fileParts := fmt.Sprintf("  from vtape or holding files: (dd if=PART1 bs=32k skip=1; dd if=PART2 bs=32k skip=1; ...) | %s%s", dec, tarCmd)
	switch {
	case h.Parts > 1:
		lines = append(lines, fmt.Sprintf("This is part %d of %d: skip the header of every part and feed the payloads of parts 1..%d, in order, into one pipeline:", h.Part, h.Parts, h.Parts),
			tapeParts, fileParts)
	case h.Parts == Unknown:
		lines = append(lines, fmt.Sprintf("This is part %d of an image that may continue as part %d at the start of the next volume (tapir admin find lists the parts); feed the payloads of all parts, in order, into one pipeline:", h.Part, h.Part+1),
			tapeParts, fileParts)
	}
	if h.Encryption == EncAge {
		lines = append(lines, fmt.Sprintf("The payload is an age file (age-encryption.org) encrypted to the keys with fingerprints %s: KEYFILE is one of them (tapir key new wrote it; tapir key paper --read makes it from its paper form).", strings.Join(h.Recipients, ", ")))
	}
	if h.Level > 0 {
		lines = append(lines, fmt.Sprintf("Level %d is incremental: restore the level 0 first, then each higher level in order (tar applies deletions).", h.Level))
	}
	return lines
}

func ddSize(n int64) string {
	switch {
	case n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "M"
	case n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "k"
	}
	return strconv.FormatInt(n, 10)
}

// ReadHeader reads exactly HeaderSize bytes from r and parses them
// (ParseHeader: the header's checksum is checked).
func ReadHeader(r io.Reader) (*Header, error) {
	b := make([]byte, HeaderSize)
	n, err := io.ReadFull(r, b)
	if err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("image header: truncated: read %d of %d bytes", n, HeaderSize)
		}
		return nil, fmt.Errorf("image header: reading: %w", err)
	}
	return ParseHeader(b)
}

// ParseHeader parses exactly HeaderSize bytes. It is strict: the header
// must carry its checksum (the header-sha256 line) and match it, so a
// changed byte anywhere, padding included, is an error (a *HeaderSumError,
// errors.Is ErrHeaderChecksum, naming what changed when it can tell);
// anything else it does not understand is an error naming the line. Never
// a panic.
func ParseHeader(b []byte) (*Header, error) {
	if err := checkSize(b); err != nil {
		return nil, err
	}
	if err := CheckHeaderSum(b); err != nil {
		return nil, err
	}
	return ParseHeaderUnchecked(b)
}

func checkSize(b []byte) error {
	if len(b) != HeaderSize {
		return fmt.Errorf("image header: got %d bytes, want exactly %d (truncated or not an image header)", len(b), HeaderSize)
	}
	if bytes.IndexByte(b, 0) < 0 {
		return fmt.Errorf("image header: no NUL padding in %d bytes: not a tapir image header", HeaderSize)
	}
	return nil
}

// ParseHeaderUnchecked parses a header like ParseHeader but does not check
// its checksum (nor require the header-sha256 line): for diagnosing a
// damaged header, never for trusting one. Every other rule applies.
func ParseHeaderUnchecked(b []byte) (*Header, error) {
	h, _, err := parseHeader(b)
	return h, err
}

// parseHeader is ParseHeaderUnchecked; it also returns the line an error
// is about (0 when it is about no one line).
func parseHeader(b []byte) (*Header, int, error) {
	if err := checkSize(b); err != nil {
		return nil, 0, err
	}
	end := bytes.IndexByte(b, 0)
	if i := bytes.IndexFunc(b[end:], func(r rune) bool { return r != 0 }); i >= 0 {
		return nil, 0, fmt.Errorf("image header: non-NUL byte at offset %d in the padding: header is corrupt", end+i)
	}
	text := string(b[:end])
	if err := checkMagic(text); err != nil {
		return nil, 1, err
	}
	nl := strings.IndexByte(text, '\n')
	if nl < 0 {
		return nil, 1, fmt.Errorf("image header: line 1: not terminated by a newline: header is truncated")
	}
	h := &Header{}
	if err := h.parseFirstLine(text[len(magicFile):nl]); err != nil {
		return nil, 1, fmt.Errorf("image header: line 1: %v", err)
	}
	rest := text[nl+1:]
	seen := map[string]bool{}
	for lineNo := 2; ; lineNo++ {
		nl := strings.IndexByte(rest, '\n')
		if nl < 0 {
			return nil, lineNo, fmt.Errorf("image header: line %d: no blank line after the key: value lines: header is truncated", lineNo)
		}
		line := rest[:nl]
		rest = rest[nl+1:]
		if line == "" {
			break
		}
		if err := h.parseKV(line, seen); err != nil {
			return nil, lineNo, fmt.Errorf("image header: line %d: %v", lineNo, err)
		}
	}
	for _, k := range knownKeys {
		if !seen[k] && k != keyRecipients && k != keyPayload { // recipients: only when encrypted (validate); payload: only for a command
			return nil, 0, fmt.Errorf("image header: missing key %q", k)
		}
	}
	// The human lines after the blank line are not interpreted.
	if err := h.validate(); err != nil {
		return nil, 0, err
	}
	return h, 0, nil
}

// checkMagic tells a header from a volume label and from anything else.
func checkMagic(text string) error {
	if strings.HasPrefix(text, magicFile) {
		return nil
	}
	if strings.HasPrefix(text, magicLabel) {
		return fmt.Errorf("image header: this is a volume label (%s), not an image header", magicLabel)
	}
	return fmt.Errorf("image header: line 1: does not start with %q: not a tapir image", magicFile)
}

type field struct {
	s      string
	quoted bool
}

// splitFields splits on single spaces; a field starting with '"' is a Go
// quoted string and may contain spaces.
func splitFields(s string) ([]field, error) {
	var out []field
	for len(s) > 0 {
		var f field
		if s[0] == '"' {
			q, err := strconv.QuotedPrefix(s)
			if err != nil {
				return nil, fmt.Errorf("field %d: bad quoted string %s", len(out)+1, clip(s))
			}
			u, err := strconv.Unquote(q)
			if err != nil {
				return nil, fmt.Errorf("field %d: bad quoted string %s", len(out)+1, clip(q))
			}
			f = field{u, true}
			s = s[len(q):]
		} else {
			i := strings.IndexByte(s, ' ')
			if i < 0 {
				i = len(s)
			}
			if i == 0 {
				return nil, fmt.Errorf("field %d: empty (two spaces in a row?)", len(out)+1)
			}
			f = field{s[:i], false}
			s = s[i:]
		}
		out = append(out, f)
		if len(s) > 0 {
			if s[0] != ' ' {
				return nil, fmt.Errorf("field %d: want a space after it, got %s", len(out), clip(s))
			}
			s = s[1:]
			if s == "" {
				return nil, fmt.Errorf("trailing space after field %d", len(out))
			}
		}
	}
	return out, nil
}

func clip(s string) string {
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return strconv.Quote(s)
}

func (h *Header) parseFirstLine(line string) error {
	fs, err := splitFields(line)
	if err != nil {
		return err
	}
	const want = "want \"TAPIR FILE <datestamp> <host> <path> lev <N> part <i>/<n> comp <zst|gz|none>\""
	if len(fs) != 9 {
		return fmt.Errorf("%d fields after TAPIR FILE, %s", len(fs), want)
	}
	for _, kw := range []struct {
		i int
		s string
	}{{3, "lev"}, {5, "part"}, {7, "comp"}} {
		if i := kw.i; fs[i].quoted || fs[i].s != kw.s {
			return fmt.Errorf("field %d is %s, want %q; %s", i+1, clip(fs[i].s), kw.s, want)
		}
	}
	for i := range fs {
		if fs[i].quoted && i != 1 && i != 2 {
			return fmt.Errorf("field %d %s must not be quoted", i+1, clip(fs[i].s))
		}
	}
	if err := checkDatestamp(fs[0].s); err != nil {
		return err
	}
	h.Datestamp = fs[0].s
	for i, dst := range []*string{&h.Host, &h.Path} {
		f := fs[1+i]
		if !f.quoted && needsQuote(f.s) {
			return fmt.Errorf("%s %s contains characters that must be quoted", []string{"host", "path"}[i], clip(f.s))
		}
		*dst = f.s
	}
	lev, err := parseNum(fs[4].s)
	if err != nil || lev > MaxLevel {
		return fmt.Errorf("level %s: want a number 0..%d", clip(fs[4].s), MaxLevel)
	}
	h.Level = int(lev)
	i, n, ok := strings.Cut(fs[6].s, "/")
	pi, err1 := parseNum(i)
	pn, err2 := parseNum(n)
	if n == unknownStr {
		pn, err2 = Unknown, nil
	}
	if !ok || err1 != nil || err2 != nil || pi < 1 || pi > 1<<30 || (pn < pi && pn != Unknown) || pn > 1<<30 {
		return fmt.Errorf("part %s: want <i>/<n> with 1 <= i <= n, or <i>/unknown", clip(fs[6].s))
	}
	h.Part, h.Parts = int(pi), int(pn)
	h.Comp = Comp(fs[8].s)
	if !h.Comp.Valid() {
		return fmt.Errorf("compression %s: want zst, gz or none", clip(fs[8].s))
	}
	return nil
}

// parseNum parses a canonical non-negative decimal (no sign, no leading zeros).
func parseNum(s string) (int64, error) {
	if !allDigits(s) || len(s) > 18 || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("%s is not a non-negative decimal number", clip(s))
	}
	return strconv.ParseInt(s, 10, 64)
}

func parseSize(s string, unknownOK bool) (int64, error) {
	if unknownOK && s == unknownStr {
		return Unknown, nil
	}
	return parseNum(s)
}

func (h *Header) parseKV(line string, seen map[string]bool) error {
	k, v, ok := strings.Cut(line, ": ")
	if !ok || !isKey(k) {
		return fmt.Errorf("%s: want \"key: value\" with a lower-case key", clip(line))
	}
	if seen[k] {
		return fmt.Errorf("key %q appears twice", k)
	}
	seen[k] = true
	if err := checkValue(v); err != nil {
		return fmt.Errorf("key %q: %v", k, err)
	}
	var err error
	switch k {
	case keyOriginalSize:
		h.OriginalSize, err = parseSize(v, true)
	case keyPayloadSize:
		h.PayloadSize, err = parseSize(v, true)
	case keyFrames:
		h.Frames, err = parseSize(v, true)
	case keyFiles:
		h.Files, err = parseSize(v, true)
	case keyFrameSize:
		h.FrameSize, err = parseSize(v, false)
		if err == nil && h.FrameSize == 0 {
			err = fmt.Errorf("must be > 0")
		}
	case keyBlocksize:
		h.Blocksize, err = parseSize(v, false)
	case HeaderSumKey:
		// Checked by CheckHeaderSum; here only its form.
		if !isLowerHex([]byte(v)) || len(v) != SumHexLen {
			err = fmt.Errorf("%s: want %d lower-case hex digits", clip(v), SumHexLen)
		}
	case keySHA256:
		if v != unknownStr {
			err = checkSHA(v)
			h.SHA256 = v
		}
	case keyEncryption:
		if !isToken(v) {
			err = fmt.Errorf("%s: want a word of letters, digits and . _ : -", clip(v))
		}
		h.Encryption = v
	case keyPayload:
		h.Payload = v
		if v != PayloadTar && v != PayloadCommand {
			err = fmt.Errorf("%s: want %s or %s", clip(v), PayloadTar, PayloadCommand)
		}
	case keyRecipients:
		h.Recipients = strings.Fields(v)
		if len(h.Recipients) == 0 {
			err = fmt.Errorf("empty")
		}
	default:
		if h.Extra == nil {
			h.Extra = map[string]string{}
		}
		h.Extra[k] = v
	}
	if err != nil {
		return fmt.Errorf("key %q: %v", k, err)
	}
	return nil
}
