package recover

import (
	"errors"
	"fmt"
	"strings"

	"github.com/tapir-backup/tapir/image/crypt"
	"github.com/tapir-backup/tapir/wire"
)

// ImageKeys unwraps, with the identities of ids (nil: none given), the
// payload key of every encrypted image of a plan of the view q: one per
// image, nil for a plain one. It is called before anything is written: an
// encrypted image without a key that opens it fails the whole restore,
// with a sentence that names the image and its recipients' fingerprints
// (and the key's, when the key is the wrong one) and says what to do.
func ImageKeys(q Query, imgs []wire.ImageInfo, ids *crypt.Identities) ([]*crypt.Key, error) {
	var keys []*crypt.Key
	for i, im := range imgs {
		if !im.Encrypted() {
			continue
		}
		what := fmt.Sprintf("level %d image %s of %s:%s", im.Level, im.Datestamp, q.Host, q.DLE)
		if im.Encryption != crypt.Name {
			return nil, fmt.Errorf("%s is encrypted with %q, which this tapir cannot decrypt (it knows age): restore it with a newer tapir", what, im.Encryption)
		}
		rcpt := fingerprints(im.Recipients)
		if ids == nil || len(ids.List) == 0 {
			return nil, fmt.Errorf("%s is encrypted (age, recipients %s): give --identity FILE, the key of one of them (written by tapir key new, or its paper form); nothing was restored", what, rcpt)
		}
		if len(im.CryptHeader) == 0 {
			return nil, fmt.Errorf("%s is encrypted (age), but the index server sent no age header for it (the catalog lacks it): restore it on the backup server with `tapir recover -c CONFIG --identity FILE`; nothing was restored", what)
		}
		k, err := crypt.Unwrap(im.CryptHeader, im.PayloadSize, ids.List)
		if errors.Is(err, crypt.ErrWrongKey) {
			return nil, fmt.Errorf("%s is encrypted to recipients %s; the key in %s is %s, not one of them: give the identity of one of its recipients (--identity FILE); nothing was restored", what, rcpt, ids.File, fingerprints(ids.Fingerprints()))
		}
		if err != nil {
			return nil, fmt.Errorf("%s: its age header: %v; nothing was restored", what, err)
		}
		if keys == nil {
			keys = make([]*crypt.Key, len(imgs))
		}
		keys[i] = k
	}
	return keys, nil
}

func fingerprints(fps []string) string {
	if len(fps) == 0 {
		return "(none named)"
	}
	return strings.Join(fps, ", ")
}

// sealedSpan is the ciphertext of a sealed frame of the payload l: the age
// chunks [First, First+Count) hold its plaintext; their ciphertext is
// payload bytes [Off, Off+Len), of which Send are sent (the first chunk
// left out when carried), and the last chunk's ciphertext is the Tail
// bytes at the end.
type sealedSpan struct {
	First, Count, Off, Len, Send, Tail int64
}

// spanOf checks a sealed frame against the layout of its payload and
// returns its span. An error says what does not fit (a protocol error on
// the shell's side).
func spanOf(l crypt.Layout, s wire.Sealed) (sealedSpan, error) {
	if s.Offset < 0 || s.Size <= 0 {
		return sealedSpan{}, fmt.Errorf("frame %d: %d stored bytes at plaintext offset %d", s.Frame, s.Size, s.Offset)
	}
	first, count, off, n, err := l.Span(s.Offset, s.Size)
	if err != nil {
		return sealedSpan{}, fmt.Errorf("frame %d: %v", s.Frame, err)
	}
	sp := sealedSpan{First: first, Count: count, Off: off, Len: n, Send: n}
	sp.Tail = l.ChunkCipher(first + count - 1)
	if s.Carry {
		sp.Send -= l.ChunkCipher(first)
	}
	if s.Cipher != sp.Send {
		return sealedSpan{}, fmt.Errorf("frame %d: %d ciphertext bytes announced; age chunks %d..%d are %d bytes (carry %v: %d to send)", s.Frame, s.Cipher, first, first+count-1, n, s.Carry, sp.Send)
	}
	return sp, nil
}
