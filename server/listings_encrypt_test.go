package server

import (
	"archive/tar"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/client"
	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/gnutar"
	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/image/crypt"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/report"
	"github.com/tapir-backup/tapir/wire"
)

// viewPaths lists every path of the view of path as of asOf.
func viewPaths(t *testing.T, cat *catalog.Catalog, path, asOf string) map[string]bool {
	t.Helper()
	v, err := cat.View(t.Context(), "localhost", path, asOf)
	if err != nil {
		t.Fatalf("view as of %s: %v", asOf, err)
	}
	got := map[string]bool{}
	if err := v.Walk(t.Context(), "", func(r catalog.ViewRecord) error { got[r.Path] = true; return nil }); err != nil {
		t.Fatal(err)
	}
	return got
}

// goodDump returns the good dump of path at level.
func goodDump(t *testing.T, cat *catalog.Catalog, path string, level int) catalog.Dump {
	t.Helper()
	dumps, err := cat.Dumps(t.Context(), "localhost", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dumps {
		if d.Level == level && d.Status == catalog.DumpGood {
			return d
		}
	}
	t.Fatalf("no good level %d dump of %s: %+v", level, path, dumps)
	return catalog.Dump{}
}

// An encrypted incremental's directory listings reach the catalog, from
// the agent (client-side encryption) or from the server's scan of the
// plaintext (server-side), through the holding disk or straight to a
// volume: a view as of the L1 date drops the file and the directory
// deleted and the file renamed since the L0, and shows the new ones.
func TestEncryptedIncrementalListed(t *testing.T) {
	for _, tc := range []struct{ mode, holding string }{
		{config.EncryptClient, "auto"},
		{config.EncryptServer, "auto"},
		{config.EncryptClient, "never"},
		{config.EncryptServer, "never"},
	} {
		t.Run(tc.mode+"/holding="+tc.holding, func(t *testing.T) {
			s := newSite(t, "")
			k := newTestKey(t, filepath.Join(t.TempDir(), "keys"))
			dt := s.cfg.Dumptypes["default"]
			dt.Holding = tc.holding
			s.cfg.Dumptypes["default"] = dt
			s.encryptDumptype("default", tc.mode, k)
			s.cfg.DLEs = s.cfg.DLEs[:1]
			s.cfg.Bumpdays, s.cfg.Bumpsize, s.cfg.Bumppercent = 1, 1, 0
			night := func(want int) *report.Run {
				t.Helper()
				rep, out, err := s.night(t, Deps{})
				if err != nil {
					t.Fatalf("night: %v\n%s", err, out)
				}
				if d := rep.DLEs[0]; d.Level != want || d.Status != "OK" {
					t.Fatalf("night dumped level %d (%s %s), want level %d OK\n%s", d.Level, d.Status, d.Reason, want, out)
				}
				return rep
			}
			night(0)
			os.Remove(filepath.Join(s.data, "empty.txt"))
			os.Remove(filepath.Join(s.data, "emptydir"))
			os.Rename(filepath.Join(s.data, "bin/run.sh"), filepath.Join(s.data, "bin/run2.sh"))
			os.MkdirAll(filepath.Join(s.data, "added"), 0o755)
			os.WriteFile(filepath.Join(s.data, "added/new.txt"), []byte("new"), 0o644)
			rep := night(1)
			if w := rep.DLEs[0].Warnings; len(w) != 0 {
				t.Errorf("warnings: %q", w)
			}
			cat := s.catalog(t)
			l0, l1 := goodDump(t, cat, s.data, 0), goodDump(t, cat, s.data, 1)
			if !l1.Listed || !l1.Encrypted() {
				t.Fatalf("the encrypted level 1 dump: listed %v, encryption %q", l1.Listed, l1.Encryption)
			}
			got := viewPaths(t, cat, s.data, l1.Datestamp)
			for _, p := range []string{"empty.txt", "emptydir", "bin/run.sh"} {
				if got[p] {
					t.Errorf("the view as of the level 1 shows %s, deleted or renamed before it", p)
				}
			}
			for _, p := range []string{"bin/run2.sh", "added", "added/new.txt", "etc/passwd", "sub/deep/a/b/c/file with spaces.txt"} {
				if !got[p] {
					t.Errorf("the view as of the level 1 lacks %s", p)
				}
			}
			if old := viewPaths(t, cat, s.data, l0.Datestamp); !old["empty.txt"] || !old["bin/run.sh"] || old["bin/run2.sh"] {
				t.Errorf("the view as of the level 0 is not the tree of the level 0: %v", old)
			}
		})
	}
}

// listingAgent speaks the agent protocol with the client's certificate,
// encrypts as asked, and answers a level > 0 dump that asks for listings
// with the listings its mode says.
type listingAgent struct {
	features []string
	// mode: "dotdot" sends a directory "../x"; "undecodable" a dumpdir
	// without its terminating NUL; "big" more listing bytes than the
	// server keeps; "many" more directories than it keeps; "noroot" no listing of the root; "old" refuses the
	// listings field as an agent from before it does; "good" sends the
	// right listings.
	mode  string
	asked []bool // per dump request: whether it asked for listings
}

func (l *listingAgent) serve(t *testing.T, s *site) string {
	t.Helper()
	return serveFakeAgent(t, s, l.handle, true)
}

func (l *listingAgent) handle(tc *tls.Conn) {
	defer tc.Close()
	c := wire.NewConn(tc)
	var req wire.Request
	if err := c.ReadMsg(&req); err != nil {
		return
	}
	switch req.Op {
	case wire.OpEstimate:
		var est []wire.Estimate
		for _, lv := range req.Levels {
			b := int64(64 << 10)
			if lv > 0 {
				b = 1 << 10 // an incremental the planner takes
			}
			est = append(est, wire.Estimate{Level: lv, Bytes: b, Files: 2})
		}
		c.WriteMsg(wire.Reply{OK: true, Estimates: est})
		return
	case wire.OpDump:
	default:
		c.WriteMsg(wire.Reply{OK: true, Version: "listing-liar", Features: l.features})
		return
	}
	if l.mode == "old" && req.Listings {
		c.WriteMsg(wire.Reply{Error: `bad request: json: unknown field "listings"`})
		return
	}
	l.asked = append(l.asked, req.Listings)
	c.WriteMsg(wire.Reply{OK: true, Version: "listing-liar", Features: l.features})
	root := gnutar.EncodeDumpdir([]gnutar.DirEntry{{Kind: gnutar.KindInArchive, Name: "a"}})
	var plain bytes.Buffer
	pw, _ := image.NewPayloadWriter(&plain, image.WriterOptions{Comp: image.Comp(req.Compress), FrameSize: req.FrameSize})
	tw := tar.NewWriter(pw)
	mt := time.Unix(1700000000, 0)
	tw.WriteHeader(&tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mt, Format: tar.FormatPAX, PAXRecords: map[string]string{gnutar.PAXDumpdir: root}})
	tw.WriteHeader(&tar.Header{Name: "./a", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1, ModTime: mt, Format: tar.FormatPAX})
	tw.Write([]byte("a"))
	tw.Close()
	pw.Close()
	sum := pw.Sum()
	var ct bytes.Buffer
	enc, err := crypt.NewWriter(&ct, req.Recipients)
	if err != nil {
		c.WriteMsg(wire.Done{Error: err.Error()})
		return
	}
	enc.Write(plain.Bytes())
	enc.Close()
	(wire.DataWriter{C: c, Chunk: 1 << 20}).Write(ct.Bytes())
	c.WriteFrame(wire.FrameIndex, wire.AppendIndex(nil, wire.IndexRecord{Path: "a", Type: tar.TypeReg, Size: 1, Mode: 0o644, Mtime: mt, TarOffset: 1024}), false)
	if req.Listings || l.mode == "unasked" {
		var lb []byte
		switch l.mode {
		case "dotdot":
			lb = wire.AppendListing(wire.AppendListing(nil, "", root), "../x", root)
		case "undecodable":
			lb = wire.AppendListing(nil, "", "Ya") // no terminating NUL
		case "big":
			big := gnutar.EncodeDumpdir([]gnutar.DirEntry{{Kind: gnutar.KindInArchive, Name: strings.Repeat("n", 400)}})
			for i := range 4 {
				lb = wire.AppendListing(lb, fmt.Sprintf("d%d", i), big)
			}
			lb = wire.AppendListing(lb, "", root)
		case "many":
			for i := range 20 {
				lb = wire.AppendListing(lb, fmt.Sprint(i), root)
			}
		case "noroot":
			lb = wire.AppendListing(nil, "a", root)
		default:
			lb = wire.AppendListing(nil, "", root)
		}
		c.WriteFrame(wire.FrameListing, lb, false)
	}
	var fb []byte
	for _, f := range sum.Frames {
		fb = wire.AppendFrameInfo(fb, f)
	}
	c.WriteFrame(wire.FrameFrame, fb, false)
	c.WriteMsg(wire.Done{OrigSize: sum.OriginalSize, PayloadSize: enc.Size(), SHA256: enc.SHA256(), Files: 1, Frames: int64(len(sum.Frames))})
	c.Flush()
	var cf wire.Confirm
	c.ReadMsg(&cf)
}

// An agent whose listings are hostile or over the bounds, or that cannot
// send them, costs the incremental its listings, never the image: the
// level 1 is good and unlisted, the report warns once naming why, and
// nothing panics. The listings of an agent whose reply lacks the
// listings feature are not listened to.
func TestEncryptedListingsRefused(t *testing.T) {
	var noListings []string
	for _, f := range client.Features {
		if f != client.FeatureListings {
			noListings = append(noListings, f)
		}
	}
	for _, tc := range []struct {
		name  string
		agent *listingAgent
		want  []string // in the warning; nil: listed, no warning
		asked bool     // whether the level 1 request asked for listings
	}{
		{"good", &listingAgent{features: client.Features, mode: "good"}, nil, true},
		{"dotdot", &listingAgent{features: client.Features, mode: "dotdot"}, []string{"refused", `"../x"`, "leaves the DLE", "may show deleted files"}, true},
		{"undecodable dumpdir", &listingAgent{features: client.Features, mode: "undecodable"}, []string{"refused", "does not decode"}, true},
		{"too many bytes", &listingAgent{features: client.Features, mode: "big"}, []string{"refused", "exceed the 1024 bytes of listings"}, true},
		{"too many directories", &listingAgent{features: client.Features, mode: "many"}, []string{"refused", "more than the 16 directories"}, true},
		{"no root", &listingAgent{features: client.Features, mode: "noroot"}, []string{"refused", "no listing of the DLE root"}, true},
		{"agent without the feature", &listingAgent{features: noListings, mode: "unasked"}, []string{"does not send directory listings", "listing-liar", "upgrade the agent on localhost"}, true},
		{"agent from before listings", &listingAgent{features: noListings, mode: "old"}, []string{"does not send directory listings", "an older version", "upgrade the agent on localhost"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			oldBytes, oldDirs := maxListingBytes, maxListingDirs
			maxListingBytes, maxListingDirs = 1024, 16
			t.Cleanup(func() { maxListingBytes, maxListingDirs = oldBytes, oldDirs })
			s := newSite(t, "")
			k := newTestKey(t, filepath.Join(t.TempDir(), "keys"))
			s.encryptDumptype("default", config.EncryptClient, k)
			s.cfg.Hosts["localhost"] = config.Host{Address: tc.agent.serve(t, s)}
			s.cfg.DLEs = s.cfg.DLEs[:1]
			s.cfg.Bumpdays, s.cfg.Bumpsize, s.cfg.Bumppercent = 1, 1, 0
			for level := range 2 {
				rep, out, err := s.night(t, Deps{})
				if err != nil || rep.DLEs[0].Status != "OK" || rep.DLEs[0].Level != level {
					t.Fatalf("night %d: %v %+v\n%s", level, err, rep.DLEs, out)
				}
				w := rep.DLEs[0].Warnings
				if level == 0 || tc.want == nil {
					if len(w) != 0 {
						t.Errorf("level %d warnings: %q", level, w)
					}
					continue
				}
				if len(w) != 1 {
					t.Fatalf("level 1 warnings %q, want one", w)
				}
				for _, s := range append(tc.want, "localhost") {
					if !strings.Contains(w[0], s) {
						t.Errorf("warning %q does not say %q", w[0], s)
					}
				}
				if !strings.Contains(out, w[0]) {
					t.Errorf("the report text lacks the warning:\n%s", out)
				}
			}
			if !slices.Equal(tc.agent.asked, []bool{false, tc.asked}) {
				t.Errorf("the dump requests asked for listings %v, want [false %v]", tc.agent.asked, tc.asked)
			}
			cat := s.catalog(t)
			l1 := goodDump(t, cat, s.data, 1)
			if l1.Listed != (tc.want == nil) {
				t.Errorf("level 1 listed %v, want %v", l1.Listed, tc.want == nil)
			}
			_, err := cat.View(t.Context(), "localhost", s.data, l1.Datestamp)
			if tc.want == nil && err != nil {
				t.Errorf("view: %v", err)
			}
			if tc.want != nil && !errors.Is(err, catalog.ErrNoListings) {
				t.Errorf("view of an unlisted chain: %v, want ErrNoListings", err)
			}
		})
	}
}

// The set of listings keeps clean, decodable ones within the bounds and
// drops them all at the first that is not, naming it (cut); a name from
// the agent is quoted, so it cannot fake a line of the report.
func TestListingSetBounds(t *testing.T) {
	ok := gnutar.EncodeDumpdir([]gnutar.DirEntry{{Kind: gnutar.KindInArchive, Name: "a"}})
	l := newListingSet()
	l.add("", ok)
	l.add("a/b", ok)
	l.add("a/b", ok) // a repeat replaces, and counts its bytes again
	if l.dropped != "" || len(l.m) != 2 || l.bytes != int64(3*len(ok)+3) {
		t.Fatalf("after good listings: dropped %q, %d kept, %d bytes", l.dropped, len(l.m), l.bytes)
	}
	for _, tc := range []struct{ dir, dumpdir, want string }{
		{"/etc", ok, "is absolute"},
		{"a/../../x", ok, "not a clean relative name"},
		{"a//b", ok, "not a clean relative name"},
		{"/x\nFAILED", ok, `"/x\nFAILED"`},
		{strings.Repeat("d", 5000), "Y", "(5000 bytes)"},
		{"d", "Ya", "does not decode"},
		{"d", "", "does not decode"},
	} {
		l := newListingSet()
		l.add("", ok)
		l.add(tc.dir, tc.dumpdir)
		l.add("e", ok)
		if !strings.Contains(l.dropped, tc.want) || l.m != nil || len(l.dropped) > 400 || strings.Contains(l.dropped, "\n") {
			t.Errorf("%.20q %q: dropped %q (kept %d), want it to say %q", tc.dir, tc.dumpdir, l.dropped, len(l.m), tc.want)
		}
	}
}

// Server-side: the ingest scan collects the listings of the plaintext;
// a dumpdir that does not decode drops them without refusing the image.
func TestIngestCollectsListings(t *testing.T) {
	ok := gnutar.EncodeDumpdir([]gnutar.DirEntry{{Kind: gnutar.KindDirectory, Name: "d"}})
	for _, tc := range []struct {
		name, sub string
		want      string // in dropped; "" kept
	}{{"good", gnutar.EncodeDumpdir(nil), ""}, {"undecodable", "Yx", "does not decode"}} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			tw := tar.NewWriter(&b)
			mt := time.Unix(1700000000, 0)
			tw.WriteHeader(&tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mt, Format: tar.FormatPAX, PAXRecords: map[string]string{gnutar.PAXDumpdir: ok}})
			tw.WriteHeader(&tar.Header{Name: "./d/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mt, Format: tar.FormatPAX, PAXRecords: map[string]string{gnutar.PAXDumpdir: tc.sub}})
			tw.Close()
			in := newIngest(image.CompNone)
			defer in.Abort()
			in.listings = newListingSet()
			if _, err := in.Write(b.Bytes()); err != nil {
				t.Fatal(err)
			}
			if err := in.Record(wire.IndexRecord{Path: "d", Type: tar.TypeDir, Mode: 0o755, Mtime: mt, TarOffset: 1536}); err != nil {
				t.Fatal(err)
			}
			if err := in.Finish(); err != nil {
				t.Fatalf("the image is refused: %v", err)
			}
			l := in.listings
			if tc.want == "" {
				if l.dropped != "" || l.m[""] != ok || l.m["d"] != tc.sub || len(l.m) != 2 {
					t.Errorf("listings %q, dropped %q", l.m, l.dropped)
				}
			} else if !strings.Contains(l.dropped, tc.want) || !strings.Contains(l.dropped, `"d"`) {
				t.Errorf("dropped %q, want it to say %q of \"d\"", l.dropped, tc.want)
			}
		})
	}
}
