package wire

import (
	"bytes"
	"testing"
)

// FuzzReadRequest: whatever bytes arrive on the agent port, reading a
// request either yields a Request or an error; never a panic, never an
// allocation beyond MaxFrame.
func FuzzReadRequest(f *testing.F) {
	var good bytes.Buffer
	c := NewConn(&good)
	c.WriteMsg(Request{Op: OpDump, DLE: "/etc", Level: 1, Levels: []int{0, 1, 2}, Datestamp: "20260101000000", Exclude: []string{"*.o"}})
	f.Add(good.Bytes())
	var resume bytes.Buffer
	NewConn(&resume).WriteMsg(Request{Op: OpDump, DLE: "/etc", Datestamp: "20260101000000", Token: "0123456789abcdef0123456789abcdef",
		Resume: &Resume{Frames: 3, PayloadOffset: 1 << 20, Index: 10, Listings: 2}})
	f.Add(resume.Bytes())
	var encResume bytes.Buffer
	NewConn(&encResume).WriteMsg(Request{Op: OpDump, DLE: "/etc", Datestamp: "20260101000000", Token: "0123456789abcdef0123456789abcdef", Encrypt: "age",
		Resume: &Resume{Frames: 3, PayloadOffset: 3 << 20, CipherOffset: 3<<20 - 40000, Index: 10}})
	f.Add(encResume.Bytes())
	var resumed bytes.Buffer
	NewConn(&resumed).WriteMsg(Reply{OK: true, Resumed: &Resumed{Frames: 3, TarOffset: 3 << 20, PayloadOffset: 1 << 20}})
	f.Add(resumed.Bytes())
	f.Add([]byte("M\x00\x00\x00\x1e{\"resume\":{\"frames\":-1e9999}}"))
	f.Add([]byte("M\x00\x00\x00\x02{}"))
	f.Add([]byte("M\x00\x00\x00\x0b{\"op\":null}"))
	f.Add([]byte("M\xff\xff\xff\xff"))
	f.Add([]byte("D\x00\x00\x00\x01x"))
	f.Add([]byte(`M` + "\x00\x00\x00\x10" + `{"level":1e999}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c := NewConn(bytes.NewBuffer(b))
		var req Request
		c.ReadMsg(&req)
		var cf Confirm
		NewConn(bytes.NewBuffer(b)).ReadMsg(&cf)
		var d Done
		NewConn(bytes.NewBuffer(b)).ReadMsg(&d)
		var rep Reply
		NewConn(bytes.NewBuffer(b)).ReadMsg(&rep)
	})
}
