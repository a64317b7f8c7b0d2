package catalog

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/image/crypt"
)

// An encrypted dump keeps its encryption, recipients and age header; its
// frames are checked against the plaintext of the age file, not against
// the bytes on the volume.
func TestEncryptedDump(t *testing.T) { forEachBackend(t, testEncryptedDump) }

func testEncryptedDump(t *testing.T) {
	c := newCatalog(t)
	ctx := t.Context()
	run := mkRun(t, c, "20250301010000")
	id, err := crypt.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	r := id.Recipient().String()
	frames, framed := testFrames(3 << 20)
	var ct bytes.Buffer
	w, err := crypt.NewWriter(&ct, []string{r})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(make([]byte, framed))
	w.Close()
	fps := crypt.Fingerprints([]string{r})

	d := &Dump{RunID: run, Host: "web1", Path: "/srv", FrameSize: testFrameSize, Started: t0, Encryption: image.EncAge, Recipients: fps}
	dumpID, err := c.CreateDump(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	// The frames cannot be checked before the age header is known.
	if err := c.SetDumpHolding(ctx, dumpID, 3<<20, w.Size(), testSHA, 1, "/h", frames, t0.Add(time.Minute)); err == nil || !strings.Contains(err.Error(), "SetDumpCryptHeader") {
		t.Fatalf("holding without an age header: %v", err)
	}
	if err := c.SetDumpCryptHeader(ctx, dumpID, append(w.Header(), 'x')); err == nil {
		t.Fatal("an age header with a stray byte was accepted")
	}
	if err := c.SetDumpCryptHeader(ctx, dumpID, w.Header()); err != nil {
		t.Fatal(err)
	}
	// A payload size that is no age file of this header: refused.
	if err := c.SetDumpHolding(ctx, dumpID, 3<<20, w.Size()-crypt.TagSize-1, testSHA, 1, "/h", frames, t0.Add(time.Minute)); err == nil {
		t.Fatal("a truncated age payload was accepted")
	}
	// Frames past the plaintext: refused, though they fit the ciphertext.
	long := append([]image.Frame(nil), frames...)
	long[len(long)-1].Size += 20
	if err := c.SetDumpHolding(ctx, dumpID, 3<<20, w.Size(), testSHA, 1, "/h", long, t0.Add(time.Minute)); err == nil || !strings.Contains(err.Error(), "past the payload size") {
		t.Fatalf("frames past the plaintext: %v", err)
	}
	if err := c.SetDumpHolding(ctx, dumpID, 3<<20, w.Size(), testSHA, 1, "/h", frames, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	got, err := c.Dump(ctx, dumpID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Encrypted() || strings.Join(got.Recipients, " ") != fps[0] || !bytes.Equal(got.CryptHeader, w.Header()) || got.PayloadSize != w.Size() {
		t.Fatalf("stored %+v", got)
	}

	// Rules of CreateDump and SetDumpCryptHeader.
	bad := []*Dump{
		{RunID: run, Host: "web1", Path: "/a", Encryption: image.EncAge},
		{RunID: run, Host: "web1", Path: "/a", Encryption: image.EncAge, Recipients: []string{"NOTHEX"}},
		{RunID: run, Host: "web1", Path: "/a", Recipients: fps},
		{RunID: run, Host: "web1", Path: "/a", Encryption: "rot13"},
	}
	for _, b := range bad {
		if _, err := c.CreateDump(ctx, b); err == nil {
			t.Errorf("CreateDump accepted %+v", b)
		}
	}
	plain := mkDump(t, c, run, "web1", "/plain", 0)
	if err := c.SetDumpCryptHeader(ctx, plain, w.Header()); err == nil || !strings.Contains(err.Error(), "not encrypted") {
		t.Fatalf("age header on a plain dump: %v", err)
	}
}
