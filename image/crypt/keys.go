package crypt

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"
)

// NewIdentity makes a new X25519 identity.
func NewIdentity() (*age.X25519Identity, error) {
	return age.GenerateX25519Identity()
}

// IdentityFileText is an identity file as age-keygen writes it: comments
// with the creation time and the public key (the recipient), then the
// secret key. `age -d -i FILE` reads it.
func IdentityFileText(id *age.X25519Identity, created time.Time) []byte {
	r := id.Recipient().String()
	var b strings.Builder
	if !created.IsZero() {
		fmt.Fprintf(&b, "# created: %s\n", created.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(&b, "# public key: %s\n# fingerprint: %s (what tapir's image headers name)\n%s\n", r, Fingerprint(r), id.String())
	return []byte(b.String())
}

// WriteIdentityFile creates path with mode 0600 and writes text to it,
// synced. It never replaces an existing file.
func WriteIdentityFile(path string, text []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s exists: tapir never overwrites a key; choose another name, or move the old key away first (images encrypted to it need it)", path)
		}
		return err
	}
	if _, err := f.Write(text); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

// Identities are the keys of an identity file and their recipients.
type Identities struct {
	File       string
	List       []age.Identity
	Recipients []string // of the X25519 identities, in order
}

// Fingerprints of the identities' recipients, sorted.
func (ids *Identities) Fingerprints() []string { return Fingerprints(ids.Recipients) }

// ReadIdentities reads an identity file: age-keygen's form (what
// `tapir key new` writes) or the paper form (`tapir key paper`). A file
// that others than its owner may read is refused: chmod 600 it.
func ReadIdentities(path string) (*Identities, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("identity file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("identity file %s is not a regular file", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("identity file %s may be read by others (mode %04o): run chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	b, err := readSmallFile(path, 1<<20)
	if err != nil {
		return nil, fmt.Errorf("identity file %s: %v", path, err)
	}
	ids, err := ParseIdentities(b)
	if err != nil {
		return nil, fmt.Errorf("identity file %s: %v", path, err)
	}
	ids.File = path
	return ids, nil
}

// ParseIdentities reads the text of an identity file (age-keygen's form or
// the paper form).
func ParseIdentities(b []byte) (*Identities, error) {
	if bytes.Contains(b, []byte(paperBegin)) {
		s, err := ReadPaper(string(b))
		if err != nil {
			return nil, err
		}
		b = []byte(s)
	}
	list, err := age.ParseIdentities(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("not an age identity file: %v", err)
	}
	ids := &Identities{List: list}
	for _, id := range list {
		if x, ok := id.(*age.X25519Identity); ok {
			ids.Recipients = append(ids.Recipients, x.Recipient().String())
		}
	}
	return ids, nil
}

func readSmallFile(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("larger than %d bytes", max)
	}
	return b, nil
}

const (
	paperBegin = "BEGIN TAPIR PAPER KEY"
	paperEnd   = "END TAPIR PAPER KEY"
	paperGroup = 5 // characters per group
	paperLine  = 6 // groups per line
)

// Paper renders an identity as a text block to print and keep in a safe:
// the recipient and fingerprint it opens, then the secret key in groups of
// five characters, each line ending with four check digits, so that a
// mistyped character is found by its line when the key is typed back
// (ReadPaper, `tapir key paper --read`).
func Paper(id *age.X25519Identity, created time.Time) string {
	var b strings.Builder
	r := id.Recipient().String()
	fmt.Fprintf(&b, "----- %s -----\n", paperBegin)
	b.WriteString("An age identity (age-encryption.org): whoever holds it can read the backups encrypted to it.\n")
	fmt.Fprintf(&b, "recipient:   %s\n", r)
	fmt.Fprintf(&b, "fingerprint: %s\n", Fingerprint(r))
	if !created.IsZero() {
		fmt.Fprintf(&b, "created:     %s\n", created.UTC().Format("2006-01-02"))
	}
	b.WriteString("\n")
	key := id.String()
	for n, i := 1, 0; i < len(key); n++ {
		j := min(i+paperGroup*paperLine, len(key))
		chars := key[i:j]
		var groups []string
		for k := 0; k < len(chars); k += paperGroup {
			groups = append(groups, chars[k:min(k+paperGroup, len(chars))])
		}
		fmt.Fprintf(&b, "%2d: %-35s  %s\n", n, strings.Join(groups, " "), lineCheck(n, chars))
		i = j
	}
	b.WriteString("\n")
	b.WriteString("Type the numbered lines back into a file and run: tapir key paper --read FILE > key.txt; chmod 600 key.txt\n")
	b.WriteString("(the last four characters of each line check that line; without tapir, join the groups of all lines\n")
	b.WriteString("into one word AGE-SECRET-KEY-1… and put it alone on a line of key.txt: age -d -i key.txt reads it)\n")
	fmt.Fprintf(&b, "----- %s -----\n", paperEnd)
	return b.String()
}

func lineCheck(n int, chars string) string {
	sum := sha256.Sum256([]byte(strconv.Itoa(n) + ":" + chars))
	return hex.EncodeToString(sum[:2])
}

var paperLineRE = regexp.MustCompile(`^\s*(\d{1,3})\s*[:.]\s*(.*?)\s+([0-9a-fA-F]{4})\s*$`)

// ReadPaper reads the key lines of a paper key (as Paper prints them,
// typed back by a person: case and spacing may differ) and returns the
// identity as age-keygen writes it. A line whose check digits do not
// match, a missing or repeated line, or a recipient line that the key does
// not open is an error naming the line.
func ReadPaper(text string) (string, error) {
	var key strings.Builder
	next := 1
	recipient := ""
	for i, raw := range strings.Split(text, "\n") {
		line := strings.TrimSpace(raw)
		if strings.HasPrefix(strings.ToLower(line), "recipient:") {
			recipient = strings.TrimSpace(line[len("recipient:"):])
			continue
		}
		m := paperLineRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[1])
		if n != next {
			return "", fmt.Errorf("paper key: text line %d is key line %d, expected key line %d (a line is missing or repeated)", i+1, n, next)
		}
		chars := strings.ToUpper(strings.Join(strings.Fields(m[2]), ""))
		if lineCheck(n, chars) != strings.ToLower(m[3]) {
			return "", fmt.Errorf("paper key: key line %d (text line %d) does not match its check digits %s: a character on it is mistyped", n, i+1, m[3])
		}
		key.WriteString(chars)
		next++
	}
	if next == 1 {
		return "", errors.New("paper key: no numbered key lines found (want lines like \" 1: AGE-S ECRET -KEY- …  3f9a\")")
	}
	id, err := age.ParseX25519Identity(key.String())
	if err != nil {
		return "", fmt.Errorf("paper key: the %d key lines do not make an age identity (a line is missing at the end?): %v", next-1, err)
	}
	if recipient != "" && id.Recipient().String() != recipient {
		return "", fmt.Errorf("paper key: the key opens %s, but the paper says recipient %s", id.Recipient(), recipient)
	}
	return string(IdentityFileText(id, time.Time{})), nil
}
