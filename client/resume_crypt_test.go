package client

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/image/crypt"
	"github.com/tapir-backup/tapir/wire"
)

// encDump runs a client-side encrypted dump of f's tree the way the
// agent does (journal, encryptor, checkpoint writer), resumed at cr when
// set; it returns the ciphertext written and the checkpoints announced.
func encDump(t *testing.T, f *resumeFixture, req wire.Request, rp *resumePoint, cr *cryptResume) ([]byte, []wire.Checkpoint, *crypt.Encryptor) {
	t.Helper()
	jr, err := openJournal(resumeDir(f.stateDir, f.token), req, rp)
	if err != nil {
		t.Fatal(err)
	}
	defer jr.close()
	var out bytes.Buffer
	buf := bufio.NewWriterSize(&out, 1<<20)
	var enc *crypt.Encryptor
	var base int64 // ciphertext before what out holds
	if cr != nil {
		base = cr.st.Cipher
		enc, err = crypt.ResumeEncryptor(buf, cr.fileKey, cr.hdr, cr.st)
	} else {
		enc, err = crypt.NewEncryptor(buf, req.Recipients)
		jr.saveCryptKey(enc.FileKey(), enc.Header())
	}
	if err != nil {
		t.Fatal(err)
	}
	var cks []wire.Checkpoint
	cw := &checkpointWriter{enc: enc, buf: buf, j: jr, send: func(ck wire.Checkpoint) error {
		// Announced after the ciphertext it covers.
		if base+int64(out.Len()) < ck.Cipher {
			t.Errorf("checkpoint %+v announced before its ciphertext was sent", ck)
		}
		cks = append(cks, ck)
		return nil
	}}
	jr.afterCheckpoint = cw.frame
	opt := f.opt
	opt.journal, opt.resume = jr, rp
	var recs []wire.IndexRecord
	var lst []string
	s := f.sink(nil, &recs, &lst, nil)
	s.Payload = cw
	if _, err := Dump(context.Background(), f.root, opt, s); err != nil {
		t.Fatal(err)
	}
	if jr.failed != nil {
		t.Fatal(jr.failed)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	buf.Flush()
	return out.Bytes(), cks, enc
}

// A client-side encrypted dump resumed at any of its announced
// checkpoints (the last cryptSlots) continues the very same age file:
// the ciphertext before the checkpoint and the resumed rest are the
// whole dump's byte for byte, age decrypts it, and the resumed
// encryptor's size and SHA-256 are the whole file's.
func TestResumeEncryptedAtEveryCheckpoint(t *testing.T) {
	id, err := crypt.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	root := resumeTreeForTest(t)
	f := &resumeFixture{root: root, stateDir: t.TempDir(), token: "0123456789abcdef0123456789abcdef"}
	f.req = wire.Request{Op: wire.OpDump, DLE: root, Datestamp: "20260101000000", Compress: "zst", FrameSize: resumeFrame, Token: f.token,
		Encrypt: crypt.Name, Recipients: []string{id.Recipient().String()}}
	f.opt = DumpOptions{Comp: "zst", FrameSize: resumeFrame, Datestamp: f.req.Datestamp, State: &StateStore{Dir: f.stateDir}}
	whole, cks, enc := encDump(t, f, f.req, nil, nil)
	if len(cks) < 8 {
		t.Fatalf("only %d checkpoints", len(cks))
	}
	if enc.Size() != int64(len(whole)) {
		t.Fatalf("Size %d, wrote %d", enc.Size(), len(whole))
	}
	d, err := age.Decrypt(bytes.NewReader(whole), id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, d); err != nil {
		t.Fatalf("age.Decrypt: %v", err)
	}
	dir := resumeDir(f.stateDir, f.token)
	f.walk, _ = os.ReadFile(filepath.Join(dir, "walk"))
	f.checkpoints, _ = os.ReadFile(filepath.Join(dir, "frames"))
	slots, _ := os.ReadFile(filepath.Join(dir, "age-state"))
	key, _ := os.ReadFile(filepath.Join(dir, "age-key"))
	for i, ck := range cks {
		if ck.Frames != int64(i+1) {
			t.Fatalf("checkpoint %d: %+v", i, ck)
		}
		if int64(len(cks))-ck.Frames >= cryptSlots(resumeFrame) {
			continue // no longer kept: refused below
		}
		f.restore(t)
		os.WriteFile(filepath.Join(dir, "age-state"), slots, 0o600)
		req := f.req
		req.Resume = &wire.Resume{Frames: ck.Frames, PayloadOffset: ck.Plain, CipherOffset: ck.Cipher}
		rp, err := loadResume(f.stateDir, req)
		if err != nil {
			t.Fatal(err)
		}
		cr, err := loadCryptResume(dir, resumeFrame, ck.Frames, ck.Plain, ck.Cipher)
		if err != nil {
			t.Fatalf("checkpoint %+v: %v", ck, err)
		}
		rest, cks2, enc2 := encDump(t, f, req, rp, cr)
		got := append(bytes.Clone(whole[:ck.Cipher]), rest...)
		if !bytes.Equal(got, whole) {
			t.Fatalf("resumed at %+v: the age file differs from the whole dump's", ck)
		}
		if enc2.SHA256() != enc.SHA256() || enc2.Size() != enc.Size() {
			t.Fatalf("resumed at %+v: size %d sum %s, want %d %s", ck, enc2.Size(), enc2.SHA256(), enc.Size(), enc.SHA256())
		}
		if len(cks2) != len(cks)-i-1 || (len(cks2) > 0 && cks2[0] != cks[i+1]) {
			t.Fatalf("resumed at %+v: %d checkpoints announced after it, want %d", ck, len(cks2), len(cks)-i-1)
		}
	}
	// Refusals: a state no longer kept, a slot overwritten, a point
	// elsewhere, a lost key.
	last := cks[len(cks)-1]
	try := func(name string, prepare func(), frames, p, c int64, want string) {
		t.Helper()
		f.restore(t)
		os.WriteFile(filepath.Join(dir, "age-state"), slots, 0o600)
		os.WriteFile(filepath.Join(dir, "age-key"), key, 0o600)
		if prepare != nil {
			prepare()
		}
		if _, err := loadCryptResume(dir, resumeFrame, frames, p, c); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", name, err, want)
		}
	}
	try("overwritten slot", func() {
		jr := &journal{dir: dir, cslots: cryptSlots(resumeFrame)}
		jr.saveCryptState(last.Frames+cryptSlots(resumeFrame), crypt.EncState{Sum: []byte{1}})
		jr.close()
	}, last.Frames, last.Plain, last.Cipher, "no longer kept")
	try("elsewhere", nil, last.Frames, last.Plain, last.Cipher+1, "the server holds")
	try("no key", func() { os.Remove(filepath.Join(dir, "age-key")) }, last.Frames, last.Plain, last.Cipher, "encryption key")
	try("damaged state", func() {
		b := bytes.Clone(slots)
		b[(last.Frames%cryptSlots(resumeFrame))*cryptSlotSize+12] ^= 1
		os.WriteFile(filepath.Join(dir, "age-state"), b, 0o600)
	}, last.Frames, last.Plain, last.Cipher, "no encryption state saved")
	if fi, err := os.Stat(filepath.Join(dir, "age-key")); err == nil && fi.Mode().Perm() != 0o600 {
		t.Errorf("age-key mode %v, want 0600", fi.Mode().Perm())
	}
}

// Frames written in pieces of any size (a bandwidth limit splits them):
// each frame end is announced once, at its plaintext end, after the
// ciphertext it covers, with its state saved.
func TestCheckpointWriterSplitWrites(t *testing.T) {
	id, err := crypt.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	req := wire.Request{FrameSize: 64 << 10}
	jr, err := openJournal(dir, req, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer jr.close()
	var out bytes.Buffer
	buf := bufio.NewWriterSize(&out, 1<<20)
	enc, err := crypt.NewEncryptor(buf, []string{id.Recipient().String()})
	if err != nil {
		t.Fatal(err)
	}
	jr.saveCryptKey(enc.FileKey(), enc.Header())
	var cks []wire.Checkpoint
	cw := &checkpointWriter{enc: enc, buf: buf, j: jr, send: func(ck wire.Checkpoint) error {
		if int64(out.Len()) < ck.Cipher {
			t.Errorf("checkpoint %+v announced with %d bytes sent", ck, out.Len())
		}
		cks = append(cks, ck)
		return nil
	}}
	rnd := rand.New(rand.NewPCG(9, 10))
	var off int64
	var ends []int64
	for i := range 40 {
		size := int64(1 + rnd.IntN(150<<10))
		cw.frame(image.Frame{Index: i, Offset: off, Size: size})
		b := make([]byte, size)
		for len(b) > 0 {
			n := min(len(b), 1+rnd.IntN(40<<10))
			if _, err := cw.Write(b[:n]); err != nil {
				t.Fatal(err)
			}
			b = b[n:]
		}
		off += size
		ends = append(ends, off)
	}
	if len(cks) != len(ends) {
		t.Fatalf("%d checkpoints for %d frames", len(cks), len(ends))
	}
	hl := int64(len(enc.Header()))
	for i, ck := range cks {
		if ck.Frames != int64(i+1) || ck.Plain != ends[i] || ck.Cipher != crypt.CheckpointOffset(hl, ends[i]) {
			t.Fatalf("checkpoint %d: %+v, frame end %d", i, ck, ends[i])
		}
		if _, err := loadCryptResume(dir, req.FrameSize, ck.Frames, ck.Plain, ck.Cipher); err != nil {
			t.Fatalf("checkpoint %d: %v", i, err)
		}
	}
}
