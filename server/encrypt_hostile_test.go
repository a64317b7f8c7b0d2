package server

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/tapir-backup/tapir/client"
	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/image/crypt"
	"github.com/tapir-backup/tapir/report"
	"github.com/tapir-backup/tapir/wire"
)

// liarAgent speaks the agent protocol with the client's certificate and
// answers a dump with a small tree, encrypted or not as its mode says,
// whatever the request asked.
type liarAgent struct {
	features []string
	// mode: "plain" sends the payload unencrypted; "flip" encrypts it
	// and changes a ciphertext byte on the wire after hashing it;
	// "short" sends the first bytes of an age header only; "honest"
	// encrypts as asked.
	mode string
}

func (l *liarAgent) serve(t *testing.T, s *site) string {
	t.Helper()
	return serveFakeAgent(t, s, l.handle, false)
}

func (l *liarAgent) handle(tc *tls.Conn) {
	defer tc.Close()
	c := wire.NewConn(tc)
	var req wire.Request
	if err := c.ReadMsg(&req); err != nil {
		return
	}
	if l.mode == "old" && req.Encrypt != "" {
		// An agent from before encryption: its strict decoder refuses
		// the unknown fields.
		c.WriteMsg(wire.Reply{Error: `bad request: json: unknown field "encrypt"`})
		return
	}
	switch req.Op {
	case wire.OpEstimate:
		var est []wire.Estimate
		for _, lv := range req.Levels {
			est = append(est, wire.Estimate{Level: lv, Bytes: 64 << 10, Files: 2})
		}
		c.WriteMsg(wire.Reply{OK: true, Estimates: est})
		return
	case wire.OpDump:
	default:
		c.WriteMsg(wire.Reply{OK: true, Version: "liar", Features: l.features})
		return
	}
	c.WriteMsg(wire.Reply{OK: true, Version: "liar", Features: l.features})
	var plain bytes.Buffer
	pw, _ := image.NewPayloadWriter(&plain, image.WriterOptions{Comp: image.Comp(req.Compress), FrameSize: req.FrameSize})
	tw := tar.NewWriter(pw)
	tw.WriteHeader(&tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX})
	body := strings.Repeat("secret ", 20000)
	tw.WriteHeader(&tar.Header{Name: "./a", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body)), ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX})
	tw.Write([]byte(body))
	tw.Close()
	pw.Close()
	sum := pw.Sum()
	payload, size, sha := plain.Bytes(), sum.PayloadSize, sum.SHA256
	if l.mode == "plainflip" {
		payload[len(payload)/2] ^= 1
	}
	if l.mode != "plain" && l.mode != "plainflip" {
		var ct bytes.Buffer
		enc, err := crypt.NewWriter(&ct, req.Recipients)
		if err != nil {
			c.WriteMsg(wire.Done{Error: err.Error()})
			return
		}
		enc.Write(payload)
		enc.Close()
		payload, size, sha = ct.Bytes(), enc.Size(), enc.SHA256()
		switch l.mode {
		case "flip":
			payload[len(payload)-100] ^= 1
		case "short":
			payload = payload[:40]
		}
	}
	(wire.DataWriter{C: c, Chunk: 1 << 20}).Write(payload)
	idx := wire.AppendIndex(nil, wire.IndexRecord{Path: "a", Type: tar.TypeReg, Size: int64(len(body)), Mode: 0o644, Mtime: time.Unix(1700000000, 0), TarOffset: 512})
	c.WriteFrame(wire.FrameIndex, idx, false)
	var fb []byte
	for _, f := range sum.Frames {
		fb = wire.AppendFrameInfo(fb, f)
	}
	c.WriteFrame(wire.FrameFrame, fb, false)
	c.WriteMsg(wire.Done{OrigSize: sum.OriginalSize, PayloadSize: size, SHA256: sha, Files: 1, Frames: int64(len(sum.Frames))})
	c.Flush()
	var cf wire.Confirm
	c.ReadMsg(&cf)
}

// An agent that does not do what client-side encryption asks gets its
// dump FAILED with a reason naming the DLE, and nothing of it is kept:
// one that sends plaintext, one that sends a cut age header, one without
// the age feature; a ciphertext byte changed in transit is a SHA-256
// mismatch as for any image.
func TestEncryptionLiarsRefused(t *testing.T) {
	all := append([]string(nil), client.Features...)
	var noAge []string
	for _, f := range all {
		if f != client.FeatureAge {
			noAge = append(noAge, f)
		}
	}
	for _, tc := range []struct {
		name     string
		agent    liarAgent
		want     []string
		noRetry  bool
		checkMsg string // what tapir check says of the agent; "" nothing
	}{
		{"plaintext", liarAgent{features: all, mode: "plain"}, []string{"is not an age file", "level 0"}, true, ""},
		{"cut header", liarAgent{features: all, mode: "short"}, []string{"inside its age header"}, true, ""},
		{"no age feature", liarAgent{features: noAge, mode: "plain"}, []string{`says encrypt = "client"`, "cannot encrypt with age", "upgrade tapir"}, true, "cannot encrypt with age"},
		{"agent from before encryption", liarAgent{features: noAge, mode: "old"}, []string{`says encrypt = "client"`, "cannot encrypt with age", "an older version"}, true, "cannot encrypt with age"},
		{"flipped byte", liarAgent{features: all, mode: "flip"}, []string{"SHA-256", "corrupted in transit"}, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSite(t, "")
			k := newTestKey(t, filepath.Join(t.TempDir(), "keys"))
			s.encryptDumptype("default", config.EncryptClient, k)
			s.cfg.Hosts["localhost"] = config.Host{Address: tc.agent.serve(t, s)}
			s.cfg.DLEs = s.cfg.DLEs[:1]
			s.cfg.Retries = 1
			rep, out, err := s.night(t, Deps{})
			if err == nil || len(rep.DLEs) != 1 || rep.DLEs[0].Status != report.StatusFailed {
				t.Fatalf("want FAILED: %v\n%s", err, out)
			}
			d := rep.DLEs[0]
			for _, w := range tc.want {
				if !strings.Contains(d.Reason, w) {
					t.Errorf("reason %q does not say %q", d.Reason, w)
				}
			}
			if !strings.Contains(d.Reason, "localhost") {
				t.Errorf("reason %q does not name the host", d.Reason)
			}
			if tc.noRetry && len(d.Retries) != 0 {
				t.Errorf("a final refusal was retried: %+v", d.Retries)
			}
			cat := s.catalog(t)
			for _, st := range []string{"good", "holding"} {
				if ds, _ := cat.DumpsWithStatus(t.Context(), st); len(ds) != 0 {
					t.Errorf("an image was kept as %s: %+v", st, ds)
				}
			}
			if held := holdingFiles(t, s); len(held) != 0 {
				t.Errorf("holding files left: %v", held)
			}
			c := Check(context.Background(), s.cfg, Deps{Log: testLogger(t)}, CheckOptions{Clients: true})
			got := problemsText(c.Problems)
			if tc.checkMsg != "" && !strings.Contains(got, tc.checkMsg) {
				t.Errorf("check does not say %q:\n%s", tc.checkMsg, got)
			}
			if tc.checkMsg == "" && strings.Contains(got, "cannot encrypt") {
				t.Errorf("check blames an agent with the age feature:\n%s", got)
			}
		})
	}
}

// Server-side encryption of a stream that arrives damaged (a changed byte
// in transit) or hostile (a name that leaves the DLE): the dump fails as
// it would unencrypted, the encrypting writer is stopped, and nothing of
// it is kept, on the holding disk or straight to a volume.
func TestServerEncryptionRefusesBadStreams(t *testing.T) {
	for _, tc := range []struct {
		name, holding string
		agent         any
		want          string
	}{
		{"flipped byte", "auto", &liarAgent{features: client.Features, mode: "plainflip"}, "corrupted in transit"},
		{"flipped byte straight to tape", "never", &liarAgent{features: client.Features, mode: "plainflip"}, "corrupted in transit"},
		{"hostile name", "auto", &hostileAgent{entries: []hostileEntry{{name: "./", typ: tar.TypeDir}, {name: "./../x", typ: tar.TypeReg, body: "x"}}}, "leaves the DLE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSite(t, "")
			k := newTestKey(t, filepath.Join(t.TempDir(), "keys"))
			s.encryptDumptype("default", config.EncryptServer, k)
			dt := s.cfg.Dumptypes["default"]
			dt.Holding = tc.holding
			if strings.HasPrefix(tc.name, "flipped") {
				// Uncompressed: the changed byte is in a file's content,
				// which the tar check cannot see; the SHA-256 does.
				dt.Compress = config.CompressNone
			}
			s.cfg.Dumptypes["default"] = dt
			var addr string
			switch a := tc.agent.(type) {
			case *liarAgent:
				addr = a.serve(t, s)
			case *hostileAgent:
				addr = a.serve(t, s)
			}
			s.cfg.Hosts["localhost"] = config.Host{Address: addr}
			s.cfg.DLEs = s.cfg.DLEs[:1]
			rep, out, err := s.night(t, Deps{})
			if err == nil || rep.DLEs[0].Status != report.StatusFailed || !strings.Contains(rep.DLEs[0].Reason, tc.want) {
				t.Fatalf("want FAILED with %q: %v\n%s", tc.want, err, out)
			}
			cat := s.catalog(t)
			for _, st := range []string{"good", "holding"} {
				if ds, _ := cat.DumpsWithStatus(t.Context(), st); len(ds) != 0 {
					t.Errorf("an image was kept as %s: %+v", st, ds)
				}
			}
			if held := holdingFiles(t, s); len(held) != 0 {
				t.Errorf("holding files left: %v", held)
			}
		})
	}
}

// The backup server never opens a file that holds an identity during a
// night with client-side encryption: the key's file and its directory
// are watched with inotify while the night runs (server and agent in
// this process), and no open or read is seen. Opening the file at the
// end shows the watch works.
func TestNightNeverOpensIdentity(t *testing.T) {
	s := newSite(t, "")
	keyDir := filepath.Join(t.TempDir(), "keys")
	k := newTestKey(t, keyDir)
	s.encryptDumptype("default", config.EncryptClient, k)
	s.encryptDumptype("gz", config.EncryptClient, k)

	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	for _, p := range []string{k.file, keyDir} {
		if _, err := unix.InotifyAddWatch(fd, p, unix.IN_OPEN|unix.IN_ACCESS); err != nil {
			t.Fatal(err)
		}
	}
	events := func() []string {
		var got []string
		buf := make([]byte, 64<<10)
		for {
			n, err := unix.Read(fd, buf)
			if errors.Is(err, unix.EAGAIN) || n <= 0 {
				return got
			}
			if err != nil {
				t.Fatal(err)
			}
			for off := 0; off+unix.SizeofInotifyEvent <= n; {
				ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
				name := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)]), "\x00")
				got = append(got, name+":"+maskName(ev.Mask))
				off += unix.SizeofInotifyEvent + int(ev.Len)
			}
		}
	}
	rep, out, err := s.night(t, Deps{})
	if err != nil {
		t.Fatalf("night: %v\n%s", err, out)
	}
	if ev := events(); len(ev) != 0 {
		t.Errorf("the identity file or its directory was opened or read during the night: %v", ev)
	}
	for _, d := range rep.DLEs {
		if d.Status != "OK" {
			t.Errorf("%s: %s %s", d.Path, d.Status, d.Reason)
		}
	}
	checkEncryptedImages(t, s, s.data, k)
	// The watch works: an open of the file is seen.
	f, err := os.Open(k.file)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if ev := events(); len(ev) == 0 {
		t.Fatal("the inotify watch saw no event for an open of the identity file: the test proves nothing")
	}
}

func maskName(m uint32) string {
	var s []string
	if m&unix.IN_OPEN != 0 {
		s = append(s, "open")
	}
	if m&unix.IN_ACCESS != 0 {
		s = append(s, "access")
	}
	if len(s) == 0 {
		return "other"
	}
	return strings.Join(s, "|")
}
