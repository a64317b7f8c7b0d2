package gnutar

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// blockSize is the tar block size.
const blockSize = 512

// Largest values of the ustar numeric fields (octal digits, NUL-ended).
const (
	maxOctal7  = 07777777     // mode, uid, gid
	maxOctal11 = 077777777777 // size, mtime
)

// ustarHeader is one ustar header block, its strings already fitted.
type ustarHeader struct {
	name, prefix   string
	mode, uid, gid int64
	size, mtime    int64
	typeflag       byte
	uname, gname   string
}

// block encodes h as a POSIX ustar header block, the way GNU tar writes
// the header blocks of a --format=posix archive.
func (h *ustarHeader) block() []byte {
	b := make([]byte, blockSize)
	copy(b[0:100], h.name)
	putOctal(b[100:108], h.mode)
	putOctal(b[108:116], h.uid)
	putOctal(b[116:124], h.gid)
	putOctal(b[124:136], h.size)
	putOctal(b[136:148], h.mtime)
	b[156] = h.typeflag
	copy(b[257:265], "ustar\x0000")
	copy(b[265:297], h.uname)
	copy(b[297:329], h.gname)
	putOctal(b[329:337], 0)
	putOctal(b[337:345], 0)
	copy(b[345:500], h.prefix)
	copy(b[148:156], "        ")
	var sum int64
	for _, c := range b {
		sum += int64(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

// putOctal writes v as zero-padded octal filling all but the last byte of
// f, which stays NUL. Callers ensure v fits.
func putOctal(f []byte, v int64) {
	s := strconv.FormatInt(v, 8)
	w := len(f) - 1
	for i := 0; i < w-len(s); i++ {
		f[i] = '0'
	}
	copy(f[w-len(s):w], s)
}

// fitName splits dir/mid/base into the ustar name (100 bytes) and prefix
// (155 bytes) fields. When the path does not fit whole it keeps mid and as
// much of base and dir as fit, cut on UTF-8 boundaries: such names are
// informational only, the real name travels in a pax record.
func fitName(dir, mid, base string) (name, prefix string) {
	full := mid + "/" + base
	if dir != "" {
		full = dir + "/" + full
	}
	if len(full) <= 100 {
		return full, ""
	}
	for i := len(full) - 1; i > 0; i-- {
		if full[i] == '/' && i <= 155 && len(full)-i-1 <= 100 {
			return full[i+1:], full[:i]
		}
	}
	return mid + "/" + truncUTF8(base, 100-len(mid)-1), truncUTF8(dir, 155)
}

// truncUTF8 cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// paxRecord formats one pax extended header record: "<len> key=value\n",
// where len counts the whole record including its own digits.
func paxRecord(k, v string) string {
	body := " " + k + "=" + v + "\n"
	n := len(body) + 1
	for n != len(strconv.Itoa(n))+len(body) {
		n = len(strconv.Itoa(n)) + len(body)
	}
	return strconv.Itoa(n) + body
}

// validPAXKey reports whether k can be a pax record key.
func validPAXKey(k string) bool {
	return k != "" && !strings.ContainsAny(k, "=\x00")
}

// fitsUstarString reports whether s goes in a 32-byte uname/gname field.
func fitsUstarString(s string) bool {
	if len(s) >= 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] == 0 || s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// Pad returns how many zero bytes follow n bytes of entry data to reach a
// multiple of the 512-byte tar block.
func Pad(n int64) int64 {
	return (blockSize - n%blockSize) % blockSize
}
