package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/image/crypt"
	"github.com/tapir-backup/tapir/wire"
)

// agentPair runs an Agent on loopback and returns the server's Remote.
func agentPair(t *testing.T) *Remote {
	t.Helper()
	return agentPairWith(t, nil)
}

// agentPairWith is agentPair with the Agent set up by cfg before it
// serves (nil: as it comes).
func agentPairWith(t *testing.T, cfg func(*Agent)) *Remote {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	ca, err := wire.InitCA(dir, "t", now)
	if err != nil {
		t.Fatal(err)
	}
	files := func(host, role string) wire.Files {
		if _, _, err := ca.Issue(host, []string{role}, dir, now); err != nil {
			t.Fatal(err)
		}
		return wire.Files{CA: filepath.Join(dir, wire.CACertFile), Cert: filepath.Join(dir, host+".crt"), Key: filepath.Join(dir, host+".key")}
	}
	scfg, err := wire.ServerConfig(files("web1", wire.RoleClient), wire.RoleServer)
	if err != nil {
		t.Fatal(err)
	}
	ccfg, err := wire.ClientConfig(files("backup", wire.RoleServer), "web1")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	a := &Agent{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), TLS: scfg}
	if cfg != nil {
		cfg(a)
	}
	go func() { a.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return &Remote{Host: "web1", Addr: ln.Addr().String(), TLS: ccfg}
}

// The agent asked to encrypt sends an age file: it decrypts with the
// identity to a payload the frame records (plaintext offsets) describe;
// Done's size and SHA-256 are of the ciphertext; its reply names the age
// feature.
func TestAgentEncrypts(t *testing.T) {
	r := agentPair(t)
	src := t.TempDir()
	big := bytes.Repeat([]byte("0123456789abcdef"), 40000) // 640 KB: several age chunks
	os.WriteFile(filepath.Join(src, "big"), big, 0o644)
	os.WriteFile(filepath.Join(src, "small"), []byte("hello"), 0o644)
	id1, _ := crypt.NewIdentity()
	id2, _ := crypt.NewIdentity()
	for _, tc := range []struct {
		comp string
		bw   int64
	}{{"zst", 0}, {"gz", 0}, {"none", 0}, {"zst", 64 << 20}} {
		comp := tc.comp
		t.Run(fmt.Sprintf("%s/bandwidth=%d", comp, tc.bw), func(t *testing.T) {
			var data bytes.Buffer
			var frames []image.Frame
			var features []string
			done, err := r.Dump(context.Background(), wire.Request{DLE: src, Compress: comp, FrameSize: 64 << 10, Encrypt: crypt.Name,
				Recipients: []string{id1.Recipient().String(), id2.Recipient().String()}, Bandwidth: tc.bw}, DumpHandler{
				Reply: func(rep *wire.Reply) error { features = rep.Features; return nil },
				Data:  func(b []byte) error { data.Write(b); return nil },
				Index: func(wire.IndexRecord) error { return nil },
				Frame: func(f image.Frame) error { frames = append(frames, f); return nil },
				Warn:  func(string) {},
			})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(features, FeatureAge) {
				t.Errorf("dump reply features %v lack %q", features, FeatureAge)
			}
			sum := sha256.Sum256(data.Bytes())
			if done.PayloadSize != int64(data.Len()) || done.SHA256 != hex.EncodeToString(sum[:]) {
				t.Errorf("Done says %d bytes %s; received %d bytes %x", done.PayloadSize, done.SHA256, data.Len(), sum)
			}
			if !bytes.HasPrefix(data.Bytes(), []byte("age-encryption.org/v1\n")) {
				t.Fatalf("the payload is not an age file: %q", data.Bytes()[:32])
			}
			// Each recipient opens it.
			for _, id := range []age.Identity{id1, id2} {
				pr, err := crypt.NewReader(bytes.NewReader(data.Bytes()), []age.Identity{id})
				if err != nil {
					t.Fatal(err)
				}
				plain, err := io.ReadAll(pr)
				if err != nil {
					t.Fatal(err)
				}
				if n := len(frames); n == 0 || frames[n-1].Offset+frames[n-1].Size > int64(len(plain)) {
					t.Fatalf("frames %+v do not lie in the %d plaintext bytes", frames, len(plain))
				}
				// The frames, at their plaintext offsets, give the tar stream.
				tr, err := image.NewReaderAt(bytes.NewReader(plain), image.Comp(comp), frames, 0)
				if err != nil {
					t.Fatal(err)
				}
				tarBytes, err := io.ReadAll(tr)
				tr.Close()
				if err != nil || int64(len(tarBytes)) != done.OrigSize || !bytes.Contains(tarBytes, big[:4096]) {
					t.Errorf("tar stream through the frames: %d bytes (Done says %d), %v", len(tarBytes), done.OrigSize, err)
				}
			}
			hl, err := crypt.HeaderLen(data.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := crypt.NewLayout(int64(hl), done.PayloadSize); err != nil {
				t.Errorf("layout: %v", err)
			}
		})
	}
}

// Requests for an encryption the agent cannot honour are refused with a
// reply that says why, before anything is sent.
func TestAgentRefusesBadEncryption(t *testing.T) {
	r := agentPair(t)
	src := t.TempDir()
	id, _ := crypt.NewIdentity()
	good := id.Recipient().String()
	var many []string
	for range MaxRecipients + 1 {
		x, _ := crypt.NewIdentity()
		many = append(many, x.Recipient().String())
	}
	for _, tc := range []struct {
		name       string
		enc        string
		recipients []string
		want, not  string
	}{
		{"unknown method", "rot13", []string{good}, `encryption "rot13" unknown`, ""},
		{"no recipients", crypt.Name, nil, "without recipients", ""},
		{"too many", crypt.Name, many, "at most 64", ""},
		{"not a recipient", crypt.Name, []string{good, "age1notarecipient"}, "not an age recipient", ""},
		{"a secret key", crypt.Name, []string{id.String()}, "secret key", id.String()[20:]},
		{"recipients without encrypt", "", []string{good}, "without encrypt", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sent := false
			_, err := r.Dump(context.Background(), wire.Request{DLE: src, Encrypt: tc.enc, Recipients: tc.recipients}, DumpHandler{
				Data:  func([]byte) error { sent = true; return nil },
				Index: func(wire.IndexRecord) error { return nil },
				Frame: func(image.Frame) error { return nil },
				Warn:  func(string) {},
			})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "refused dump") {
				t.Fatalf("got %v, want a refusal saying %q", err, tc.want)
			}
			if tc.not != "" && strings.Contains(err.Error(), tc.not) {
				t.Errorf("the refusal echoes the secret key: %v", err)
			}
			if sent {
				t.Error("payload sent despite the refusal")
			}
		})
	}
}
