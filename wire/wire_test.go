package wire

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	f.Add(AppendFrameInfo(nil, FrameInfo{TarOffset: 1, TarSize: 2, Offset: 3, Size: 4}))
	f.Fuzz(func(t *testing.T, b []byte) {
		DecodeIndex(b, func(r IndexRecord) error {
			if r.Path == "" || r.Size < 0 || r.Mode > 0o7777 {
				t.Fatalf("invalid record accepted: %+v", r)
			}
			return nil
		})
		DecodeFrameInfo(b, func(FrameInfo) error { return nil })
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
		if cerr == nil { // TLS 1.3: the client learns of a rejection on first read
			cc.SetReadDeadline(time.Now().Add(2 * time.Second))
			_, cerr = cc.Read(make([]byte, 1))
			if errors.Is(cerr, os.ErrDeadlineExceeded) {
				cerr = nil
			}
		}
		serr := <-errc
		return errors.Join(serr, cerr)
	}
	if err := handshake("srv"); err != nil {
		t.Errorf("server → agent handshake failed: %v", err)
	}
	if err := handshake("web1"); err == nil || !strings.Contains(err.Error(), "accepts only") {
		t.Errorf("client → agent handshake: %v; want a refusal naming the role", err)
	}
}
