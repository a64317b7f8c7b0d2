package holding

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tapir-backup/tapir/image"
)

func header(payload []byte) *image.Header {
	s := sha256.Sum256(payload)
	return &image.Header{Datestamp: "20260102030405", Host: "web1", Path: "/etc", Level: 0, Part: 1, Parts: 1,
		Comp: image.CompNone, OriginalSize: int64(len(payload)), PayloadSize: int64(len(payload)),
		SHA256: hex.EncodeToString(s[:]), FrameSize: 1 << 20, Frames: 1, Encryption: "none"}
}

func TestFinishWritesCompleteImage(t *testing.T) {
	dir := t.TempDir()
	payload := []byte(strings.Repeat("x", 5000))
	h := header(payload)
	w, err := Create(dir, h.Datestamp, h.Name())
	if err != nil {
		t.Fatal(err)
	}
	w.Write(payload)
	path, err := w.Finish(h)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(path, TmpSuffix) {
		t.Fatalf("final path %s", path)
	}
	if _, err := os.Stat(w.TmpPath()); !os.IsNotExist(err) {
		t.Errorf(".tmp still there: %v", err)
	}
	got, err := Verify(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Host != "web1" || got.PayloadSize != 5000 {
		t.Errorf("header %+v", got)
	}
	if err := Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(path)); !os.IsNotExist(err) {
		t.Errorf("empty run directory left behind")
	}
}

// A payload whose SHA-256 does not match what the client announced never
// becomes a complete holding file.
func TestFinishRefusesCorruptPayload(t *testing.T) {
	dir := t.TempDir()
	payload := []byte("hello")
	h := header(payload)
	w, _ := Create(dir, h.Datestamp, h.Name())
	w.Write([]byte("hellO"))
	if _, err := w.Finish(h); err == nil || !strings.Contains(err.Error(), "SHA-256") {
		t.Fatalf("corrupt payload accepted: %v", err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*", "*"))
	if len(left) != 0 {
		t.Errorf("files left: %v", left)
	}
}

func TestVerifyDetectsFlippedByte(t *testing.T) {
	dir := t.TempDir()
	payload := []byte(strings.Repeat("y", 100000))
	h := header(payload)
	w, _ := Create(dir, h.Datestamp, h.Name())
	w.Write(payload)
	path, err := w.Finish(h)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(path, os.O_RDWR, 0)
	f.WriteAt([]byte{'z'}, image.HeaderSize+777)
	f.Close()
	if _, err := Verify(path); err == nil {
		t.Fatal("flipped byte not detected")
	}
}
