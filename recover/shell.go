package recover

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/tapir-backup/tapir/image/crypt"
	"github.com/tapir-backup/tapir/internal/bytesize"
	"github.com/tapir-backup/tapir/wire"
)

// Shell is the recover shell, amrecover's commands over the index
// protocol. It is independent of the line editor: commands come as lines
// (Exec), questions go through Ask, output goes to Out.
type Shell struct {
	Client *Client
	Out    io.Writer
	// Ask asks a yes/no question and returns the answer; def is the answer
	// for an empty line. Nil: every question gets its default.
	Ask func(question string, def bool) bool
	Now func() time.Time // for setdate --MM-DD and ---DD; nil: time.Now
	// Ctx cancels a running extract (^C); nil: never.
	Ctx context.Context

	Host, DLE string
	Date      string // datestamp prefix; "" = the newest
	Cwd       string // relative to the DLE root, "" = the root
	Lcd       string // local target directory (absolute)
	// SamePrivileges makes extract recreate device nodes, setuid and
	// setgid bits and trusted.* and security.* xattrs even from another
	// host's backup. A host restoring its own files (the host browsed is
	// the one the certificate names) always gets them back.
	SamePrivileges bool
	// Identities open encrypted images (--identity FILE); nil: none given,
	// and an extract that needs one is refused before it writes anything.
	Identities *crypt.Identities

	sel   []string            // selected paths, relative to the DLE root ("" = all)
	chain []wire.ImageInfo    // the view's images (full first)
	cache map[string][]string // completion: directory -> names (dirs end in "/")
}

// ErrQuit is returned by Exec for quit and exit.
var ErrQuit = errors.New("quit")

type command struct {
	name, args, help string
	run              func(sh *Shell, args []word) error
	complete         completes // what TAB offers for the arguments
}

// completes says what a command's arguments are, for completion.
type completes int

const (
	compNone  completes = iota
	compPaths           // paths in the backup
	compHosts           // hosts (listhost)
	compDisks           // DLEs of the host (listdisk)
)

// plain adapts a command that needs only the text of its words.
func plain(f func(sh *Shell, args []string) error) func(sh *Shell, args []word) error {
	return func(sh *Shell, args []word) error {
		texts := make([]string, len(args))
		for i, a := range args {
			texts[i] = a.Text
		}
		return f(sh, texts)
	}
}

var commands []command

func init() {
	commands = []command{
		{"listhost", "", "list the hosts you may browse", plain((*Shell).listhost), compNone},
		{"sethost", "HOST", "choose the host to restore from", plain((*Shell).sethost), compHosts},
		{"listdisk", "", "list the DLEs (disks) of the host", plain((*Shell).listdisk), compNone},
		{"setdisk", "DLE", "choose the DLE to restore from", plain((*Shell).setdisk), compDisks},
		{"setdate", "DATE", "browse the DLE as it was at DATE: YYYY-MM-DD[-hh:mm[:ss]], --MM-DD (this year), ---DD (this month) or now", plain((*Shell).setdate), compNone},
		{"history", "", "list the images of the DLE: date, level, volumes", plain((*Shell).history), compNone},
		{"ls", "[DIR]", "list a directory of the backup (dirs end in /)", plain((*Shell).ls), compPaths},
		{"cd", "[DIR]", "change directory in the backup (alone: to the top)", plain((*Shell).cd), compPaths},
		{"pwd", "", "show the directory in the backup", plain((*Shell).pwd), compNone},
		{"add", "PATH...", "add files or directories to the extraction list (* ? [...] in the last part of a path match names)", (*Shell).add, compPaths},
		{"delete", "PATH...", "remove paths (or patterns) from the extraction list", (*Shell).delete, compPaths},
		{"list", "", "show the extraction list", plain((*Shell).list), compNone},
		{"clear", "", "empty the extraction list", plain((*Shell).clear), compNone},
		{"find", "PATTERN", "find names matching a shell pattern in the whole DLE (with a /: paths from here)", (*Shell).find, compPaths},
		{"extract", "[-o]", "restore the extraction list into the local directory (lcd); -o overwrites local files without asking", plain((*Shell).extract), compNone},
		{"lcd", "DIR", "change the local directory files are restored into", plain((*Shell).lcd), compNone},
		{"lpwd", "", "show the local directory files are restored into", plain((*Shell).lpwd), compNone},
		{"help", "", "show this list", plain((*Shell).help), compNone},
		{"quit", "", "leave (also exit)", func(*Shell, []word) error { return ErrQuit }, compNone},
	}
}

// Commands returns the command names, sorted (for completion).
func Commands() []string {
	out := []string{"exit"}
	for _, c := range commands {
		out = append(out, c.name)
	}
	sort.Strings(out)
	return out
}

func (sh *Shell) printf(format string, a ...any) { fmt.Fprintf(sh.Out, format, a...) }

func (sh *Shell) q() Query { return Query{Host: sh.Host, DLE: sh.DLE, Date: sh.Date} }

// Exec runs one command line. The error (nil on success) is for the
// person: the caller prints it as it is. ErrQuit ends the session.
//
// A command that fails because the connection to the index server broke
// (the server restarted, a network cut) is run again once on a new
// connection, after a one-line notice (reconnect.go).
func (sh *Shell) Exec(line string) error {
	words, err := tokenize(line)
	if err != nil {
		return err
	}
	if len(words) == 0 {
		return nil
	}
	name := words[0].Text
	if name == "exit" {
		name = "quit"
	}
	for _, c := range commands {
		if c.name == name {
			err := sh.runCommand(c, words[1:])
			if err == nil || errors.Is(err, ErrQuit) {
				return err
			}
			return printableError{err}
		}
	}
	return fmt.Errorf("%s: no such command; type help for the list", Escape(words[0].Text))
}

// splitWords splits a line into the texts of its words (tokenize).
func splitWords(line string) ([]string, error) {
	ws, err := tokenize(line)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = w.Text
	}
	return out, nil
}

func nargs(args []string, lo, hi int, usage string) error {
	if len(args) < lo || len(args) > hi {
		return fmt.Errorf("usage: %s", usage)
	}
	return nil
}

func (sh *Shell) needDisk() error {
	if sh.Host == "" {
		return errors.New("no host chosen: sethost HOST first (listhost shows them)")
	}
	if sh.DLE == "" {
		return errors.New("no disk chosen: setdisk DLE first (listdisk shows them)")
	}
	if sh.chain == nil {
		return fmt.Errorf("no index for %s:%s at %s: setdate to a date with a full image (history shows them)", Escape(sh.Host), Escape(sh.DLE), showDate(sh.Date))
	}
	if len(sh.chain) > 0 && sh.chain[0].IsCommand() {
		return errors.New(sh.commandDLE())
	}
	return nil
}

// commandDLE explains why a command DLE has nothing to browse and how
// its image is restored.
func (sh *Shell) commandDLE() string {
	return fmt.Sprintf("%s:%s is a command DLE: its images hold a command's output (a database dump, a stream), not files to browse. "+
		"Restore one on the backup server: tapir recover -c FILE --host %s --path %s --all --to FILE (or --pipe into the dumptype's restore_command); history lists the images",
		Escape(sh.Host), Escape(sh.DLE), Escape(sh.Host), Escape(sh.DLE))
}

func (sh *Shell) listhost(args []string) error {
	if err := nargs(args, 0, 0, "listhost"); err != nil {
		return err
	}
	hosts, err := sh.Client.Hosts()
	if err != nil {
		return err
	}
	for _, h := range hosts {
		sh.printf("%s\n", Escape(h))
	}
	return nil
}

func (sh *Shell) sethost(args []string) error {
	if err := nargs(args, 1, 1, "sethost HOST"); err != nil {
		return err
	}
	dles, err := sh.Client.DLEs(args[0])
	if err != nil {
		return err
	}
	sh.Host, sh.DLE, sh.Cwd, sh.chain, sh.sel, sh.cache = args[0], "", "", nil, nil, nil
	sh.printf("Host set to %s (%d disk%s: listdisk).\n", Escape(sh.Host), len(dles), plural(len(dles)))
	return nil
}

// hostDLEs checks the usage of a command and returns the DLEs of the host.
func (sh *Shell) hostDLEs(args []string, n int, usage string) ([]string, error) {
	if err := nargs(args, n, n, usage); err != nil {
		return nil, err
	}
	if sh.Host == "" {
		return nil, errors.New("no host chosen: sethost HOST first (listhost shows them)")
	}
	return sh.Client.DLEs(sh.Host)
}

func (sh *Shell) listdisk(args []string) error {
	dles, err := sh.hostDLEs(args, 0, "listdisk")
	if err != nil {
		return err
	}
	for _, d := range dles {
		sh.printf("%s\n", Escape(d))
	}
	return nil
}

func (sh *Shell) setdisk(args []string) error {
	dles, err := sh.hostDLEs(args, 1, "setdisk DLE")
	if err != nil {
		return err
	}
	want := args[0]
	found := false
	for _, d := range dles {
		if d == want {
			found = true
		}
	}
	if !found {
		return fmt.Errorf("%s is not a DLE of %s with images; listdisk shows them", Escape(want), Escape(sh.Host))
	}
	sh.DLE, sh.Cwd, sh.sel, sh.chain, sh.cache = want, "", nil, nil, nil
	return sh.loadView("Disk set to " + Escape(want))
}

// loadView asks for the chain of the current date and prints it.
func (sh *Shell) loadView(what string) error {
	chain, err := sh.Client.View(sh.q())
	if err != nil {
		return err
	}
	sh.chain, sh.cache = chain, nil
	var parts []string
	for _, im := range chain {
		parts = append(parts, fmt.Sprintf("%s level %d", showDatestamp(im.Datestamp), im.Level))
	}
	sh.printf("%s; using the images %s.\n", what, strings.Join(parts, ", "))
	if len(chain) > 0 && chain[0].IsCommand() {
		sh.printf("%s.\n", sh.commandDLE())
	}
	return nil
}

func (sh *Shell) setdate(args []string) error {
	if err := nargs(args, 1, 1, "setdate YYYY-MM-DD[-hh:mm:ss]"); err != nil {
		return err
	}
	now := time.Now
	if sh.Now != nil {
		now = sh.Now
	}
	ds, err := ParseDate(args[0], now())
	if err != nil {
		return err
	}
	old := sh.Date
	sh.Date = ds
	if sh.Host == "" || sh.DLE == "" {
		sh.printf("Date set to %s.\n", showDate(ds))
		return nil
	}
	if err := sh.loadView("Date set to " + showDate(ds)); err != nil {
		sh.Date = old // the view stays as it was
		return fmt.Errorf("%w; the date stays %s", err, showDate(old))
	}
	if sh.Cwd != "" {
		if e, err := sh.Client.Stat(sh.q(), sh.Cwd); err != nil || !e.IsDir() {
			sh.printf("%s is not in the backup at that date; back at the top.\n", sh.show(sh.Cwd))
			sh.Cwd = ""
		}
	}
	return nil
}

// ParseDate turns a setdate argument into a datestamp prefix: YYYY-MM-DD,
// YYYY-MM-DD-hh:mm:ss (or -hh-mm-ss, or -hh:mm), --MM-DD (this year),
// ---DD (this month), "now" or "" (the newest).
func ParseDate(s string, now time.Time) (string, error) {
	bad := fmt.Errorf("date %q: use YYYY-MM-DD, YYYY-MM-DD-hh:mm:ss, --MM-DD or ---DD", s)
	switch {
	case s == "" || s == "now":
		return "", nil
	case strings.HasPrefix(s, "---"):
		s = now.Format("2006-01-") + s[3:]
	case strings.HasPrefix(s, "--"):
		s = now.Format("2006-") + s[2:]
	}
	date, clock, hasClock := s, "", false
	if len(s) > 10 {
		if s[10] != '-' {
			return "", bad
		}
		date, clock, hasClock = s[:10], s[11:], true
	}
	d, err := time.Parse("2006-01-02", date)
	if err != nil {
		return "", bad
	}
	out := d.Format("20060102")
	if hasClock {
		c := strings.ReplaceAll(clock, "-", ":")
		var t time.Time
		var err error
		switch len(c) {
		case 8:
			t, err = time.Parse("15:04:05", c)
			out += t.Format("150405")
		case 5:
			t, err = time.Parse("15:04", c)
			out += t.Format("1504")
		default:
			return "", bad
		}
		if err != nil {
			return "", bad
		}
	}
	return out, nil
}

// showDate renders a datestamp prefix for a person.
func showDate(ds string) string {
	switch len(ds) {
	case 0:
		return "now"
	case 8:
		return ds[:4] + "-" + ds[4:6] + "-" + ds[6:8]
	case 10:
		return ds[:4] + "-" + ds[4:6] + "-" + ds[6:8] + " " + ds[8:10] + "h"
	case 12:
		return ds[:4] + "-" + ds[4:6] + "-" + ds[6:8] + " " + ds[8:10] + ":" + ds[10:12]
	case 14:
		return showDatestamp(ds)
	}
	return ds
}

func (sh *Shell) history(args []string) error {
	if err := nargs(args, 0, 0, "history"); err != nil {
		return err
	}
	if sh.Host == "" || sh.DLE == "" {
		return errors.New("no disk chosen: sethost and setdisk first")
	}
	imgs, err := sh.Client.History(sh.q())
	if err != nil {
		return err
	}
	sh.printf("%-19s  %5s  %-7s  %s\n", "date", "level", "status", "volumes")
	for _, im := range imgs {
		note := encrypted(im)
		if im.IsCommand() {
			note += "  (command output)"
		}
		sh.printf("%-19s  %5d  %-7s  %s%s\n", showDatestamp(im.Datestamp), im.Level, im.Status, volumes(im), note)
	}
	return nil
}

// encrypted notes an encrypted image in history: to whom.
func encrypted(im wire.ImageInfo) string {
	if !im.Encrypted() {
		return ""
	}
	return fmt.Sprintf("  (encrypted, %s to %s)", im.Encryption, fingerprints(im.Recipients))
}

func volumes(im wire.ImageInfo) string {
	if len(im.Volumes) == 0 {
		if im.Holding || im.Status == "holding" {
			return "(holding disk)"
		}
		return "-"
	}
	var vs []string
	for _, v := range im.Volumes {
		vs = append(vs, Escape(v.Label))
	}
	return strings.Join(vs, " ")
}

// resolve turns a path typed in the shell into one relative to the DLE
// root: absolute paths are client paths inside the DLE, others are
// relative to the current directory.
func (sh *Shell) resolve(p string) (string, error) {
	var rel string
	if path.IsAbs(p) {
		root := strings.TrimSuffix(sh.DLE, "/") + "/"
		switch {
		case p+"/" == root || p == sh.DLE:
			return "", nil
		case strings.HasPrefix(p, root):
			rel = strings.TrimPrefix(p, root)
		default:
			return "", fmt.Errorf("%s is not inside the DLE %s", Escape(p), Escape(sh.DLE))
		}
	} else {
		rel = path.Join(sh.Cwd, p)
		if rel == ".." || strings.HasPrefix(rel, "../") {
			return "", fmt.Errorf("%s leads above the top of the DLE %s", Escape(p), Escape(sh.DLE))
		}
	}
	rel = path.Clean("/" + rel)[1:]
	return rel, nil
}

// abs renders a path relative to the DLE root as the client's path.
func (sh *Shell) abs(rel string) string {
	if rel == "" {
		return sh.DLE
	}
	return path.Join(sh.DLE, rel)
}

// show is abs for a person: escaped (Escape).
func (sh *Shell) show(rel string) string { return Escape(sh.abs(rel)) }

func (sh *Shell) ls(args []string) error {
	if err := nargs(args, 0, 1, "ls [DIR]"); err != nil {
		return err
	}
	if err := sh.needDisk(); err != nil {
		return err
	}
	dir := sh.Cwd
	if len(args) == 1 {
		d, err := sh.resolve(args[0])
		if err != nil {
			return err
		}
		dir = d
	}
	ents, err := sh.Client.List(sh.q(), dir)
	if err != nil {
		return err
	}
	var b strings.Builder
	for _, e := range ents {
		date := "?"
		if e.Image < len(sh.chain) {
			date = showDatestamp(sh.chain[e.Image].Datestamp)
		}
		b.WriteString(date)
		b.WriteString("  ")
		b.WriteString(Escape(e.Path))
		if e.IsDir() {
			b.WriteByte('/')
		}
		b.WriteByte('\n')
	}
	io.WriteString(sh.Out, b.String())
	return nil
}

func (sh *Shell) cd(args []string) error {
	if err := nargs(args, 0, 1, "cd DIR"); err != nil {
		return err
	}
	if err := sh.needDisk(); err != nil {
		return err
	}
	if len(args) == 0 {
		sh.Cwd = ""
		return nil
	}
	d, err := sh.resolve(args[0])
	if err != nil {
		return err
	}
	if d != "" {
		e, err := sh.Client.Stat(sh.q(), d)
		if err != nil {
			return err
		}
		if !e.IsDir() {
			return fmt.Errorf("%s is not a directory", sh.show(d))
		}
	}
	sh.Cwd = d
	return nil
}

func (sh *Shell) pwd(args []string) error {
	if err := nargs(args, 0, 0, "pwd"); err != nil {
		return err
	}
	if sh.DLE == "" {
		return errors.New("no disk chosen: setdisk DLE first")
	}
	sh.printf("%s\n", sh.show(sh.Cwd))
	return nil
}

// expand resolves a word into paths of the backup: a shell pattern in its
// last component (glob characters that were not escaped or quoted) is
// matched against the names of its directory.
func (sh *Shell) expand(w word) ([]string, error) {
	dirPat, basePat := "", w.Pat
	if k := strings.LastIndexByte(w.Pat, '/'); k >= 0 {
		dirPat, basePat = w.Pat[:k+1], w.Pat[k+1:]
	}
	if !w.Glob || !hasGlob(basePat) {
		if w.Glob {
			return nil, fmt.Errorf("%s: a pattern may only be in the last part of a path", Escape(w.Text))
		}
		p, err := sh.resolve(w.Text)
		if err != nil {
			return nil, err
		}
		return []string{p}, nil
	}
	if hasGlob(dirPat) {
		return nil, fmt.Errorf("%s: a pattern may only be in the last part of a path", Escape(w.Text))
	}
	if _, err := path.Match(basePat, ""); err != nil {
		return nil, fmt.Errorf("pattern %s is malformed (a literal * ? [ is written \\* \\? \\[)", Escape(w.Text))
	}
	dir := ""
	if dirPat != "" {
		d, err := sh.resolve(unescapeGlob(dirPat))
		if err != nil {
			return nil, err
		}
		dir = d
	} else {
		dir = sh.Cwd
	}
	ents, err := sh.Client.List(sh.q(), dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if ok, _ := path.Match(basePat, e.Path); ok {
			out = append(out, path.Join(dir, e.Path))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no match in the backup", Escape(w.Text))
	}
	return out, nil
}

// hasGlob reports whether a path.Match pattern holds an unescaped glob
// character.
func hasGlob(p string) bool {
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '\\':
			i++
		case '*', '?', '[':
			return true
		}
	}
	return false
}

// covered reports whether p is selected, itself or through a directory.
func (sh *Shell) covered(p string) bool {
	for _, s := range sh.sel {
		if s == p || s == "" || strings.HasPrefix(p, s+"/") {
			return true
		}
	}
	return false
}

func (sh *Shell) add(args []word) error {
	if len(args) == 0 {
		return errors.New("usage: add PATH...")
	}
	if err := sh.needDisk(); err != nil {
		return err
	}
	var errs []error
	for _, a := range args {
		ps, err := sh.expand(a)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, p := range ps {
			if sh.covered(p) {
				sh.printf("%s is already in the extraction list\n", sh.show(p))
				continue
			}
			e, err := sh.Client.Stat(sh.q(), p)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			// A directory replaces what was selected below it.
			kept := sh.sel[:0]
			for _, s := range sh.sel {
				if p != "" && !strings.HasPrefix(s, p+"/") {
					kept = append(kept, s)
				}
			}
			sh.sel = append(kept, p)
			kind := "file"
			if e.IsDir() {
				kind = "directory"
			}
			sh.printf("Added %s %s\n", kind, sh.show(p))
		}
	}
	return errors.Join(errs...)
}

func (sh *Shell) delete(args []word) error {
	if len(args) == 0 {
		return errors.New("usage: delete PATH...")
	}
	var errs []error
	for _, a := range args {
		match, shown, err := sh.selMatcher(a)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		n := len(sh.sel)
		kept := sh.sel[:0]
		for _, s := range sh.sel {
			if !match(s) {
				kept = append(kept, s)
			} else {
				sh.printf("Deleted %s\n", sh.show(s))
			}
		}
		sh.sel = kept
		if len(kept) == n {
			errs = append(errs, fmt.Errorf("%s is not in the extraction list (a path inside a selected directory cannot be taken out; delete the directory and add what you want)", shown))
		}
	}
	return errors.Join(errs...)
}

// selMatcher returns what delete takes out for a word: the path it names,
// or the selected paths its pattern (in the last component) matches.
func (sh *Shell) selMatcher(w word) (func(string) bool, string, error) {
	dirPat, basePat := "", w.Pat
	if k := strings.LastIndexByte(w.Pat, '/'); k >= 0 {
		dirPat, basePat = w.Pat[:k+1], w.Pat[k+1:]
	}
	if !w.Glob || !hasGlob(basePat) || hasGlob(dirPat) {
		p, err := sh.resolve(w.Text)
		if err != nil {
			return nil, "", err
		}
		return func(s string) bool { return s == p }, sh.show(p), nil
	}
	dir, err := sh.resolve(unescapeGlob(dirPat) + ".")
	if err != nil {
		return nil, "", err
	}
	full := basePat
	if dir != "" {
		full = escapeGlob(dir) + "/" + basePat
	}
	if _, err := path.Match(full, ""); err != nil {
		return nil, "", fmt.Errorf("pattern %s is malformed (a literal * ? [ is written \\* \\? \\[)", Escape(w.Text))
	}
	return func(s string) bool { ok, _ := path.Match(full, s); return ok }, Escape(w.Text), nil
}

func (sh *Shell) list(args []string) error {
	if err := nargs(args, 0, 0, "list"); err != nil {
		return err
	}
	if len(sh.sel) == 0 {
		sh.printf("The extraction list is empty.\n")
		return nil
	}
	for _, p := range sh.sel {
		sh.printf("%s\n", sh.show(p))
	}
	return nil
}

func (sh *Shell) clear(args []string) error {
	if err := nargs(args, 0, 0, "clear"); err != nil {
		return err
	}
	sh.sel = nil
	sh.printf("Extraction list cleared.\n")
	return nil
}

func (sh *Shell) find(args []word) error {
	if len(args) != 1 {
		return errors.New("usage: find PATTERN")
	}
	if err := sh.needDisk(); err != nil {
		return err
	}
	// A pattern with a '/' is a path: relative to the current directory,
	// or an absolute client path inside the DLE. Escaped and quoted glob
	// characters match themselves, on the server too (sqlGlob).
	pat := args[0].Pat
	switch {
	case strings.HasPrefix(pat, "/"):
		root := escapeGlob(strings.TrimSuffix(sh.DLE, "/") + "/")
		if !strings.HasPrefix(pat, root) {
			return fmt.Errorf("%s is not inside the DLE %s", Escape(args[0].Text), Escape(sh.DLE))
		}
		pat = strings.TrimPrefix(pat, root)
	case strings.Contains(pat, "/") && sh.Cwd != "":
		pat = escapeGlob(sh.Cwd) + "/" + pat
	}
	if _, err := path.Match(pat, ""); err != nil {
		return fmt.Errorf("pattern %s is malformed (a literal * ? [ is written \\* \\? \\[)", Escape(args[0].Text))
	}
	glob, err := sqlGlob(pat)
	if err != nil {
		return fmt.Errorf("pattern %s: %v", Escape(args[0].Text), err)
	}
	found, more, err := sh.Client.Find(sh.q(), glob, 0)
	if err != nil {
		return err
	}
	for _, e := range found {
		name := sh.show(e.Path)
		if e.IsDir() {
			name += "/"
		}
		date := "?"
		if e.Image < len(sh.chain) {
			date = showDatestamp(sh.chain[e.Image].Datestamp)
		}
		sh.printf("%s  %s\n", date, name)
	}
	switch {
	case len(found) == 0:
		return fmt.Errorf("no name matches \"%s\" in the backup of %s:%s as of %s", Escape(args[0].Text), Escape(sh.Host), Escape(sh.DLE), showDate(sh.Date))
	case more:
		sh.printf("(only the first %d matches are shown; make the pattern narrower)\n", len(found))
	}
	return nil
}

func (sh *Shell) lcd(args []string) error {
	if err := nargs(args, 1, 1, "lcd DIR"); err != nil {
		return err
	}
	d := args[0]
	if !filepath.IsAbs(d) {
		d = filepath.Join(sh.Lcd, d)
	}
	fi, err := os.Stat(d)
	if err != nil {
		return fmt.Errorf("lcd: %v", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("lcd: %s is not a directory", d)
	}
	sh.Lcd = filepath.Clean(d)
	return nil
}

func (sh *Shell) lpwd(args []string) error {
	if err := nargs(args, 0, 0, "lpwd"); err != nil {
		return err
	}
	sh.printf("%s\n", sh.Lcd)
	return nil
}

func (sh *Shell) help(args []string) error {
	for _, c := range commands {
		sh.printf("  %-9s %-12s %s\n", c.name, c.args, c.help)
	}
	return nil
}

func (sh *Shell) ask(q string, def bool) bool {
	if sh.Ask == nil {
		return def
	}
	return sh.Ask(q, def)
}

func (sh *Shell) extract(args []string) error {
	overwrite := false
	for _, a := range args {
		if a != "-o" {
			return errors.New("usage: extract [-o]  (-o: overwrite local files without asking)")
		}
		overwrite = true
	}
	if err := sh.needDisk(); err != nil {
		return err
	}
	if len(sh.sel) == 0 {
		return errors.New("nothing to extract: the extraction list is empty (add PATH)")
	}
	plan, err := sh.Client.PlanNeeds(sh.q(), sh.sel)
	if err != nil {
		return err
	}
	imgs, n := plan.Images, plan.Entries
	if _, err := ImageKeys(sh.q(), imgs, sh.Identities); err != nil {
		return err
	}
	sh.printf("Extracting %d entr%s into %s from:\n", n, pluralY(n), sh.Lcd)
	missing := 0
	for _, im := range imgs {
		sh.printf("  level %d image of %s: %s\n", im.Level, showDatestamp(im.Datestamp), sources(im))
		for _, v := range im.Volumes {
			if !v.Available {
				missing++
			}
		}
	}
	if missing > 0 {
		sh.printf("%d volume%s cannot be read now (see above); what is on them will not be restored.\n", missing, plural(missing))
	}
	if len(plan.Needed) > 0 {
		sh.printf("The following tapes are needed: %s\n", strings.Join(plan.Needed, " "))
	}
	if !sh.ask("Continue?", missing == 0) {
		return errors.New("extract cancelled; nothing was restored")
	}
	ctx := sh.ctx()
	res, err := sh.Client.Restore(ctx, sh.q(), sh.sel, RestoreOptions{
		To:             sh.Lcd,
		SamePrivileges: sh.SamePrivileges || sh.Host == sh.Client.Peer,
		Identities:     sh.Identities,
		Overwrite: func(existing []string, total int) bool {
			if overwrite {
				return true
			}
			sh.printf("%d entr%s already exist under %s, e.g. %s\n", total, pluralY(total), sh.Lcd, strings.Join(existing, ", "))
			return sh.ask("Overwrite them?", false)
		},
		Progress: func(s string) { sh.printf("%s\n", printable(s)) },
		Ask:      func(s string) { sh.printf("%s (waiting; Ctrl-C cancels the extract)\n", printable(s)) },
		Warn:     func(s string) { sh.printf("warning: %s\n", printable(s)) },
	})
	if res != nil {
		for _, f := range res.Failed {
			sh.printf("FAILED %s\n", printable(f))
		}
		if len(res.Skipped) > 0 {
			sh.printf("Skipped %d existing entr%s (extract -o overwrites).\n", len(res.Skipped), pluralY(len(res.Skipped)))
		}
		if d := res.Dropped; d.Count > 0 {
			for _, l := range d.Lines {
				sh.printf("left out: %s\n", printable(l))
			}
			if more := d.Count - len(d.Lines); more > 0 {
				sh.printf("left out: ... and %d more entr%s\n", more, pluralY(more))
			}
			sh.printf("%d entr%s of %s's backup had privileged parts (device nodes, setuid/setgid bits, trusted.*/security.* xattrs) left out; tapir recover --same-privileges restores them.\n", d.Count, pluralY(d.Count), sh.Host)
		}
	}
	var lost *LostError
	if errors.As(err, &lost) {
		// Files may have been written: not run again by itself.
		return noRetry{fmt.Errorf("extract failed: %w", err)}
	}
	if err != nil {
		return fmt.Errorf("extract failed: %w", err)
	}
	switch {
	case res.Restored == 0:
		return fmt.Errorf("extract restored nothing (%d entr%s asked for)", res.Entries, pluralY(res.Entries))
	case !res.OK():
		return fmt.Errorf("extract restored %d of %d entries into %s; %d failed, %d skipped", res.Restored, res.Entries, sh.Lcd, len(res.Failed), len(res.Skipped))
	}
	sh.printf("Restored %d entr%s (%s of file data) into %s.\n", res.Restored, pluralY(res.Restored), bytesize.Format(res.Bytes), sh.Lcd)
	sh.sel = nil
	return nil
}

func sources(im wire.ImageInfo) string {
	if im.Holding || len(im.Volumes) == 0 {
		return "the holding disk"
	}
	var vs []string
	for _, v := range im.Volumes {
		switch {
		case !v.Available:
			vs = append(vs, fmt.Sprintf("volume %s: NOT AVAILABLE: %s", v.Label, v.Missing))
		case v.Where != "":
			vs = append(vs, fmt.Sprintf("volume %s (%s)", v.Label, v.Where))
		default:
			vs = append(vs, "volume "+v.Label)
		}
	}
	return strings.Join(vs, "; ")
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func pluralY(n int) string {
	if n == 1 {
		return "y"
	}
	return "ies"
}

// Complete completes the word before pos of line: a command name as the
// first word, else a path in the backup for commands that take paths, a
// host for sethost, a DLE for setdisk. Completions are spelled as input
// (EscapeWord): a name with blanks, quotes, glob characters, control
// characters or bytes that are not UTF-8 reads back as itself. It
// returns what liner's WordCompleter wants.
func (sh *Shell) Complete(line string, pos int) (head string, completions []string, tail string) {
	head, completions, tail = sh.complete(line, pos)
	var le *LostError
	if sh.Client != nil && errors.As(sh.Client.Lost(), &le) && le.Closed && sh.quietReconnect() {
		// The server restarted since the last command: TAB still works.
		head, completions, tail = sh.complete(line, pos)
	}
	return head, completions, tail
}

func (sh *Shell) complete(line string, pos int) (head string, completions []string, tail string) {
	if pos > len(line) {
		pos = len(line)
	}
	before, tail := line[:pos], line[pos:]
	i := wordStart(before)
	head, typed := before[:i], unescape(before[i:])
	if strings.TrimSpace(head) == "" {
		for _, c := range Commands() {
			if strings.HasPrefix(c, typed) {
				completions = append(completions, c+" ")
			}
		}
		return head, completions, tail
	}
	cmd := ""
	if ws, err := splitWords(head); err == nil && len(ws) > 0 {
		cmd = ws[0]
	}
	kind := compNone
	for _, c := range commands {
		if c.name == cmd {
			kind = c.complete
		}
	}
	if sh.Client != nil && sh.Client.Lost() != nil {
		return head, nil, tail // Complete reconnects when it may
	}
	switch kind {
	case compHosts, compDisks:
		var names []string
		var err error
		if kind == compHosts {
			names, err = sh.Client.Hosts()
		} else if sh.Host != "" {
			names, err = sh.Client.DLEs(sh.Host)
		}
		if err != nil {
			return head, nil, tail
		}
		for _, n := range names {
			if strings.HasPrefix(n, typed) {
				completions = append(completions, EscapeWord(n)+" ")
			}
		}
		return head, completions, tail
	case compPaths:
	default:
		return head, nil, tail
	}
	if sh.chain == nil {
		return head, nil, tail
	}
	dirPart, prefix := "", typed
	if k := strings.LastIndexByte(typed, '/'); k >= 0 {
		dirPart, prefix = typed[:k+1], typed[k+1:]
	}
	dir := sh.Cwd
	if dirPart != "" {
		d, err := sh.resolve(dirPart)
		if err != nil {
			return head, nil, tail
		}
		dir = d
	}
	names, ok := sh.cache[dir]
	if !ok {
		ents, err := sh.Client.List(sh.q(), dir)
		if err != nil {
			return head, nil, tail
		}
		for _, e := range ents {
			n := e.Path
			if e.IsDir() {
				n += "/"
			}
			names = append(names, n)
		}
		if sh.cache == nil || len(sh.cache) > 64 {
			sh.cache = map[string][]string{}
		}
		sh.cache[dir] = names
	}
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			c := EscapeWord(dirPart + n)
			if !strings.HasSuffix(n, "/") {
				c += " "
			}
			completions = append(completions, c)
		}
	}
	return head, completions, tail
}

// wordStart returns where the last word of s begins: after the last blank
// that is not escaped by a backslash or inside quotes (as tokenize reads
// them).
func wordStart(s string) int {
	start, quote := 0, byte(0) // quote: '"', '\'', or 'c' inside $'...'
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && quote != '\'':
			i++
		case quote == 'c':
			if c == '\'' {
				quote = 0
			}
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '$' && i+1 < len(s) && s[i+1] == '\'':
			quote = 'c'
			i++
		case c == '"' || c == '\'':
			quote = c
		case c == ' ' || c == '\t':
			start = i + 1
		}
	}
	return start
}

// unescape undoes what tokenize undoes in a (possibly unfinished) word.
func unescape(w string) string {
	for _, close := range []string{"", `"`, "'"} {
		if ws, err := tokenize(w + close); err == nil && len(ws) == 1 {
			return ws[0].Text
		}
	}
	return w
}
