package server

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/client"
	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/wire"
)

// TestAgentSurvivesBadMessages: malformed frames, unknown operations,
// paths outside the DLE and levels out of range each get an error reply,
// and the agent keeps serving.
func TestAgentSurvivesBadMessages(t *testing.T) {
	s := newSite(t, "")
	files := wire.Files{CA: s.cfg.TLS.CA, Cert: s.cfg.TLS.Cert, Key: s.cfg.TLS.Key}
	tlsCfg, err := wire.ClientConfig(files, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	addr := s.cfg.HostAddress("localhost")
	raw := func(payload []byte) string {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, tlsCfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write(payload) // an agent that never answers is caught by go test -timeout
		var rep wire.Reply
		if err := wire.NewConn(c).ReadMsg(&rep); err != nil {
			return "no reply: " + err.Error()
		}
		if rep.OK {
			return "OK"
		}
		return rep.Error
	}
	msg := func(req wire.Request) []byte {
		var b strings.Builder
		c := wire.NewConn(&rwBuf{&b})
		c.WriteMsg(req)
		c.Flush()
		return []byte(b.String())
	}
	for _, tc := range []struct {
		name    string
		payload []byte
		want    string
	}{
		{"garbage", []byte("GET / HTTP/1.1\r\n\r\n"), "bad request"},
		{"huge frame", []byte("M\x7f\xff\xff\xff"), "bad request"},
		{"not json", frame(`{{{`), "bad request"},
		{"unknown field", frame(`{"op":"dump","x":1}`), "bad request"},
		{"wrong type", frame(`{"op":"dump","level":"high"}`), "bad request"},
		{"unknown op", msg(wire.Request{Op: "delete"}), "unknown operation"},
		{"relative DLE", msg(wire.Request{Op: wire.OpDump, DLE: "etc"}), "absolute"},
		{"escaping DLE", msg(wire.Request{Op: wire.OpEstimate, DLE: s.data + "/../.."}), "clean"},
		{"level 10", msg(wire.Request{Op: wire.OpDump, DLE: s.data, Level: 10, Datestamp: "20260101000000"}), "out of range"},
		{"estimate level", msg(wire.Request{Op: wire.OpEstimate, DLE: s.data, Levels: []int{0, 42}}), "out of range"},
		{"bad datestamp", msg(wire.Request{Op: wire.OpDump, DLE: s.data, Datestamp: "../../x"}), "datestamp"},
		{"relative exclude list", msg(wire.Request{Op: wire.OpDump, DLE: s.data, Datestamp: "20260101000000", ExcludeList: []string{"x"}}), "exclude list"},
	} {
		if got := raw(tc.payload); !strings.Contains(got, tc.want) {
			t.Errorf("%s: reply %q, want one containing %q", tc.name, got, tc.want)
		}
	}
	// Still serving, and selfcheck reports on the DLE and the state directory.
	r := &client.Remote{Host: "localhost", Addr: addr, TLS: tlsCfg, Timeout: 10 * time.Second}
	rep, err := r.Selfcheck(context.Background(), s.data)
	if err != nil {
		t.Fatalf("selfcheck after bad messages: %v", err)
	}
	if rep.Version == "" || len(rep.Problems) != 0 {
		t.Errorf("selfcheck: version %q problems %q", rep.Version, rep.Problems)
	}
	rep, err = r.Selfcheck(context.Background(), filepath.Join(s.data, "no-such-dir"))
	if err != nil || len(rep.Problems) == 0 || !strings.Contains(rep.Problems[0], "no-such-dir") {
		t.Errorf("selfcheck of a missing DLE: %+v %v; want a problem naming it", rep, err)
	}
}

func frame(json string) []byte {
	var b strings.Builder
	wire.NewConn(&rwBuf{&b}).WriteFrame(wire.FrameMsg, []byte(json), true)
	return []byte(b.String())
}

type rwBuf struct{ b *strings.Builder }

func (r *rwBuf) Read(p []byte) (int, error)  { return 0, nil }
func (r *rwBuf) Write(p []byte) (int, error) { return r.b.Write(p) }

// TestCutDumpKeepsState: a dump whose stream the server abandons, or
// whose image the server rejects, never advances the agent's incremental
// state; a confirmed one does.
func TestCutDumpKeepsState(t *testing.T) {
	s := newSite(t, "")
	files := wire.Files{CA: s.cfg.TLS.CA, Cert: s.cfg.TLS.Cert, Key: s.cfg.TLS.Key}
	tlsCfg, err := wire.ClientConfig(files, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	r := &client.Remote{Host: "localhost", Addr: s.cfg.HostAddress("localhost"), TLS: tlsCfg, Timeout: 10 * time.Second}
	st := client.StateStore{Dir: filepath.Join(s.dir, "agent-state")}
	dumps := 0
	dump := func(level int, ds string, h client.DumpHandler) error {
		dumps++
		if h.Data == nil {
			h.Data = func([]byte) error { return nil }
		}
		h.Index = func(wire.IndexRecord) error { return nil }
		h.Frame = func(image.Frame) error { return nil }
		_, err := r.Dump(context.Background(), wire.Request{DLE: s.data, Level: level, Datestamp: ds, Compress: "zst"}, h)
		return err
	}
	levels := func() []int {
		// The agent changes its state after the connection ends: wait
		// until it has finished with every dump asked so far.
		s.agentDumps.wait(dumps)
		return st.Levels(s.data)
	}
	if err := dump(0, "20260101000000", client.DumpHandler{Safe: func(*wire.Done) error { return nil }}); err != nil {
		t.Fatal(err)
	}
	if l := levels(); len(l) != 1 || l[0] != 0 {
		t.Fatalf("after a confirmed full: state levels %v, want [0]", l)
	}
	n := 0
	err = dump(1, "20260102000000", client.DumpHandler{Data: func([]byte) error {
		if n++; n > 1 {
			return errors.New("server gave up")
		}
		return nil
	}})
	if err == nil {
		t.Fatal("cut dump reported success")
	}
	if err := dump(1, "20260102000001", client.DumpHandler{Safe: func(*wire.Done) error { return errors.New("holding disk full") }}); err == nil {
		t.Fatal("rejected dump reported success")
	}
	if l := levels(); len(l) != 1 || l[0] != 0 {
		t.Errorf("after a cut and a rejected level 1: state levels %v, want [0]", l)
	}
	pending, _ := filepath.Glob(filepath.Join(st.Dir, "*", "*.new-*"))
	if len(pending) != 0 {
		t.Errorf("pending states left behind: %v", pending)
	}
	if err := dump(1, "20260102000002", client.DumpHandler{Safe: func(*wire.Done) error { return nil }}); err != nil {
		t.Fatal(err)
	}
	if l := levels(); len(l) != 2 {
		t.Errorf("after a confirmed level 1: state levels %v, want [0 1]", l)
	}
}
