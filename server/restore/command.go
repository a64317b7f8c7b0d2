package restore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/image/crypt"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/index/indexd"
	"github.com/tapir-backup/tapir/wire"
)

// CommandResult is what restoring a command DLE's image did.
type CommandResult struct {
	Dump    catalog.Dump
	Bytes   int64  // of the command's output
	Written string // the file written, "" when piped
	Piped   string // the command piped into, one line, "" when written
}

// commandImage restores the image of a command DLE (the standard output of
// its command, docs/format/image.md "Command payloads"): written to a file
// (req.To: a new file, or a directory to hold one named after the image)
// or, with req.Pipe, piped into the DLE's dumptype's restore_command. The
// payload's SHA-256 is checked against the catalog's as it is read (an
// encrypted payload is authenticated chunk by chunk instead); a file is
// written under a temporary name and renamed only when all of it was read
// and checked, so that a failed restore never leaves what looks like a
// whole dump.
func commandImage(ctx context.Context, cfg *config.Config, cat *catalog.Catalog, req TreeRequest, d catalog.Dump, log *slog.Logger) (*CommandResult, error) {
	res := &CommandResult{Dump: d}
	var argv []string
	if req.Pipe {
		argv = restoreCommandOf(cfg, d.Host, d.Path)
		if len(argv) == 0 {
			return nil, fmt.Errorf("recover: %s:%s is a command DLE but its dumptype has no restore_command to pipe it into: add restore_command = [\"/usr/bin/pg_restore\", \"-d\", \"DB\"] (for instance), or leave out --pipe and give --to FILE", d.Host, d.Path)
		}
	} else if req.To == "" {
		return nil, errors.New("recover: no target given: --to FILE (or a directory) for the command's output, or --pipe")
	}
	parts, err := cat.Parts(ctx, d.ID)
	if err != nil {
		return nil, fmt.Errorf("recover: %w", err)
	}
	if parts, err = available(ctx, cat, req.Volumes, req.Ask, d, parts); err != nil {
		return nil, err
	}
	var key *crypt.Key
	if d.Encrypted() {
		if key, err = unwrapKey(d, nil, req.Identities); err != nil {
			return nil, err
		}
	}
	tellNeeded(req.Ask, log, [][]catalog.Part{parts})
	vols, closeVols := passFor(req)
	defer closeVols()
	links := req.Peers.Links(cat)
	defer links.Close()
	src, closeSrc, where, err := openImage(ctx, cfg, vols, links, req.Ask, &catalog.Location{Dump: d, Parts: parts}, log)
	if err != nil {
		return nil, err
	}
	defer closeSrc()
	if ir, ok := src.(*indexd.ImageReader); ok {
		ir.Expect([]wire.Range{{Off: 0, Len: d.PayloadSize}})
	}
	sum := sha256.New()
	var payload io.Reader = io.TeeReader(io.NewSectionReader(src, 0, d.PayloadSize), sum)
	if d.Encrypted() {
		if key == nil {
			if key, err = unwrapKey(d, src, req.Identities); err != nil {
				return nil, err
			}
		}
		pr := crypt.NewReaderAt(src, key)
		payload = io.NewSectionReader(pr, 0, pr.Size())
	}
	r, err := image.NewStreamReader(payload, image.Comp(d.Comp))
	if err != nil {
		return nil, fmt.Errorf("recover: the image %s of %s:%s from %s: %w", d.Datestamp, d.Host, d.Path, where.where(), err)
	}
	defer r.Close()
	// check reads what is left of the payload (the seek table) and
	// compares the SHA-256, once the output is all read.
	check := func() error {
		if _, err := io.Copy(io.Discard, payload); err != nil {
			return err
		}
		if d.Encrypted() || d.SHA256 == "" {
			return nil
		}
		if got := hex.EncodeToString(sum.Sum(nil)); got != d.SHA256 {
			return fmt.Errorf("its payload has SHA-256 %s but the catalog recorded %s: the image is damaged", got, d.SHA256)
		}
		return nil
	}
	fail := func(err error) (*CommandResult, error) {
		return nil, fmt.Errorf("recover: the image %s of %s:%s from %s: %w", d.Datestamp, d.Host, d.Path, where.where(), err)
	}
	if req.Pipe {
		res.Piped = strings.Join(argv, " ")
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if req.Output != nil {
			cmd.Stdout, cmd.Stderr = req.Output, req.Output
		}
		in, err := cmd.StdinPipe()
		if err != nil {
			return fail(err)
		}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("recover: restore_command %s of %s:%s could not start: %w; fix restore_command in the DLE's dumptype", res.Piped, d.Host, d.Path, err)
		}
		n, cerr := io.Copy(in, r)
		if cerr == nil {
			cerr = check()
		}
		in.Close()
		werr := cmd.Wait()
		res.Bytes = n
		switch {
		case cerr != nil && werr != nil && n > 0:
			return nil, fmt.Errorf("recover: restore_command %s stopped after %d bytes of the image %s of %s:%s (%v; reading the image: %v): what it restored is incomplete", res.Piped, n, d.Datestamp, d.Host, d.Path, werr, cerr)
		case cerr != nil:
			return fail(fmt.Errorf("%w; restore_command %s had taken %d bytes: what it restored is incomplete or damaged", cerr, res.Piped, n))
		case werr != nil:
			return nil, fmt.Errorf("recover: restore_command %s failed (%v) after taking %d bytes of the image %s of %s:%s: see its output above", res.Piped, werr, n, d.Datestamp, d.Host, d.Path)
		}
		log.Info("piped a command DLE's image", "host", d.Host, "path", d.Path, "datestamp", d.Datestamp, "bytes", n, "into", res.Piped)
		return res, nil
	}
	target, err := commandTarget(req.To, d, req.Overwrite)
	if err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(target), "."+filepath.Base(target)+".tapir-*")
	if err != nil {
		return nil, fmt.Errorf("recover: %w", err)
	}
	defer os.Remove(tmp.Name())
	n, err := io.Copy(tmp, r)
	if err == nil {
		err = check()
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp.Name(), target); err != nil {
		return nil, fmt.Errorf("recover: %w", err)
	}
	res.Bytes, res.Written = n, target
	log.Info("restored a command DLE's image", "host", d.Host, "path", d.Path, "datestamp", d.Datestamp, "bytes", n, "file", target)
	return res, nil
}

// commandTarget is the file a command DLE's image is written to: to
// itself when it is not a directory (refused when it exists, unless
// overwrite), else a file in it named after the image.
func commandTarget(to string, d catalog.Dump, overwrite bool) (string, error) {
	st, err := os.Stat(to)
	switch {
	case err == nil && st.IsDir():
		name := fmt.Sprintf("%s%s.%s.dump", d.Host, strings.ReplaceAll(d.Path, "/", "_"), d.Datestamp)
		return commandTarget(filepath.Join(to, name), d, overwrite)
	case err == nil && !overwrite:
		return "", fmt.Errorf("recover: %s exists: give a new file name or a directory with --to, or add --overwrite", to)
	case err == nil && !st.Mode().IsRegular():
		return "", fmt.Errorf("recover: %s is not a regular file: give a new file name or a directory with --to", to)
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("recover: target %s: %w", to, err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		return "", fmt.Errorf("recover: target %s: %w", to, err)
	}
	return to, nil
}

// restoreCommandOf is the restore_command of the dumptype of host:path in
// cfg (nil when the DLE is no longer configured or has none).
func restoreCommandOf(cfg *config.Config, host, path string) []string {
	for _, dle := range cfg.DLEs {
		if dle.Host == host && dle.Path == path {
			return cfg.Dumptype(dle).RestoreCommand
		}
	}
	return nil
}
