package restore

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"strings"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/image/crypt"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/index/indexd"
	"github.com/tapir-backup/tapir/recover"
)

// Request names one file to restore.
type Request struct {
	Host, Path string // the DLE
	File       string // absolute (inside Path) or relative to Path
	To         string // target directory; the file lands at To/<relative path>
	AsOf       string // datestamp limit, "" for the newest
	Overwrite  bool   // replace an existing local file
	// SamePrivileges recreates a device node, setuid and setgid bits and
	// trusted.* and security.* xattrs from the image (Extractor); without
	// it they are left out and said in Result.Dropped.
	SamePrivileges bool
	// Volumes reaches the volumes (server.VolumeSource gives the one of
	// the configuration's changer, whatever its type); nil restores only
	// images still on the holding disk.
	Volumes indexd.VolumeSource
	// Identities open an encrypted image (--identity FILE); nil: none
	// given, and an encrypted image is refused before anything is read.
	Identities *crypt.Identities
	// Ask is the person at the terminal: told the volumes needed first
	// ("The following tapes are needed: ...") and, with a single drive,
	// asked for each cartridge in turn (indexd.Ask). Nil: nobody is
	// asked, and a volume that is not in the drive fails at once.
	Ask indexd.Ask
	// Peers reads an image that another tapir server of a shared catalog
	// holds (its volume is not in this server's changer, or it is on that
	// server's holding disk) from that server's index server
	// (server.Peers); nil reads only here.
	Peers *indexd.Peers
}

// Result says what was restored from where.
type Result struct {
	Written string
	Dump    catalog.Dump
	Volume  string
	FileNo  int64
	Size    int64
	Dropped recover.Dropped // what of the file's privileged parts was left out
}

// RelPath turns the file a person typed into the catalog's relative path.
func RelPath(dlePath, file string) (string, error) {
	if file == "" {
		return "", errors.New("no file named")
	}
	if path.IsAbs(file) {
		root := strings.TrimSuffix(dlePath, "/") + "/"
		if !strings.HasPrefix(file, root) {
			return "", fmt.Errorf("%s is not inside the DLE %s", file, dlePath)
		}
		file = strings.TrimPrefix(file, root)
	}
	file = strings.TrimPrefix(file, "./")
	clean := path.Clean(file)
	if clean == "." || clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("%q does not name a file inside the DLE", file)
	}
	return clean, nil
}

// File restores one file from the newest image that holds it.
func File(ctx context.Context, cfg *config.Config, req Request, log *slog.Logger) (*Result, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rel, err := RelPath(req.Path, req.File)
	if err != nil {
		return nil, fmt.Errorf("recover: %w", err)
	}
	if req.To == "" {
		return nil, errors.New("recover: no target directory given (--to DIR)")
	}
	cat, err := catalog.Open(cfg.Catalog)
	if err != nil {
		return nil, err
	}
	defer cat.Close()
	loc, err := cat.FindFile(ctx, req.Host, req.Path, rel, req.AsOf)
	if err != nil {
		if errors.Is(err, catalog.ErrNotFound) {
			return nil, fmt.Errorf("recover: %s is in no image of %s:%s in catalog %s (check the name with the DLE's path, or an earlier date)", rel, req.Host, req.Path, config.MaskDSN(cfg.Catalog))
		}
		return nil, fmt.Errorf("recover: %w", err)
	}
	if loc.File.Type == tar.TypeLink {
		// A hard link's data is stored once, under the name of the set
		// the image met first; the other names are links to it, in the
		// same image. Read that entry, write it under the name asked.
		if l := path.Clean(loc.File.Link); loc.File.Link == "" || path.IsAbs(l) || l == "." || l == ".." || strings.HasPrefix(l, "../") {
			return nil, fmt.Errorf("recover: %s is a hard link to %q in %s, which is not a name inside the DLE: the image is damaged or hostile; nothing restored", rel, loc.File.Link, imageName(loc.Dump))
		}
		target, err := cat.FindFile(ctx, req.Host, req.Path, loc.File.Link, loc.Dump.Datestamp)
		if errors.Is(err, catalog.ErrNotFound) {
			return nil, fmt.Errorf("recover: %s is a hard link to %s, which the index of %s does not hold: the image is damaged or was not written by tapir, and its data cannot be found", rel, loc.File.Link, imageName(loc.Dump))
		}
		if err != nil {
			return nil, fmt.Errorf("recover: %s is a hard link to %s: %w", rel, loc.File.Link, err)
		}
		if target.Dump.ID != loc.Dump.ID {
			return nil, fmt.Errorf("recover: %s is a hard link to %s in %s, but the index finds %s in %s: the catalog does not match the image; restore %s from %s by its own name", rel, loc.File.Link, imageName(loc.Dump), loc.File.Link, imageName(target.Dump), loc.File.Link, imageName(loc.Dump))
		}
		if target.File.Type == tar.TypeLink {
			return nil, fmt.Errorf("recover: %s is a hard link to %s, itself a hard link to %s in %s: the image is damaged or was not written by tapir", rel, loc.File.Link, target.File.Link, imageName(loc.Dump))
		}
		loc = target
	}
	// An encrypted image needs a key that opens it before any volume is
	// loaded (a person may be asked for a cartridge): unwrapped from the
	// catalog's age header now, or from the payload's first bytes below
	// when the catalog lacks it.
	var key *crypt.Key
	if loc.Dump.Encrypted() {
		var err error
		if key, err = unwrapKey(loc.Dump, nil, req.Identities); err != nil {
			return nil, err
		}
	}
	// The image's own volumes, or a copy's (tapir vault).
	if loc.Parts, err = available(ctx, cat, req.Volumes, req.Ask, loc.Dump, loc.Parts); err != nil {
		return nil, err
	}
	tellNeeded(req.Ask, log, [][]catalog.Part{indexd.PartsFor(loc.Parts, cipherFrames(loc.Dump, loc.Frames))})
	links := req.Peers.Links(cat)
	defer links.Close()
	src, closeSrc, res, err := openImage(ctx, cfg, req.Volumes, links, req.Ask, loc, log)
	if err != nil {
		return nil, err
	}
	defer closeSrc()
	if loc.Dump.Encrypted() {
		// The frames are in plaintext coordinates: read them through the
		// age chunks that hold them, each opened (authenticated) as read.
		if key == nil {
			if key, err = unwrapKey(loc.Dump, src, req.Identities); err != nil {
				return nil, err
			}
		}
		src = crypt.NewReaderAt(src, key)
	}
	tr, err := image.NewReaderAt(src, image.Comp(loc.Dump.Comp), loc.Frames, loc.File.TarOffset)
	if err != nil {
		return nil, fmt.Errorf("recover: %s: %w", res.where(), err)
	}
	defer tr.Close()
	x := &recover.Extractor{Dir: req.To, Overwrite: req.Overwrite, SamePrivileges: req.SamePrivileges}
	out, n, err := extractOne(tar.NewReader(tr), loc.File, rel, x)
	if err != nil {
		return nil, fmt.Errorf("recover %s from %s (%s): %w", rel, res.where(), imageName(loc.Dump), err)
	}
	log.Info("restored", "file", out, "bytes", n, "image", loc.Dump.Datestamp, "volume", res.volume)
	return &Result{Written: out, Dump: loc.Dump, Volume: res.volume, FileNo: res.fileno, Size: n, Dropped: x.Dropped}, nil
}

type source struct {
	volume string
	fileno int64
	path   string
}

func (s source) where() string {
	if s.volume != "" {
		return fmt.Sprintf("volume %s file %d", s.volume, s.fileno)
	}
	return s.path
}

// openImage returns a ReaderAt over the payload of the dump: from its
// volumes when it is taped (every part, in order), from the holding disk
// otherwise. Each header found there is checked against the catalog before
// it is trusted (indexd.ImageReader).
func openImage(ctx context.Context, cfg *config.Config, vols indexd.VolumeSource, links *indexd.Links, ask indexd.Ask, loc *catalog.Location, log *slog.Logger) (io.ReaderAt, func(), source, error) {
	// The first byte read: that of the first frame wanted (a file in the
	// second part of an image needs only the second part's volume).
	var first int64
	if cf := cipherFrames(loc.Dump, loc.Frames); len(cf) > 0 {
		first = cf[0].Offset
	}
	var src source
	switch {
	case len(loc.Parts) > 0:
		p := loc.Parts[0]
		for _, pt := range loc.Parts {
			if first >= pt.Offset && first < pt.Offset+pt.Length {
				p = pt
			}
		}
		src = source{volume: p.Volume, fileno: p.FileNo}
		if _, remote := links.Owner(ctx, vols, p.Volume); vols == nil && !remote {
			return nil, nil, src, fmt.Errorf("recover: image %s of %s:%s is on volume %s, and no changer was given to read it (the caller passes the configuration's volume source: server.VolumeSource)", loc.Dump.Datestamp, loc.Dump.Host, loc.Dump.Path, p.Volume)
		}
	case loc.Dump.HoldingPath == "":
		return nil, nil, src, fmt.Errorf("recover: image %s of %s:%s has no part on any volume and no holding file", loc.Dump.Datestamp, loc.Dump.Host, loc.Dump.Path)
	}
	var disks []string
	for _, h := range cfg.Holding {
		disks = append(disks, h.Path)
	}
	r := indexd.NewImageReader(ctx, vols, disks, loc.Dump, loc.Parts)
	r.Ask, r.Peers = ask, links
	// Open it now, so that a missing volume or a stale catalog shows here.
	var probe [1]byte
	if loc.Dump.PayloadSize > first {
		if _, err := r.ReadAt(probe[:], first); err != nil {
			r.Close()
			return nil, nil, src, fmt.Errorf("recover: %w", err)
		}
	}
	if w := r.Where(); len(w) > 0 {
		src.path = w[0]
	}
	return r, func() { r.Close() }, src, nil
}

// tellNeeded tells the person at the terminal, and the log, which volumes
// the reads (each the parts one image reads, in order) load, in order.
func tellNeeded(ask indexd.Ask, log *slog.Logger, reads [][]catalog.Part) {
	need := indexd.Needed(reads)
	if len(need) == 0 {
		return
	}
	msg := "The following tapes are needed: " + strings.Join(need, " ")
	if ask == nil {
		log.Info(msg)
		return
	}
	log.Debug(msg)
	ask(msg)
}

// extractOne reads the first tar entry, checks it is the one the catalog
// promised (want: for a hard link, the entry of the name that holds its
// data), and writes it under x.Dir as as, with the Extractor (so a single
// file gets the same treatment as a whole tree: holes, attributes, owner).
// It never writes outside x.Dir.
func extractOne(tr *tar.Reader, want catalog.FileRecord, as string, x *recover.Extractor) (string, int64, error) {
	hdr, err := tr.Next()
	if err != nil {
		return "", 0, fmt.Errorf("read tar entry at offset %d: %w", want.TarOffset, err)
	}
	name := strings.TrimSuffix(strings.TrimPrefix(hdr.Name, "./"), "/")
	if name != want.Path {
		return "", 0, fmt.Errorf("the image holds %q at offset %d where the catalog expects %q; the catalog does not match the image", hdr.Name, want.TarOffset, want.Path)
	}
	if hdr.Typeflag == tar.TypeLink {
		return "", 0, fmt.Errorf("the image holds %s as a hard link to %s, where the catalog expects its data; the catalog does not match the image", want.Path, hdr.Linkname)
	}
	hdr.Name = as // a hard link's data is restored under the name asked for
	target, err := x.Entry(hdr, tr)
	if cerr := x.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return "", 0, err
	}
	var n int64
	if hdr.Typeflag == tar.TypeReg || hdr.Typeflag == tar.TypeGNUSparse {
		n = hdr.Size
	}
	return target, n, nil
}
