package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/spf13/cobra"

	"github.com/tapir-backup/tapir/image/crypt"
)

func init() { extraCommands = append(extraCommands, newKeyCommand) }

// newKeyCommand is the parent of the age key commands (docs/keys.md):
// key new, key paper, key show.
func newKeyCommand(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "key",
		Short: "make, print and read back the age keys that encrypted images are restored with",
		Long: `The keys of encryption at rest (docs/keys.md). A dumptype with recipients = ["age1…"]
encrypts its images to those recipients; only the identity (the secret key) of one of
them can restore them. ` + "`tapir key new FILE`" + ` makes an identity and prints its recipient;
` + "`tapir key paper FILE`" + ` prints the identity as a text block to keep in a safe, and
` + "`tapir key paper --read`" + ` makes an identity file again from the typed-back paper.`,
	}
	c.AddCommand(newKeyNewCommand(g), newKeyPaperCommand(g), newKeyShowCommand(g))
	return c
}

// runKeyNew makes an X25519 identity, writes it to path (0600, never over
// an existing file) and tells the person what to do with it.
func runKeyNew(path string, now time.Time, out io.Writer) error {
	id, err := crypt.NewIdentity()
	if err != nil {
		return fmt.Errorf("make a key: %w", err)
	}
	if err := crypt.WriteIdentityFile(path, crypt.IdentityFileText(id, now)); err != nil {
		return fmt.Errorf("key new: %w", err)
	}
	r := id.Recipient().String()
	fmt.Fprintf(out, "identity:    %s (mode 0600)\n", path)
	fmt.Fprintf(out, "recipient:   %s\n", r)
	fmt.Fprintf(out, "fingerprint: %s (what image headers and the catalog name)\n", crypt.Fingerprint(r))
	fmt.Fprintf(out, `
Next:
  1. Put the recipient in the dumptype that should be encrypted:
       recipients = ["%s"]
     (encrypt = "client" is the default: the clients encrypt, the backup server never sees plaintext).
  2. Keep %s away from the backup server; it is needed only to restore, verify the tar
     streams (tapir verify --identity) and rebuild the file index (tapir admin rebuild --identity).
  3. Print the paper key and keep it in a safe:  tapir key paper %s
     Without this identity (or another recipient's) the images encrypted to it cannot be read by anyone.
`, r, path, path)
	return nil
}

// loadX25519 reads the one X25519 identity of an identity file (refused
// when others may read it).
func loadX25519(path string) (*age.X25519Identity, time.Time, error) {
	ids, err := crypt.ReadIdentities(path)
	if err != nil {
		return nil, time.Time{}, err
	}
	var xs []*age.X25519Identity
	for _, id := range ids.List {
		if x, ok := id.(*age.X25519Identity); ok {
			xs = append(xs, x)
		}
	}
	switch len(xs) {
	case 0:
		return nil, time.Time{}, fmt.Errorf("identity file %s holds no X25519 identity (AGE-SECRET-KEY-1…)", path)
	case 1:
	default:
		return nil, time.Time{}, fmt.Errorf("identity file %s holds %d identities; the paper form is of one: split the file, one identity per file", path, len(xs))
	}
	return xs[0], createdOf(path), nil
}

// createdOf is the "# created:" time of an identity file, zero if none.
func createdOf(path string) time.Time {
	f, err := os.Open(path)
	if err != nil {
		return time.Time{}
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, 1<<20))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "# created:"); ok {
			if t, err := time.Parse(time.RFC3339, strings.TrimSpace(v)); err == nil {
				return t
			}
		}
	}
	return time.Time{}
}

// runKeyPaper prints the paper form of the identity in path.
func runKeyPaper(path string, out io.Writer) error {
	id, created, err := loadX25519(path)
	if err != nil {
		return fmt.Errorf("key paper: %w", err)
	}
	_, err = io.WriteString(out, crypt.Paper(id, created))
	return err
}

// runKeyPaperRead reads a typed-back paper key from paper ("-": stdin) and
// writes the identity file outPath (0600, never over an existing file), or
// prints it to out when outPath is empty.
func runKeyPaperRead(paper, outPath string, stdin io.Reader, out io.Writer) error {
	var b []byte
	var err error
	if paper == "-" {
		b, err = io.ReadAll(io.LimitReader(stdin, 1<<20))
	} else {
		b, err = os.ReadFile(paper)
	}
	if err != nil {
		return fmt.Errorf("key paper --read: %w", err)
	}
	text, err := crypt.ReadPaper(string(b))
	if err != nil {
		if paper != "-" {
			return fmt.Errorf("%s: %w", paper, err)
		}
		return err
	}
	ids, err := crypt.ParseIdentities([]byte(text))
	if err != nil || len(ids.Recipients) != 1 {
		return fmt.Errorf("key paper --read: the paper key does not make an identity: %v", err)
	}
	if outPath == "" {
		_, err = io.WriteString(out, text)
		return err
	}
	if err := crypt.WriteIdentityFile(outPath, []byte(text)); err != nil {
		return fmt.Errorf("key paper --read: %w", err)
	}
	r := ids.Recipients[0]
	fmt.Fprintf(out, "identity:    %s (mode 0600)\nrecipient:   %s\nfingerprint: %s\n", outPath, r, crypt.Fingerprint(r))
	return nil
}

// runKeyShow prints the recipient and fingerprint of each identity in path.
func runKeyShow(path string, out io.Writer) error {
	ids, err := crypt.ReadIdentities(path)
	if err != nil {
		return fmt.Errorf("key show: %w", err)
	}
	if len(ids.Recipients) == 0 {
		return errors.New("key show: " + path + " holds no X25519 identity")
	}
	for _, r := range ids.Recipients {
		fmt.Fprintf(out, "recipient:   %s\nfingerprint: %s\n", r, crypt.Fingerprint(r))
	}
	return nil
}
