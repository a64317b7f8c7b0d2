package indexd

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/wire"
)

// The boundary between the server's errors and the sentences a shell
// prints. A shell's person may be on another host and may not read the
// server's files: a reply names what failed in their terms (a path in the
// backup, an image, a volume label) and never a file of the server (the
// catalog, a holding file, a vtape). The whole error goes to the server's
// log.

// explain turns an error into the sentence for the shell; internal is true
// when it is the server's failure (the catalog could not be read) rather
// than something about the request.
func (s *Server) explain(err error) (msg string, internal bool) {
	msg = err.Error()
	var oe *catalog.OpError
	if errors.As(err, &oe) {
		var repl string
		if errors.Is(oe.Err, catalog.ErrNotFound) {
			repl = innermost(oe.Err, catalog.ErrNotFound).Error()
		} else {
			repl = fmt.Sprintf("the index server could not %s: its catalog failed (the server's log says why; tell the backup administrator)", oe.Op)
			internal = true
		}
		msg = strings.Replace(msg, oe.Error(), repl, 1)
	}
	return s.scrub(msg), internal
}

// innermost returns the deepest error in err's chain that still matches
// target: for a not-found error wrapped with where it happened, the
// sentence that says what is not there.
func innermost(err, target error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil || !errors.Is(u, target) {
			return err
		}
		err = u
	}
}

// privateDir is a directory of the server and what a shell is told
// instead of a path inside it.
type privateDir struct {
	dir, as string
	slots   bool // a disk changer's root: ".../slotN..." reads "slot N"
}

// privateDirs lists the directories whose paths scrub replaces, the
// longest first (a holding disk inside the catalog's directory is named
// as a holding file).
func (s *Server) privateDirs() []privateDir {
	var out []privateDir
	add := func(dir, as string, slots bool) {
		if dir == "" {
			return
		}
		for _, d := range []string{filepath.Clean(dir), evalSymlinks(dir)} {
			if len(d) > 1 && !slices.ContainsFunc(out, func(p privateDir) bool { return p.dir == d }) {
				out = append(out, privateDir{d, as, slots})
			}
		}
	}
	if s.Catalog != nil {
		add(filepath.Dir(s.Catalog.Path()), "a file of the backup server", false)
	}
	for _, h := range s.Holding {
		add(h, "a holding disk file", false)
	}
	if s.Volumes != nil {
		add(s.Volumes.Properties().Dir, "the disk changer", true)
	}
	for _, d := range s.PrivateDirs {
		add(d, "a file of the backup server", false)
	}
	slices.SortStableFunc(out, func(a, b privateDir) int { return len(b.dir) - len(a.dir) })
	return out
}

func evalSymlinks(dir string) string {
	d, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return ""
	}
	return d
}

// scrub replaces every path inside a private directory in msg (up to the
// next space, quote, colon, comma, semicolon or parenthesis) with what it
// is ("a holding disk file"). Serve computes the directories; before it,
// only the catalog's path is replaced.
func (s *Server) scrub(msg string) string {
	dirs := s.private
	if dirs == nil && s.Catalog != nil {
		dirs = []privateDir{{dir: s.Catalog.Path(), as: "the catalog"}}
	}
	for _, d := range dirs {
		for from := 0; ; {
			i := strings.Index(msg[from:], d.dir)
			if i < 0 {
				break
			}
			i += from
			j := i + len(d.dir)
			for j < len(msg) && !strings.ContainsRune(" \t\n\"'`:;,()", rune(msg[j])) {
				j++
			}
			as := d.as
			if d.slots {
				if n, ok := slotOf(msg[i+len(d.dir) : j]); ok {
					as = "slot " + n
				}
			}
			msg = msg[:i] + as + msg[j:]
			from = i + len(as)
		}
	}
	return msg
}

// slotOf reads the slot number from what follows a disk changer's root
// in a path ("/slot3/00001.web1._srv.0").
func slotOf(rest string) (string, bool) {
	rest, ok := strings.CutPrefix(rest, "/slot")
	if !ok {
		return "", false
	}
	n, _, _ := strings.Cut(rest, "/")
	if n == "" || strings.Trim(n, "0123456789") != "" {
		return "", false
	}
	return n, true
}

// checkRequest checks what a request names before the catalog sees it, so
// that a mistake is told as the person's (the catalog's own checks would
// read as its failure): the date, the path, the paths and the pattern.
func checkRequest(req wire.IndexRequest) error {
	if d := req.Date; d != "" && (len(d) < 4 || len(d) > 14 || strings.Trim(d, "0123456789") != "") {
		return fmt.Errorf("date %q is not a datestamp prefix: give YYYY[MM[DD[hh[mm[ss]]]]], digits only (e.g. 20250607 or 202506071200)", d)
	}
	if req.Path != "" {
		if _, err := cleanPath(req.Path); err != nil {
			return err
		}
	}
	if len(req.Paths) > wire.MaxRequestPaths {
		return fmt.Errorf("the extraction list holds %d paths; one extract takes at most %d: add their directories instead, or extract in several steps", len(req.Paths), wire.MaxRequestPaths)
	}
	for _, p := range req.Paths {
		if _, err := cleanPath(p); err != nil {
			return err
		}
	}
	if req.Op == wire.IdxFind && (req.Pattern == "" || strings.IndexByte(req.Pattern, 0) >= 0) {
		return fmt.Errorf("find needs a pattern without NUL bytes (e.g. find '*.conf')")
	}
	return nil
}

// cleanPath makes a path in the backup as a person or a shell gives it
// ("/etc/", "./etc", "etc") the catalog's form ("etc"; "" is the DLE's
// root), as the catalog's own lookups do, and refuses what no backup
// holds.
func cleanPath(p string) (string, error) {
	orig := p
	for {
		switch {
		case strings.HasPrefix(p, "./"):
			p = p[2:]
			continue
		case strings.HasPrefix(p, "/"):
			p = p[1:]
			continue
		}
		break
	}
	p = strings.TrimRight(p, "/")
	if p == "." {
		p = ""
	}
	if strings.IndexByte(p, 0) >= 0 {
		return "", fmt.Errorf("path %q holds a NUL byte, which no name in a backup has", orig)
	}
	if p == "" {
		return "", nil
	}
	for c := range strings.SplitSeq(p, "/") {
		switch c {
		case "":
			return "", fmt.Errorf("path %q has an empty component (//): write each directory once", orig)
		case ".", "..":
			return "", fmt.Errorf("path %q has a %q component: paths in the backup are relative to the DLE's root and stay inside it (cd there first, then name the path)", orig, c)
		}
	}
	return p, nil
}
