package restore

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/image/crypt"
	"github.com/tapir-backup/tapir/index/catalog"
)

func imageName(d catalog.Dump) string {
	return fmt.Sprintf("level %d image %s of %s:%s", d.Level, d.Datestamp, d.Host, d.Path)
}

func fps(list []string) string {
	if len(list) == 0 {
		return "(none named)"
	}
	return strings.Join(list, ", ")
}

// needKey says why an encrypted image cannot be opened without an
// identity: nil when d is not encrypted or ids holds a key.
func needKey(d catalog.Dump, ids *crypt.Identities) error {
	if !d.Encrypted() || (ids != nil && len(ids.List) > 0) {
		return nil
	}
	return fmt.Errorf("recover: %s is encrypted (%s, recipients %s): give --identity FILE, the key of one of them (written by tapir key new, or its paper form); nothing was restored", imageName(d), d.Encryption, fps(d.Recipients))
}

// unwrapKey unwraps the payload key of the encrypted image d with ids from
// its age header: the catalog's, or, when the catalog lacks it, the one
// read at the start of the payload in src (nil src: not read).
func unwrapKey(d catalog.Dump, src io.ReaderAt, ids *crypt.Identities) (*crypt.Key, error) {
	if err := needKey(d, ids); err != nil {
		return nil, err
	}
	if d.Encryption != crypt.Name {
		return nil, fmt.Errorf("recover: %s is encrypted with %q, which this tapir cannot decrypt (it knows age)", imageName(d), d.Encryption)
	}
	hdr := d.CryptHeader
	if len(hdr) == 0 {
		if src == nil {
			return nil, nil
		}
		var err error
		if hdr, err = crypt.ReadHeader(src, d.PayloadSize); err != nil {
			return nil, fmt.Errorf("recover: %s: %w", imageName(d), err)
		}
	}
	k, err := crypt.Unwrap(hdr, d.PayloadSize, ids.List)
	if errors.Is(err, crypt.ErrWrongKey) {
		return nil, fmt.Errorf("recover: %s is encrypted to recipients %s; the key in %s is %s, not one of them: give the identity of one of its recipients (--identity FILE); nothing was restored", imageName(d), fps(d.Recipients), ids.File, fps(ids.Fingerprints()))
	}
	if err != nil {
		return nil, fmt.Errorf("recover: %s: its age header: %w", imageName(d), err)
	}
	return k, nil
}

// cipherFrames maps frames (plaintext offsets) of an encrypted image to
// the ciphertext that holds them, to find the parts they are on; nil when
// the catalog lacks the age header (every part may then be read).
func cipherFrames(d catalog.Dump, frames []image.Frame) []image.Frame {
	if !d.Encrypted() {
		return frames
	}
	l, err := crypt.NewLayout(int64(len(d.CryptHeader)), d.PayloadSize)
	if err != nil {
		return []image.Frame{{Offset: 0, Size: d.PayloadSize}}
	}
	out := make([]image.Frame, 0, len(frames))
	for _, f := range frames {
		if _, _, off, n, err := l.Span(f.Offset, f.Size); err == nil {
			out = append(out, image.Frame{Index: f.Index, Offset: off, Size: n})
		}
	}
	return out
}
