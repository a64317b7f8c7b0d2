package server

import (
	"bytes"
	"strings"
	"testing"

	"github.com/tapir-backup/tapir/image"
)

// The check runs behind Write (issue 15): a payload that is not zstd
// still fails the dump, at a later Write or at Finish, and more writes
// than the queue holds never block once the scan has failed.
func TestIngestBadStreamFailsBehindWrite(t *testing.T) {
	in := newIngest(image.CompZstd)
	junk := bytes.Repeat([]byte("not zstd "), 100<<10)
	var werr error
	for range 4 * ingestQueue {
		if _, werr = in.Write(junk); werr != nil {
			break
		}
	}
	ferr := in.Finish()
	if ferr == nil {
		t.Fatal("Finish accepted a payload that is not zstd")
	}
	if werr != nil && werr.Error() != ferr.Error() {
		t.Errorf("Write said %v, Finish %v", werr, ferr)
	}
	in.Abort() // after Finish: nothing happens
	if _, err := in.Write(junk); err == nil {
		t.Error("Write after Finish succeeded")
	}
}

// Record waits for the check to catch up with the payload written before
// it, so an index record that does not match an entry already sent is
// refused at once, whatever the scheduling.
func TestIngestRecordSeesEarlierEntries(t *testing.T) {
	payload, recs := ingestPayload(t)
	in := newIngest(image.CompZstd)
	defer in.Abort()
	if _, err := in.Write(payload); err != nil {
		t.Fatal(err)
	}
	bad := recs[0]
	bad.Path = "elsewhere"
	err := in.Record(bad)
	if err == nil || !strings.Contains(err.Error(), "does not match the agent's index") {
		t.Fatalf("Record of a wrong first record: %v", err)
	}
	if err := in.Finish(); err == nil {
		t.Error("Finish accepted the stream after a mismatch")
	}
}

// A good stream written in small pieces, the records after their
// entries, is accepted.
func TestIngestGoodStream(t *testing.T) {
	payload, recs := ingestPayload(t)
	in := newIngest(image.CompZstd)
	defer in.Abort()
	for off := 0; off < len(payload); off += 300 << 10 {
		if _, err := in.Write(payload[off:min(off+300<<10, len(payload))]); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range recs {
		if err := in.Record(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := in.Finish(); err != nil {
		t.Fatal(err)
	}
}
