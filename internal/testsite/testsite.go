package testsite

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapir-backup/tapir/client"
	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/index/indexd"
	"github.com/tapir-backup/tapir/index/tarscan"
	"github.com/tapir-backup/tapir/taper"
	"github.com/tapir-backup/tapir/wire"
)

// Site is an installation under Dir.
type Site struct {
	Dir       string
	TLSDir    string // ca.crt, server.crt/key (role server, for "localhost"), and what Issue made
	Vtapes    string // disk changer root: slot1..slotN
	Holding   string
	StateDir  string // the client's incremental state
	CatalogDB string
	Slots     int
	Capacity  int64
	Blocksize int64
	Org       string

	Catalog *catalog.Catalog
	Changer *taper.DiskChanger
	CA      *wire.CA
}

// Options size a site; zero values get defaults.
type Options struct {
	Slots     int   // default 8
	Capacity  int64 // bytes per vtape, default 4 GiB
	Blocksize int64 // default 64 KiB
	// Server opens the catalog for this tapir server (catalog.SetServer):
	// its runs, dumps and volumes are recorded as its own. Catalog is
	// another site's catalog to share (its CatalogDB), "" for its own.
	Server, Catalog string
}

// New creates the site: directories, CA and a server certificate for
// "localhost", the changer and the catalog.
func New(dir string, o Options) (*Site, error) {
	s := &Site{Dir: dir, TLSDir: filepath.Join(dir, "tls"), Vtapes: filepath.Join(dir, "vtapes"),
		Holding: filepath.Join(dir, "holding"), StateDir: filepath.Join(dir, "client-state"),
		CatalogDB: filepath.Join(dir, "state", "catalog.db"), Slots: o.Slots, Capacity: o.Capacity,
		Blocksize: o.Blocksize, Org: "test"}
	if s.Slots == 0 {
		s.Slots = 8
	}
	if s.Capacity == 0 {
		s.Capacity = 4 << 30
	}
	if s.Blocksize == 0 {
		s.Blocksize = 64 << 10
	}
	var err error
	now := time.Now()
	if s.CA, err = wire.InitCA(s.TLSDir, s.Org, now); err != nil {
		return nil, err
	}
	if _, _, err := s.CA.Issue("localhost", []string{wire.RoleServer}, s.TLSDir, now); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(s.Vtapes, 0o750); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(s.Holding, 0o750); err != nil {
		return nil, err
	}
	if s.Changer, err = taper.NewDiskChanger(s.Vtapes, s.Slots, s.Capacity, s.Blocksize, nil); err != nil {
		return nil, err
	}
	if o.Catalog != "" {
		s.CatalogDB = o.Catalog
	}
	if s.Catalog, err = catalog.Open(s.CatalogDB); err != nil {
		return nil, err
	}
	if o.Server != "" {
		if err := s.Catalog.SetServer(o.Server); err != nil {
			s.Catalog.Close()
			return nil, err
		}
	}
	return s, nil
}

// WriteConfig writes a tapir configuration of the site at path, for the
// tapir commands that read a site (recover -c, verify): its catalog, its
// vtapes as the disk changer (slots, capacity and blocksize as made), its
// holding disk and the DLEs given (their Host and Path).
func (s *Site) WriteConfig(path string, dles ...DLE) error {
	var b strings.Builder
	fmt.Fprintf(&b, "org = %q\nstatedir = %q\ncatalog = %q\n\n", s.Org, filepath.Dir(s.CatalogDB), s.CatalogDB)
	fmt.Fprintf(&b, "[changer]\ntype = \"disk\"\npath = %q\nslots = %d\ntapetype = \"site\"\n\n", s.Vtapes, s.Slots)
	fmt.Fprintf(&b, "[tapetype.site]\nlength = \"%d\"\nblocksize = \"%d\"\n\n", s.Capacity, s.Blocksize)
	fmt.Fprintf(&b, "[[holding]]\npath = %q\n", s.Holding)
	for _, d := range dles {
		fmt.Fprintf(&b, "\n[[dle]]\nhost = %q\npath = %q\n", d.Host, d.Path)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// Close closes the catalog.
func (s *Site) Close() error { return s.Catalog.Close() }

// Issue makes a certificate for host with roles in TLSDir.
func (s *Site) Issue(host string, roles ...string) (wire.Files, error) {
	crt, key, err := s.CA.Issue(host, roles, s.TLSDir, time.Now())
	return wire.Files{CA: filepath.Join(s.TLSDir, wire.CACertFile), Cert: crt, Key: key}, err
}

// ServerFiles are the index server's certificate files.
func (s *Site) ServerFiles() wire.Files {
	return wire.Files{CA: filepath.Join(s.TLSDir, wire.CACertFile), Cert: filepath.Join(s.TLSDir, "localhost.crt"), Key: filepath.Join(s.TLSDir, "localhost.key")}
}

// DLE is one DLE dumped by a run: Host and Path name it in the catalog and
// the image header; Root is the directory dumped.
type DLE struct {
	Host, Path, Root string
	Level            int
	Comp             image.Comp // default zstd
	FrameSize        int        // default 64 KiB
	// Tar, when set, is the image's tar stream, stored as it is in place
	// of dumping Root: what a hostile or broken client could send. Its
	// entries are indexed as the server would index them (tarscan); those
	// the catalog refuses stay out of the catalog.
	Tar []byte
	// Command, when set, is a command DLE's output, stored as its
	// payload (payload "command": no index, level 0).
	Command []byte
}

// RunOptions change how a run is recorded.
type RunOptions struct {
	// Listings records each image's directory listings in the catalog (as
	// a server that scans its images does); false leaves them for the index
	// server to read from the image when a view needs them.
	Listings bool
	// HoldingOnly leaves the images on the holding disk (a run without a
	// usable volume): status holding, nothing on a vtape.
	HoldingOnly bool
	// SplitAt > 0 writes the payload of the run's last DLE as two parts:
	// its first SplitAt bytes end the volume, the rest starts the next one
	// (as the taper does at early warning), so that a frame straddles two
	// volumes.
	SplitAt int64
}

// NextVolume labels the vtape of the first slot after every volume of
// the catalog (TEST-00N, N the slot) for a run and records it in the
// catalog. Run and Tape use it; so may other scaffolding that writes
// images onto the site.
func (s *Site) NextVolume(ctx context.Context, datestamp string, start time.Time) (taper.Device, string, error) {
	vols, err := s.Catalog.Volumes(ctx)
	if err != nil {
		return nil, "", err
	}
	slot := 1
	for _, v := range vols {
		slot = max(slot, v.Slot+1)
	}
	if slot > s.Slots {
		return nil, "", fmt.Errorf("testsite: all %d slots are used", s.Slots)
	}
	label := fmt.Sprintf("TEST-%03d", slot)
	dev, err := s.Changer.Load(ctx, slot)
	if err != nil {
		return nil, "", err
	}
	if _, err := s.Catalog.AddVolume(ctx, catalog.Volume{Label: label, Slot: slot, Blocksize: s.Blocksize, Created: start}); err != nil {
		return nil, "", err
	}
	if _, err := s.Catalog.StartVolumeWrite(ctx, label, slot, s.Blocksize, datestamp); err != nil {
		return nil, "", err
	}
	if err := taper.WriteLabel(dev, taper.Label{Datestamp: datestamp, Label: label, Org: s.Org, Blocksize: s.Blocksize, Created: start}); err != nil {
		return nil, "", err
	}
	return dev, label, nil
}

// Run dumps the DLEs as one run named datestamp onto the next empty slot
// (labelled TEST-00N, N the slot) and records it all in the catalog.
// It returns the dump ids.
func (s *Site) Run(ctx context.Context, datestamp string, dles []DLE, o RunOptions) ([]int64, error) {
	start, err := time.Parse("20060102150405", datestamp)
	if err != nil {
		return nil, err
	}
	cat := s.Catalog
	runID, err := cat.BeginRun(ctx, datestamp, s.Org, start)
	if err != nil {
		return nil, err
	}
	var dev taper.Device
	var label string
	if !o.HoldingOnly {
		if dev, label, err = s.NextVolume(ctx, datestamp, start); err != nil {
			return nil, err
		}
		defer s.Changer.Eject(context.WithoutCancel(ctx))
	}
	var ids []int64
	for _, d := range dles {
		id, err := s.dumpOne(ctx, runID, datestamp, d, dev, label, o)
		if err != nil {
			cat.FinishRun(ctx, runID, catalog.RunFailed, start.Add(time.Minute), err.Error())
			return ids, fmt.Errorf("testsite: %s:%s level %d: %w", d.Host, d.Path, d.Level, err)
		}
		ids = append(ids, id)
	}
	status := catalog.RunOK
	if o.HoldingOnly {
		status = catalog.RunDegraded
	}
	return ids, cat.FinishRun(ctx, runID, status, start.Add(time.Minute), "")
}

func (s *Site) dumpOne(ctx context.Context, runID int64, datestamp string, d DLE, dev taper.Device, label string, o RunOptions) (int64, error) {
	cat := s.Catalog
	if d.Comp == "" {
		d.Comp = image.CompZstd
	}
	if d.FrameSize == 0 {
		d.FrameSize = 64 << 10
	}
	start, _ := time.Parse("20060102150405", datestamp)
	hdr := &image.Header{Datestamp: datestamp, Host: d.Host, Path: d.Path, Level: d.Level, Part: 1, Parts: 1,
		Comp: d.Comp, FrameSize: int64(d.FrameSize), Encryption: "none"}
	payload := catalog.PayloadTar
	if d.Command != nil {
		hdr.Payload, payload = image.PayloadCommand, catalog.PayloadCommand
	}
	id, err := cat.CreateDump(ctx, &catalog.Dump{RunID: runID, Host: d.Host, Path: d.Path, Level: d.Level, Datestamp: datestamp,
		Comp: string(d.Comp), FrameSize: int64(d.FrameSize), Started: start, Payload: payload})
	if err != nil {
		return 0, err
	}
	fw, err := cat.NewFileWriter(ctx, id, int64(d.FrameSize))
	if err != nil {
		return 0, err
	}
	rundir := filepath.Join(s.Holding, datestamp)
	if err := os.MkdirAll(rundir, 0o750); err != nil {
		return 0, err
	}
	hpath := filepath.Join(rundir, hdr.Name())
	hf, err := os.Create(hpath)
	if err != nil {
		return 0, err
	}
	defer hf.Close()
	if _, err := hf.Write(make([]byte, image.HeaderSize)); err != nil {
		return 0, err
	}
	store := &client.StateStore{Dir: s.StateDir}
	var sum image.Summary
	var nfiles int64
	switch {
	case d.Command != nil:
		sum, err = storeCommand(d, hf)
	case d.Tar != nil:
		sum, nfiles, err = storeTar(ctx, d, hf, fw)
	default:
		var res client.Result
		res, err = client.Dump(ctx, d.Root, client.DumpOptions{Level: d.Level, Comp: d.Comp, CompressLevel: 1,
			FrameSize: d.FrameSize, OneFilesystem: true, Datestamp: datestamp, State: store},
			client.Sink{Payload: hf, Index: func(r wire.IndexRecord) error {
				return fw.Add(ctx, catalog.FileRecord{Path: r.Path, Type: r.Type, Size: r.Size, Mode: r.Mode, Mtime: r.Mtime,
					UID: r.UID, GID: r.GID, Link: r.Link, TarOffset: r.TarOffset})
			}})
		if err == nil {
			sum, nfiles = res.Summary, res.Files
		}
	}
	if err != nil {
		fw.Abort()
		return 0, err
	}
	if err := fw.Commit(ctx); err != nil {
		return 0, err
	}
	hdr.OriginalSize, hdr.PayloadSize, hdr.SHA256, hdr.Files, hdr.Frames = sum.OriginalSize, sum.PayloadSize, sum.SHA256, nfiles, int64(len(sum.Frames))
	hb, err := hdr.Marshal()
	if err != nil {
		return 0, err
	}
	if _, err := hf.WriteAt(hb, 0); err != nil {
		return 0, err
	}
	if err := cat.SetDumpHolding(ctx, id, sum.OriginalSize, sum.PayloadSize, sum.SHA256, nfiles, hpath, sum.Frames, start.Add(time.Second)); err != nil {
		return 0, err
	}
	if o.Listings {
		if err := tarscan.RecordListings(ctx, cat, id, hpath, []string{s.Holding}); err != nil {
			return 0, err
		}
	}
	if d.Tar == nil && d.Command == nil {
		if err := store.Promote(d.Root, d.Level, datestamp); err != nil {
			return 0, err
		}
	}
	if o.HoldingOnly {
		return id, nil
	}
	// Tape it as the taper does: a header record, then the payload in
	// records of the blocksize, then a filemark, for each part.
	lengths := []int64{sum.PayloadSize}
	if o.SplitAt > 0 && o.SplitAt < sum.PayloadSize {
		lengths = []int64{o.SplitAt, sum.PayloadSize - o.SplitAt}
	}
	var parts []catalog.Part
	var off int64
	h := sha256.New()
	for i, n := range lengths {
		if i > 0 {
			if dev, label, err = s.NextVolume(ctx, datestamp, start); err != nil {
				return 0, err
			}
		}
		p, err := s.WritePart(dev, label, *hdr, i+1, hf, off, n, h)
		if err != nil {
			return 0, err
		}
		p.DumpID = id
		parts = append(parts, p)
		off += n
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum.SHA256 {
		return 0, fmt.Errorf("holding file %s changed while taped", hpath)
	}
	if err := cat.CommitTaped(ctx, id, parts, start.Add(2*time.Second)); err != nil {
		return 0, err
	}
	hf.Close()
	return id, os.Remove(hpath)
}

// Tape writes images left on the holding disk (by HoldingOnly runs) onto
// the next empty volume, in the order given, one part each, as a flush
// named datestamp would, and records them as taped (their holding files
// are removed). A test chooses which images share a volume and in what
// order they lie on it. It returns the volume's label.
func (s *Site) Tape(ctx context.Context, datestamp string, ids []int64) (string, error) {
	start, err := time.Parse("20060102150405", datestamp)
	if err != nil {
		return "", err
	}
	dev, label, err := s.NextVolume(ctx, datestamp, start)
	if err != nil {
		return "", err
	}
	defer s.Changer.Eject(context.WithoutCancel(ctx))
	for _, id := range ids {
		if err := s.tapeOne(ctx, dev, label, id, start); err != nil {
			return "", fmt.Errorf("testsite: tape dump %d onto %s: %w", id, label, err)
		}
	}
	return label, nil
}

func (s *Site) tapeOne(ctx context.Context, dev taper.Device, label string, id int64, start time.Time) error {
	d, err := s.Catalog.Dump(ctx, id)
	if err != nil {
		return err
	}
	if d.HoldingPath == "" {
		return fmt.Errorf("dump %d has no holding file (taped already?)", id)
	}
	hf, err := os.Open(d.HoldingPath)
	if err != nil {
		return err
	}
	defer hf.Close()
	hdr, err := image.ReadHeader(hf)
	if err != nil {
		return err
	}
	h := sha256.New()
	p, err := s.WritePart(dev, label, *hdr, 1, hf, 0, d.PayloadSize, h)
	if err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != d.SHA256 {
		return fmt.Errorf("holding file %s has SHA-256 %s, the catalog says %s", d.HoldingPath, got, d.SHA256)
	}
	p.DumpID = id
	if err := s.Catalog.CommitTaped(ctx, id, []catalog.Part{p}, start.Add(2*time.Second)); err != nil {
		return err
	}
	hf.Close()
	return os.Remove(d.HoldingPath)
}

// storeTar writes d.Tar as a framed payload to w and indexes its
// entries (the DLE root excepted) with fw.
// storeCommand frames and compresses a command DLE's output, as the
// agent does.
func storeCommand(d DLE, w io.Writer) (image.Summary, error) {
	pw, err := image.NewPayloadWriter(w, image.WriterOptions{Comp: d.Comp, Level: 1, FrameSize: d.FrameSize})
	if err != nil {
		return image.Summary{}, err
	}
	if _, err := pw.Write(d.Command); err != nil {
		pw.Close()
		return image.Summary{}, err
	}
	if err := pw.Close(); err != nil {
		return image.Summary{}, err
	}
	return pw.Sum(), nil
}

func storeTar(ctx context.Context, d DLE, w io.Writer, fw *catalog.FileWriter) (image.Summary, int64, error) {
	pw, err := image.NewPayloadWriter(w, image.WriterOptions{Comp: d.Comp, FrameSize: d.FrameSize, Concurrency: 1})
	if err != nil {
		return image.Summary{}, 0, err
	}
	if _, err := pw.Write(d.Tar); err != nil {
		pw.Close()
		return image.Summary{}, 0, err
	}
	if err := pw.Close(); err != nil {
		return image.Summary{}, 0, err
	}
	var n int64
	_, err = tarscan.Scan(bytes.NewReader(d.Tar), func(e tarscan.Entry) error {
		if e.Path == "" {
			return nil
		}
		// An entry the catalog refuses (an absolute name, say) stays in
		// the tar stream but out of the index; a real failure shows at
		// Commit.
		if fw.Add(ctx, e.FileRecord) == nil {
			n++
		}
		return nil
	})
	return pw.Sum(), n, err
}

// WritePart writes payload bytes [off, off+n) of the holding file hf as
// part number part (of an unknown number, as the taper writes them) on
// dev, the payload bytes also into h.
func (s *Site) WritePart(dev taper.Device, label string, hdr image.Header, part int, hf *os.File, off, n int64, h io.Writer) (catalog.Part, error) {
	if dev.Properties().NamesFiles {
		if err := dev.BeginFile(hdr.Name()); err != nil {
			return catalog.Part{}, err
		}
	}
	pos, err := dev.Tell()
	if err != nil {
		return catalog.Part{}, err
	}
	hdr.Part, hdr.Parts, hdr.Blocksize = part, image.Unknown, s.Blocksize
	hb, err := hdr.Marshal()
	if err != nil {
		return catalog.Part{}, err
	}
	if err := dev.WriteRecord(hb); err != nil {
		return catalog.Part{}, err
	}
	r := io.NewSectionReader(hf, image.HeaderSize+off, n)
	buf := make([]byte, s.Blocksize)
	for {
		k, rerr := io.ReadFull(r, buf)
		if k > 0 {
			h.Write(buf[:k])
			if err := dev.WriteRecord(buf[:k]); err != nil && !errors.Is(err, taper.ErrEarlyWarning) {
				return catalog.Part{}, err
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return catalog.Part{}, rerr
		}
	}
	if err := dev.WriteFilemark(); err != nil {
		return catalog.Part{}, err
	}
	return catalog.Part{Volume: label, Part: part, FileNo: pos.File, Record: pos.Record, LogicalPos: pos.Logical, Offset: off, Length: n}, nil
}

// StartServer runs an index server for the site on 127.0.0.1 (an
// ephemeral port) until ctx is done, and returns its address (for a
// client: "localhost:PORT", the name in the server certificate).
func (s *Site) StartServer(ctx context.Context, log *slog.Logger) (string, func(), error) {
	tlsCfg, err := wire.ServerConfig(s.ServerFiles(), wire.RoleClient, wire.RoleAdmin, wire.RoleServer)
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	ch, err := taper.NewDiskChanger(s.Vtapes, s.Slots, s.Capacity, s.Blocksize, log)
	if err != nil {
		return "", nil, err
	}
	srv := &indexd.Server{Catalog: s.Catalog, TLS: tlsCfg, Volumes: &indexd.DiskVolumes{Changer: ch, Catalog: s.Catalog},
		Holding: []string{s.Holding}, Log: log}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { srv.Serve(ctx, ln); close(done) }()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return "localhost:" + port, func() { cancel(); <-done }, nil
}

// MakeTree writes a small tree under root with the kinds of entries a
// restore must handle: nested directories, a file of several frames, an
// empty file, modes, a name with spaces, a symlink, a hard link pair and
// a fixed mtime on everything.
func MakeTree(root string) error {
	mt := time.Date(2025, 6, 7, 8, 9, 10, 0, time.UTC)
	big := make([]byte, 300<<10) // several frames that do not compress
	x := uint64(0x9e3779b97f4a7c15)
	for i := range big {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		big[i] = byte(x)
	}
	files := []struct {
		rel  string
		data []byte
		mode os.FileMode
	}{
		{"etc/passwd", []byte("root:x:0:0:root:/root:/bin/bash\n"), 0o644},
		{"etc/shadow", []byte("root:*:19000:0:99999:7:::\n"), 0o600},
		{"etc/ssl/cert.pem", []byte("-----BEGIN CERTIFICATE-----\n"), 0o644},
		{"home/alice/notes.txt", []byte("buy milk\n"), 0o640},
		{"home/alice/big.bin", big, 0o644},
		{"home/bob/old name.txt", []byte("to be renamed\n"), 0o644},
		{"home/bob/doomed.txt", []byte("to be deleted\n"), 0o644},
		{"bin/run.sh", []byte("#!/bin/sh\necho hi\n"), 0o755},
		{"empty.txt", nil, 0o644},
	}
	for _, f := range files {
		p := filepath.Join(root, f.rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, f.data, f.mode); err != nil {
			return err
		}
		if err := os.Chmod(p, f.mode); err != nil {
			return err
		}
	}
	if err := os.Symlink("passwd", filepath.Join(root, "etc/passwd.link")); err != nil {
		return err
	}
	if err := os.Link(filepath.Join(root, "bin/run.sh"), filepath.Join(root, "bin/run-again.sh")); err != nil {
		return err
	}
	// An extended attribute where the file system keeps them, and a foreign
	// owner when we may give one.
	_ = unix.Setxattr(filepath.Join(root, "etc/passwd"), "user.tapir.test", []byte("kept"), 0)
	if os.Geteuid() == 0 {
		if err := os.Lchown(filepath.Join(root, "home/alice/notes.txt"), 1234, 5678); err != nil {
			return err
		}
	}
	return filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.Mode()&os.ModeSymlink != 0 {
			return err
		}
		return os.Chtimes(p, mt, mt)
	})
}

// Mutate changes a tree made by MakeTree the way a day does: bob's
// "old name.txt" becomes "new name.txt", doomed.txt is deleted, notes.txt
// changes, home/carol/hello.txt appears. Mtimes move one day on.
func Mutate(root string) error {
	mt := time.Date(2025, 6, 8, 8, 9, 10, 0, time.UTC)
	if err := os.Rename(filepath.Join(root, "home/bob/old name.txt"), filepath.Join(root, "home/bob/new name.txt")); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(root, "home/bob/doomed.txt")); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, "home/alice/notes.txt"), []byte("buy milk\nand bread\n"), 0o640); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(root, "home/carol"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, "home/carol/hello.txt"), []byte("hello\n"), 0o644); err != nil {
		return err
	}
	for _, p := range []string{"home/alice/notes.txt", "home/carol/hello.txt", "home/carol", "home/bob", "home"} {
		if err := os.Chtimes(filepath.Join(root, p), mt, mt); err != nil {
			return err
		}
	}
	return nil
}
