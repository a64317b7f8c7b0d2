package wire

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/image"
)

func TestFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	c := NewConn(&buf)
	if err := c.WriteMsg(Request{Op: OpDump, DLE: "/etc", Level: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := (DataWriter{C: c, Chunk: 3}).Write([]byte("abcdefgh")); err != nil {
		t.Fatal(err)
	}
	c.Flush()
	var req Request
	if err := c.ReadMsg(&req); err != nil || req.DLE != "/etc" || req.Level != 1 {
		t.Fatalf("got %+v %v", req, err)
	}
	var data []byte
	for i := 0; i < 3; i++ {
		typ, b, err := c.ReadFrame()
		if err != nil || typ != FrameData {
			t.Fatalf("frame %d: %q %v", i, typ, err)
		}
		data = append(data, b...)
	}
	if string(data) != "abcdefgh" {
		t.Fatalf("data %q", data)
	}
}

func TestReadFrameRejectsBadInput(t *testing.T) {
	for name, in := range map[string][]byte{
		"unknown type": {'Z', 0, 0, 0, 1, 'x'},
		"too long":     {'D', 0xff, 0xff, 0xff, 0xff},
		"truncated":    {'D', 0, 0, 0, 9, 'x'},
		"bad json":     {'M', 0, 0, 0, 2, '{', 'x'},
		"unknown key":  append([]byte{'M', 0, 0, 0, 13}, `{"opx":"add"}`...),
	} {
		c := NewConn(bytes.NewBuffer(in))
		var r Request
		if err := c.ReadMsg(&r); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestIndexRoundTrip(t *testing.T) {
	recs := []IndexRecord{
		{Path: "a/b", Type: '0', Size: 12, Mode: 0o4755, Mtime: time.Unix(5, 7), UID: 1000, GID: 100, TarOffset: 1536},
		{Path: "l", Type: '2', Link: "a/b", Mtime: time.Unix(0, 0), TarOffset: 1 << 40},
	}
	var b []byte
	for _, r := range recs {
		b = AppendIndex(b, r)
	}
	var got []IndexRecord
	if err := DecodeIndex(b, func(r IndexRecord) error { got = append(got, r); return nil }); err != nil {
		t.Fatal(err)
	}
	for i := range recs {
		if got[i].Path != recs[i].Path || got[i].Mode != recs[i].Mode || !got[i].Mtime.Equal(recs[i].Mtime) || got[i].TarOffset != recs[i].TarOffset || got[i].Link != recs[i].Link {
			t.Errorf("record %d: got %+v want %+v", i, got[i], recs[i])
		}
	}
	if err := DecodeIndex(b[:len(b)-1], func(IndexRecord) error { return nil }); !errors.Is(err, ErrProtocol) {
		t.Errorf("truncated batch: %v", err)
	}
}

func FuzzDecodeIndex(f *testing.F) {
	f.Add(AppendIndex(nil, IndexRecord{Path: "x", Type: '0', Size: 1, Mode: 0o644, TarOffset: 512}))
	f.Add([]byte{0xff, 0xff, 0xff})
	f.Add(AppendFrameInfo(nil, image.Frame{TarOffset: 1, TarSize: 2, Offset: 3, Size: 4}))
	f.Fuzz(func(t *testing.T, b []byte) {
		DecodeIndex(b, func(r IndexRecord) error {
			if r.Path == "" || r.Size < 0 || r.Mode > 0o7777 {
				t.Fatalf("invalid record accepted: %+v", r)
			}
			return nil
		})
		DecodeFrameInfo(b, func(image.Frame) error { return nil })
		c := NewConn(bytes.NewBuffer(b))
		var r Request
		c.ReadMsg(&r)
	})
}

func TestCAAndMutualTLS(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	ca, err := InitCA(dir, "t", now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := InitCA(dir, "t", now); err == nil {
		t.Fatal("InitCA overwrote an existing CA")
	}
	for _, f := range []string{CAKeyFile} {
		st, _ := os.Stat(filepath.Join(dir, f))
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", f, st.Mode().Perm())
		}
	}
	if _, _, err := ca.Issue("srv", []string{RoleServer}, dir, now); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ca.Issue("web1", []string{RoleClient}, dir, now); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ca.Issue("bad host!", []string{RoleClient}, dir, now); err == nil {
		t.Error("issued a certificate for an invalid host name")
	}
	st, _ := os.Stat(filepath.Join(dir, "web1.key"))
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v", st.Mode().Perm())
	}
	files := func(h string) Files {
		return Files{CA: filepath.Join(dir, CACertFile), Cert: filepath.Join(dir, h+".crt"), Key: filepath.Join(dir, h+".key")}
	}
	// The agent (web1) accepts only server-role peers.
	handshake := func(dialer string) error {
		scfg, err := ServerConfig(files("web1"), RoleServer)
		if err != nil {
			t.Fatal(err)
		}
		ccfg, err := ClientConfig(files(dialer), "web1")
		if err != nil {
			t.Fatal(err)
		}
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		errc := make(chan error, 1)
		go func() { errc <- tls.Server(a, scfg).Handshake() }()
		cc := tls.Client(b, ccfg)
		cerr := cc.Handshake()
		if cerr != nil {
			return errors.Join(<-errc, cerr)
		}
		// TLS 1.3: the client learns of a rejection on its first read.
		// It reads while the server finishes; a server that accepted
		// has nothing more to say, and closing the pipe ends the read.
		rd := make(chan error, 1)
		go func() { _, err := cc.Read(make([]byte, 1)); rd <- err }()
		if serr := <-errc; serr != nil {
			return errors.Join(serr, <-rd)
		}
		b.Close()
		<-rd
		return nil
	}
	if err := handshake("srv"); err != nil {
		t.Errorf("server → agent handshake failed: %v", err)
	}
	if err := handshake("web1"); err == nil || !strings.Contains(err.Error(), "accepts only") {
		t.Errorf("client → agent handshake: %v; want a refusal naming the role", err)
	}
}

// trickle hands out its bytes, then blocks reads with an error that says
// the peer has sent nothing more (as a connection with a deadline would).
type trickle struct{ b []byte }

var errNoMore = errors.New("no more bytes yet")

func (t *trickle) Read(p []byte) (int, error) {
	if len(t.b) == 0 {
		return 0, errNoMore
	}
	n := copy(p, t.b)
	t.b = t.b[n:]
	return n, nil
}

func (t *trickle) Write(p []byte) (int, error) { return len(p), nil }

// TestReadFrameGrowsWithData: a frame announced at the largest size whose
// first KiB has arrived holds a few KiB, not the announced length; once
// its bytes have all arrived, it reads whole.
func TestReadFrameGrowsWithData(t *testing.T) {
	hdr := []byte{FrameData, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(hdr[1:], MaxFrame)
	c := NewConn(&trickle{append(hdr, make([]byte, 1024)...)})
	if _, _, err := c.ReadFrame(); !errors.Is(err, errNoMore) {
		t.Fatalf("partial frame: %v", err)
	}
	if cap(c.buf) > 8<<10 {
		t.Errorf("a frame announced at %d bytes of which 1 KiB arrived holds a buffer of %d bytes", MaxFrame, cap(c.buf))
	}
	full := make([]byte, MaxFrame)
	for i := range full {
		full[i] = byte(i * 7)
	}
	var buf bytes.Buffer
	w := NewConn(&buf)
	w.WriteFrame(FrameData, full, true)
	w.WriteFrame(FrameMsg, []byte("{}"), true)
	r := NewConn(&buf)
	typ, b, err := r.ReadFrame()
	if err != nil || typ != FrameData || !bytes.Equal(b, full) {
		t.Fatalf("full frame: %q, %d bytes, %v", typ, len(b), err)
	}
	if typ, b, err := r.ReadFrame(); err != nil || typ != FrameMsg || string(b) != "{}" {
		t.Fatalf("next frame: %q %q %v", typ, b, err)
	}
}

// TestReadLimit: a Conn refuses a frame over its read limit before reading
// it, with an error that says both sizes and matches ErrProtocol.
func TestReadLimit(t *testing.T) {
	var buf bytes.Buffer
	w := NewConn(&buf)
	w.WriteFrame(FrameMsg, bytes.Repeat([]byte("x"), 101), true)
	r := NewConn(&buf)
	r.SetReadLimit(100)
	_, _, err := r.ReadFrame()
	var tl *FrameTooLargeError
	if !errors.As(err, &tl) || !errors.Is(err, ErrProtocol) || tl.Size != 101 || tl.Limit != 100 || !strings.Contains(err.Error(), "at most 100") {
		t.Fatalf("frame over the limit: %v", err)
	}
	if r.ReadLimit() != 100 {
		t.Errorf("read limit %d", r.ReadLimit())
	}
	r.SetReadLimit(0)
	if r.ReadLimit() != MaxFrame {
		t.Errorf("read limit after SetReadLimit(0): %d", r.ReadLimit())
	}
}

// TestAwaitInput: it returns once a byte is there, without taking it, and
// with the error when the stream ends.
func TestAwaitInput(t *testing.T) {
	var buf bytes.Buffer
	w := NewConn(&buf)
	w.WriteMsg(Request{Op: OpSelfcheck})
	r := NewConn(&buf)
	if err := r.AwaitInput(); err != nil {
		t.Fatal(err)
	}
	var req Request
	if err := r.ReadMsg(&req); err != nil || req.Op != OpSelfcheck {
		t.Fatalf("message after AwaitInput: %+v %v", req, err)
	}
	if err := r.AwaitInput(); !errors.Is(err, io.EOF) {
		t.Errorf("AwaitInput at the end: %v", err)
	}
}
