package wire

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestIndexRequestKeepsBytes: every name of a request, UTF-8 or not,
// arrives byte for byte through the strict decoder; a request of UTF-8
// names is encoded as before (no "raw").
func TestIndexRequestKeepsBytes(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	name := func() string {
		b := make([]byte, 1+r.IntN(6))
		for i := range b {
			b[i] = byte(1 + r.IntN(255))
		}
		return string(b)
	}
	for range 5000 {
		req := IndexRequest{Op: IdxFind, Host: name(), DLE: "/" + name(), Path: name(), Pattern: name(), Paths: []string{name(), "plain", name()}}
		b, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		var got IndexRequest
		if err := DecodeMsg(b, &got); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if got.Host != req.Host || got.DLE != req.DLE || got.Path != req.Path || got.Pattern != req.Pattern || strings.Join(got.Paths, "\x00") != strings.Join(req.Paths, "\x00") {
			t.Fatalf("sent %+v, got %+v (%s)", req, got, b)
		}
	}
	b, _ := json.Marshal(IndexRequest{Op: IdxLs, Host: "web1", DLE: "/srv", Path: "café"})
	if string(b) != `{"op":"ls","host":"web1","dle":"/srv","path":"café"}` {
		t.Errorf("a UTF-8 request is encoded as %s", b)
	}
	for _, bad := range []string{
		`{"op":"ls","path":"x","raw":{"path":"eA=="}}`,             // raw holds UTF-8
		`{"op":"ls","raw":{"path":"/w=="}}`,                        // raw for an absent field
		`{"op":"plan","paths":["a"],"raw":{"paths":{"3":"/w=="}}}`, // index out of range
		`{"op":"ls","raw":{"nope":"/w=="}}`,                        // unknown field
		`{"op":"ls","bogus":1}`,
	} {
		var got IndexRequest
		if err := DecodeMsg([]byte(bad), &got); err == nil {
			t.Errorf("%s was accepted: %+v", bad, got)
		}
	}
}

// FuzzIndexRequestJSON: whatever a shell sends, decoding an index request
// never panics, and a request that decodes encodes and decodes again to
// the same request, byte for byte.
func FuzzIndexRequestJSON(f *testing.F) {
	for _, s := range []string{`{"op":"ls","path":"x"}`, `{"op":"ls","path":"\ufffd","raw":{"path":"/w=="}}`,
		`{"op":"plan","paths":["a","\ufffd"],"raw":{"paths":{"1":"/w=="}}}`, `{"op":"find","pattern":"*","raw":null}`, `{"raw":{"paths":{"-1":""}}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var req IndexRequest
		if DecodeMsg(b, &req) != nil {
			return
		}
		enc, err := json.Marshal(req)
		if err != nil {
			t.Fatalf("%+v: %v", req, err)
		}
		var back IndexRequest
		if err := DecodeMsg(enc, &back); err != nil {
			t.Fatalf("%s does not decode: %v", enc, err)
		}
		if back.Host != req.Host || back.DLE != req.DLE || back.Path != req.Path || back.Pattern != req.Pattern || strings.Join(back.Paths, "\x00") != strings.Join(req.Paths, "\x00") {
			t.Fatalf("%+v came back as %+v", req, back)
		}
	})
}
