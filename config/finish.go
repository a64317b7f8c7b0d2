package config

import (
	"github.com/tapir-backup/tapir/internal/dsn"

	"github.com/tapir-backup/tapir/image/crypt"

	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// finisher fills the defaults of a decoded Config, resolves its relative
// paths and validates it, collecting an *Error for every problem.
type finisher struct {
	file  string
	raw   map[string]any
	lines lineIndex
	c     *Config
	errs  []*Error
}

// at builds a key path from strings and array indices.
func at(parts ...any) []string {
	p := make([]string, len(parts))
	for i, x := range parts {
		switch v := x.(type) {
		case string:
			p[i] = v
		case int:
			p[i] = strconv.Itoa(v)
		}
	}
	return p
}

func (f *finisher) errf(p []string, format string, args ...any) {
	f.errs = append(f.errs, &Error{File: f.file, Line: f.lines.lookup(p), Msg: fmt.Sprintf(format, args...)})
}

// has reports whether the key at p is written in the file.
func (f *finisher) has(p []string) bool {
	var cur any = f.raw
	for _, k := range p {
		switch x := cur.(type) {
		case map[string]any:
			v, ok := x[k]
			if !ok {
				return false
			}
			cur = v
		case []map[string]any:
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= len(x) {
				return false
			}
			cur = x[i]
		case []any:
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= len(x) {
				return false
			}
			cur = x[i]
		default:
			return false
		}
	}
	return true
}

// str fills a string with its default when the key is not written, and
// complains when it is written empty.
func (f *finisher) str(v *string, p []string, def string) {
	if !f.has(p) {
		*v = def
	} else if *v == "" {
		f.errf(p, "%s must not be empty", showKey(p))
	}
}

// file fills a path with its default when not written, and resolves it
// against the configuration's directory.
func (f *finisher) path(v *string, p []string, def string) {
	f.str(v, p, def)
	if *v == "" {
		return
	}
	if hasControl(*v) {
		f.errf(p, "%s: %s contains a control character", showKey(p), preview(*v))
	}
	if !filepath.IsAbs(*v) {
		*v = filepath.Join(f.c.Dir, *v)
	}
	*v = filepath.Clean(*v)
}

// catalog fills the catalog location from catalog = "…" or a [catalog]
// table: a file path (resolved like every path), or a PostgreSQL DSN
// (postgres:// or postgresql://), kept as it is and never shown with its
// password.
func (f *finisher) catalog(v *string, p []string, def string) {
	switch x := f.raw["catalog"].(type) {
	case nil:
	case string:
		*v = x
	case map[string]any:
		f.catalogTable(v, x, def)
		return
	default:
		f.errf(p, "catalog: expected a file name, a postgres:// DSN or a [catalog] table, got %s", describe(x))
		return
	}
	if !IsPostgresDSN(*v) {
		f.path(v, p, def)
		return
	}
	f.catalogDSN(v, p)
}

// catalogDSN checks a PostgreSQL DSN, never showing its password.
func (f *finisher) catalogDSN(v *string, p []string) {
	if hasControl(*v) {
		f.errf(p, "%s: %s contains a control character", showKey(p), preview(MaskDSN(*v)))
	}
	u, err := url.Parse(*v)
	if err != nil {
		f.errf(p, "%s: %s is not a PostgreSQL URL (postgres://USER@HOST/DATABASE?PARAMS; keep the password out of the file with a passfile)", showKey(p), preview(MaskDSN(*v)))
		return
	}
	if strings.Trim(u.Path, "/") == "" {
		f.errf(p, "%s: %s names no database; add /DATABASE after the host", showKey(p), preview(MaskDSN(*v)))
	}
}

// catalogTable reads [catalog]: url (a postgres:// DSN) or path (a SQLite
// file), and with url a password_file whose first line is the password, so
// that the configuration itself holds none.
func (f *finisher) catalogTable(v *string, t map[string]any, def string) {
	k := func(key string) []string { return at("catalog", key) }
	get := func(key string) string {
		x, ok := t[key]
		if !ok {
			return ""
		}
		s, ok := x.(string)
		if !ok || s == "" {
			f.errf(k(key), "catalog.%s: expected a non-empty string, got %s", key, describe(x))
		}
		return s
	}
	errs := len(f.errs)
	for _, key := range sortedKeys(t) {
		switch key {
		case "url", "path", "password_file":
		default:
			f.errf(k(key), "unknown key %q in [catalog] (it has url, path and password_file)", "catalog."+key)
		}
	}
	dsnURL, path, pwFile := get("url"), get("path"), get("password_file")
	switch {
	case len(f.errs) > errs:
		return
	case dsnURL != "" && path != "":
		f.errf(k("path"), "[catalog] has both url and path: url selects PostgreSQL, path a SQLite file; keep one")
		return
	case path != "":
		if IsPostgresDSN(path) {
			f.errf(k("path"), "catalog.path %s is a PostgreSQL DSN: write it as catalog.url", preview(MaskDSN(path)))
			return
		}
		if pwFile != "" {
			f.errf(k("password_file"), "catalog.password_file goes with catalog.url (PostgreSQL), not with a SQLite path")
		}
		*v = path
		f.path(v, k("path"), def)
		return
	case dsnURL == "":
		f.errf(at("catalog"), "[catalog] needs url = \"postgres://USER@HOST/DATABASE\" or path = \"FILE\"")
		return
	case !IsPostgresDSN(dsnURL):
		f.errf(k("url"), "catalog.url %s must start with postgres:// or postgresql:// (a SQLite file goes in catalog.path)", preview(dsnURL))
		return
	}
	*v = dsnURL
	f.catalogDSN(v, k("url"))
	if pwFile == "" || len(f.errs) > 0 {
		return
	}
	if !filepath.IsAbs(pwFile) {
		pwFile = filepath.Join(f.c.Dir, pwFile)
	}
	u, err := url.Parse(dsnURL)
	if err != nil {
		return // catalogDSN said so
	}
	if _, ok := u.User.Password(); ok || u.Query().Has("password") {
		f.errf(k("password_file"), "catalog.url already holds a password and catalog.password_file names another: keep the password only in the file")
		return
	}
	fi, err := os.Stat(pwFile)
	if err != nil {
		f.errf(k("password_file"), "catalog.password_file %s: %v", preview(pwFile), errors.Unwrap(err))
		return
	}
	if fi.Mode().Perm()&0o077 != 0 {
		f.errf(k("password_file"), "catalog.password_file %s may be read by others (mode %04o): chmod 600 %s", preview(pwFile), fi.Mode().Perm(), pwFile)
		return
	}
	data, err := os.ReadFile(pwFile)
	if err != nil {
		f.errf(k("password_file"), "catalog.password_file %s: %v", preview(pwFile), err)
		return
	}
	pw, _, _ := strings.Cut(string(data), "\n")
	pw = strings.TrimSuffix(pw, "\r")
	if pw == "" {
		f.errf(k("password_file"), "catalog.password_file %s is empty: its first line is the PostgreSQL password", preview(pwFile))
		return
	}
	name := "tapir"
	if u.User != nil {
		name = u.User.Username()
	}
	u.User = url.UserPassword(name, pw)
	*v = u.String()
}

// IsPostgresDSN reports whether a catalog value selects PostgreSQL.
func IsPostgresDSN(s string) bool { return dsn.IsPostgres(s) }

// MaskDSN returns a PostgreSQL DSN with its password replaced by "xxxxx",
// for messages and for the effective configuration; any other value is
// returned as it is.
func MaskDSN(s string) string { return dsn.Mask(s) }

// num fills an integer with its default and checks its range.
func (f *finisher) num(v *int, p []string, def, lo, hi int) {
	if !f.has(p) {
		*v = def
		return
	}
	if *v < lo || *v > hi {
		f.errf(p, "%s must be between %d and %d, got %d", showKey(p), lo, hi, *v)
	}
}

func (f *finisher) float(v *float64, p []string, def, lo, hi float64) {
	if !f.has(p) {
		*v = def
		return
	}
	if !(*v >= lo && *v <= hi) {
		f.errf(p, "%s must be between %g and %g, got %g", showKey(p), lo, hi, *v)
	}
}

func (f *finisher) size(v *Size, p []string, def, lo, hi Size) {
	if !f.has(p) {
		*v = def
		return
	}
	if *v < lo || *v > hi {
		f.errf(p, "%s must be between %s and %s, got %s", showKey(p), lo, hi, *v)
	}
}

func (f *finisher) oneOf(v *string, p []string, def string, allowed ...string) {
	f.str(v, p, def)
	for _, a := range allowed {
		if *v == a {
			return
		}
	}
	if *v != "" {
		f.errf(p, "%s must be one of %s, got %s", showKey(p), quoteList(allowed), preview(*v))
	}
}

// showKey writes a key path for people: dotted, without array indices.
func showKey(p []string) string {
	var parts []string
	for i, k := range p {
		if i > 0 && (p[i-1] == "dle" || p[i-1] == "holding") && i == 1 {
			continue
		}
		parts = append(parts, quoteKey(k))
	}
	return strings.Join(parts, ".")
}

func quoteList(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = strconv.Quote(x)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return true
		}
	}
	return false
}

var orgRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

func (f *finisher) finish() {
	c := f.c
	f.str(&c.Org, at("org"), "tapir")
	if c.Org != "" && !orgRE.MatchString(c.Org) {
		f.errf(at("org"), "org %s must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit (it is used in paths and volume labels)", preview(c.Org))
	}
	if len(c.Mailto) == 0 {
		c.Mailto = nil
	}
	for _, a := range c.Mailto {
		if _, err := mail.ParseAddress(a); err != nil || hasControl(a) {
			f.errf(at("mailto"), "mailto: %s is not an e-mail address", preview(a))
		}
	}
	f.path(&c.StateDir, at("statedir"), filepath.Join("/var/lib/tapir", c.Org))
	f.catalog(&c.Catalog, at("catalog"), filepath.Join(c.StateDir, "catalog.db"))
	f.path(&c.ReportDir, at("reportdir"), filepath.Join(c.StateDir, "reports"))
	f.path(&c.TLS.CA, at("tls", "ca"), filepath.Join(c.StateDir, "tls", "ca.crt"))
	f.path(&c.TLS.Cert, at("tls", "cert"), filepath.Join(c.StateDir, "tls", "server.crt"))
	f.path(&c.TLS.Key, at("tls", "key"), filepath.Join(c.StateDir, "tls", "server.key"))

	f.num(&c.Dumpcycle, at("dumpcycle"), 7, 1, 10000)
	f.num(&c.Runspercycle, at("runspercycle"), c.Dumpcycle, 1, 10000)
	f.num(&c.Tapecycle, at("tapecycle"), 10, 1, 100000)
	f.num(&c.Runtapes, at("runtapes"), 1, 1, 1000)
	f.num(&c.Inparallel, at("inparallel"), 10, 1, 1000)
	f.num(&c.Maxdumps, at("maxdumps"), 1, 1, 1000)
	f.num(&c.Reserve, at("reserve"), 100, 0, 100)
	f.num(&c.Retries, at("retries"), 1, 0, 10)
	f.num(&c.ResumeAttempts, at("resume_attempts"), 3, 0, 100)
	f.size(&c.Bumpsize, at("bumpsize"), 10*MiB, 0, 1<<62)
	f.float(&c.Bumppercent, at("bumppercent"), 0, 0, 100)
	f.num(&c.Bumpdays, at("bumpdays"), 2, 1, 10000)
	f.float(&c.Bumpmult, at("bumpmult"), 1.5, 1, 1000)
	f.num(&c.Maxpromoteday, at("maxpromoteday"), 10000, 0, 100000)
	f.float(&c.CompRatio, at("comp_ratio"), 0.5, 0.01, 1.1)
	f.float(&c.FutilePercent, at("futile_percent"), 90, 0, 100)
	f.duration(&c.Dtimeout, at("dtimeout"), Duration(30*time.Minute))
	f.duration(&c.ResumeWindow, at("resume_window"), Duration(30*time.Minute))
	f.duration(&c.Etimeout, at("etimeout"), Duration(5*time.Minute))

	f.str(&c.Schedule, at("schedule"), "0 1 * * *")
	if c.Schedule != "" {
		if err := checkSchedule(c.Schedule); err != nil {
			f.errf(at("schedule"), "schedule %s: %v", preview(c.Schedule), err)
		}
	}
	f.str(&c.Timezone, at("timezone"), "Local")
	if c.Timezone != "" {
		loc, err := time.LoadLocation(c.Timezone)
		if err != nil {
			f.errf(at("timezone"), "timezone %s is not a known time zone (use \"Local\", \"UTC\" or a name such as \"Europe/Berlin\")", preview(c.Timezone))
		} else {
			c.loc = loc
		}
	}

	f.mail()
	f.server()
	f.labels()
	f.tapetypes()
	f.changer()
	f.vaults()
	f.holdings()
	f.dumptypes()
	f.dles()
	f.hosts()
}

func (f *finisher) mail() {
	m := &f.c.Mail
	k := func(key string) []string { return at("mail", key) }
	f.str(&m.Server, k("server"), "localhost:25")
	if m.Server != "" {
		if host, port, err := net.SplitHostPort(m.Server); err != nil || host == "" || port == "" {
			f.errf(k("server"), "mail.server %s must be host:port, e.g. \"localhost:25\" or \"smtp.example.com:587\"", preview(m.Server))
		}
	}
	if m.From != "" {
		if _, err := mail.ParseAddress(m.From); err != nil || hasControl(m.From) {
			f.errf(k("from"), "mail.from: %s is not an e-mail address", preview(m.From))
		}
	}
	f.oneOf(&m.StartTLS, k("starttls"), "auto", "auto", "always", "never")
	if f.has(k("ca")) {
		f.path(&m.CA, k("ca"), "")
	}
	if f.has(k("password_file")) {
		f.path(&m.PasswordFile, k("password_file"), "")
	}
	if m.Username != "" && m.PasswordFile == "" {
		f.errf(k("username"), "mail.username is set but mail.password_file is not; put the password in a file (chmod 600) and name it there")
	}
	if m.Username == "" && m.PasswordFile != "" {
		f.errf(k("password_file"), "mail.password_file is set but mail.username is not")
	}
	f.duration(&m.Timeout, k("timeout"), Duration(time.Minute))
	f.oneOf(&m.SendOn, k("send_on"), "all", "all", "strange", "error", "never")
}

func (f *finisher) server() {
	s := &f.c.Server
	for _, x := range []struct {
		v   *string
		key string
		def string
	}{{&s.IndexListen, "index_listen", ":10082"}, {&s.MetricsListen, "metrics_listen", "127.0.0.1:9233"}} {
		p := at("server", x.key)
		if !f.has(p) {
			*x.v = x.def
			continue
		}
		if *x.v == "" {
			continue // that service is off
		}
		if _, port, err := net.SplitHostPort(*x.v); err != nil || port == "" {
			f.errf(p, "server.%s %s must be [host]:port, e.g. %q", x.key, preview(*x.v), x.def)
		}
	}
	f.str(&s.Name, at("server", "name"), f.c.Org)
	if !orgRE.MatchString(s.Name) {
		f.errf(at("server", "name"), "server.name %s must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", preview(s.Name))
	}
	if f.has(at("server", "advertise")) {
		if h, port, err := net.SplitHostPort(s.Advertise); s.Advertise != "" && (err != nil || h == "" || port == "") {
			f.errf(at("server", "advertise"), "server.advertise %s must be host:port, where the other tapir servers reach this one's index server, e.g. %q", preview(s.Advertise), "backup1.example.com:10082")
		}
	} else if s.IndexListen != "" {
		s.Advertise = s.IndexListen
		if h, port, err := net.SplitHostPort(s.IndexListen); err == nil {
			if ip := net.ParseIP(h); h == "" || (ip != nil && ip.IsUnspecified()) {
				if name, err := os.Hostname(); err == nil {
					h = name
				}
			}
			s.Advertise = net.JoinHostPort(h, port)
		}
	}
}

func (f *finisher) duration(v *Duration, p []string, def Duration) {
	if !f.has(p) {
		*v = def
	} else if *v < Duration(time.Second) {
		f.errf(p, "%s must be at least 1s, got %s", showKey(p), *v)
	}
}

func (f *finisher) labels() {
	c := f.c
	f.str(&c.Labelstr, at("labelstr"), "^"+regexp.QuoteMeta(c.Org)+"-[0-9]{3}$")
	if c.Labelstr != "" {
		re, err := regexp.Compile(c.Labelstr)
		if err != nil {
			f.errf(at("labelstr"), "labelstr %s is not a valid regular expression: %v", preview(c.Labelstr), err)
			return
		}
		c.labelRe = re
	}
	if !f.has(at("autolabel_media")) || len(c.AutolabelMedia) == 0 {
		c.AutolabelMedia = []string{ClaimBlank}
	}
	for _, m := range c.AutolabelMedia {
		switch m {
		case ClaimBlank, ClaimOtherConfig, ClaimNonTapir, ClaimUnreadable, ClaimAny:
		default:
			f.errf(at("autolabel_media"), "autolabel_media: %s is not one of \"blank\", \"other-config\", \"non-tapir\", \"unreadable\" or \"any\"", preview(m))
		}
	}
	if !f.has(at("autolabel")) {
		c.Autolabel = c.Org + "-%%%"
	}
	if c.Autolabel == "" {
		return // never label volumes automatically
	}
	// Point at the autolabel line, or at labelstr when only that is written.
	p := at("autolabel")
	if !f.has(p) {
		p = at("labelstr")
	}
	if !strings.Contains(c.Autolabel, "%") {
		f.errf(p, "autolabel %s must contain a run of %% for the volume number, e.g. %q", preview(c.Autolabel), c.Org+"-%%%")
		return
	}
	l := fillTemplate(c.Autolabel, 1)
	switch {
	case strings.ContainsFunc(l, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		f.errf(p, "autolabel %s must not contain blanks or control characters", preview(c.Autolabel))
	case len(l) > 128:
		f.errf(p, "autolabel %s makes labels longer than 128 bytes", preview(c.Autolabel))
	case c.labelRe != nil && !c.labelRe.MatchString(l):
		f.errf(p, "autolabel %s makes label %q, which labelstr %s does not match; change one of them", preview(c.Autolabel), l, preview(c.Labelstr))
	}
}

func (f *finisher) tapetypes() {
	c := f.c
	if c.Tapetypes == nil {
		c.Tapetypes = map[string]Tapetype{}
	}
	if _, ok := c.Tapetypes["default"]; !ok {
		c.Tapetypes["default"] = DefaultTapetype()
	}
	for _, name := range sortedNames(c.Tapetypes) {
		t := c.Tapetypes[name]
		p := at("tapetype", name)
		f.name(p, "tapetype", name)
		f.size(&t.Blocksize, at("tapetype", name, "blocksize"), 256*KiB, 32*KiB, MiB)
		if t.Blocksize%KiB != 0 {
			f.errf(at("tapetype", name, "blocksize"), "%s must be a multiple of 1 KiB, got %s", showKey(at("tapetype", name, "blocksize")), t.Blocksize)
		}
		f.size(&t.Speed, at("tapetype", name, "speed"), DefaultSpeed, MiB, 100*GiB)
		f.size(&t.MinRate, at("tapetype", name, "min_rate"), 0, 0, 100*GiB)
		if mp := at("tapetype", name, "min_rate"); f.has(mp) && t.MinRate > t.Speed {
			f.errf(mp, "%s (%s per second) must not be more than the drive's speed (%s per second)", showKey(mp), t.MinRate, t.Speed)
		}
		lp := at("tapetype", name, "length")
		switch {
		case f.has(lp):
			if t.Length < 2*t.Blocksize {
				f.errf(lp, "%s must be at least two blocks (%s), got %s", showKey(lp), 2*t.Blocksize, t.Length)
			}
		case name == "default":
			t.Length = DefaultTapetype().Length
		default:
			f.errf(p, "tapetype %s has no length; add length = <capacity of one volume>, e.g. length = \"1500 GB\"", quoteKey(name))
		}
		c.Tapetypes[name] = t
	}
}

// name checks the name of a [kind.NAME] table.
func (f *finisher) name(p []string, kind, name string) {
	if name == "" || hasControl(name) {
		f.errf(p, "%s name %s must be non-empty and without control characters", kind, preview(name))
	}
}

func sortedNames[T any](m map[string]T) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

func (f *finisher) changer() {
	c := f.c
	ch := &c.Changer
	f.oneOf(&ch.Type, at("changer", "type"), "disk", "disk", "single", "robot")
	f.path(&ch.Path, at("changer", "path"), filepath.Join(c.StateDir, "vtapes"))
	if ch.Type == "robot" && !f.has(at("changer", "slots")) {
		ch.Slots = 0 // the library says; only ChainWarnings would use it
	} else {
		f.num(&ch.Slots, at("changer", "slots"), 12, 1, 10000)
	}
	f.str(&ch.Tapetype, at("changer", "tapetype"), "default")
	if _, ok := c.Tapetypes[ch.Tapetype]; !ok && ch.Tapetype != "" {
		f.errf(at("changer", "tapetype"), "changer.tapetype %s names no [tapetype.%s] table (known: %s)", preview(ch.Tapetype), quoteKey(ch.Tapetype), strings.Join(sortedNames(c.Tapetypes), ", "))
	}
	f.device(&ch.Device, at("changer", "device"), ch.Type == "single" || (ch.Type == "robot" && (len(ch.Drives) == 0 || ch.Device != "")), `"single" or "robot"`, "/dev/nst0")
	f.device(&ch.Changer, at("changer", "changer_device"), ch.Type == "robot", `"robot"`, "/dev/sg3")
	k := func(key string) []string { return at("changer", key) }
	f.duration0(&ch.Wait, k("wait"), 0)
	f.num(&ch.Tapers, k("tapers"), 1, 1, 64)
	if ch.Type == "disk" && ch.Tapers > ch.Slots && ch.Slots > 0 {
		f.errf(k("tapers"), "changer.tapers = %d, but the disk changer has %d slot(s): each vtape drive needs a slot of its own; add slots or lower tapers", ch.Tapers, ch.Slots)
	}
	if ch.Type == "single" && ch.Tapers > 1 {
		f.errf(k("tapers"), "changer.tapers = %d, but a \"single\" changer has one drive; use a \"robot\" changer (or \"disk\" vtapes) to write several volumes at once", ch.Tapers)
	}
	f.duration(&ch.Poll, k("poll"), Duration(10*time.Second))
	f.duration(&ch.Remind, k("remind"), Duration(30*time.Minute))
	switch {
	case ch.Type == "disk":
		if f.has(k("drive_options")) {
			f.errf(k("drive_options"), "changer.drive_options is a setting of a tape drive (\"single\" or \"robot\"), but changer.type is %q", ch.Type)
		}
		ch.DriveOptions = nil
	case !f.has(k("drive_options")):
		ch.DriveOptions = []string{"scsi2logical"}
	case ch.DriveOptions == nil:
		ch.DriveOptions = []string{}
	}
	for _, o := range ch.DriveOptions {
		if o != "scsi2logical" {
			f.errf(k("drive_options"), "changer.drive_options: %s is not an st option tapir sets; the only one is \"scsi2logical\" (or [] for none)", preview(o))
		}
	}
	if ch.Type != "robot" {
		for _, key := range []string{"mtx", "drives", "drive", "state_file", "ignore_barcodes", "no_eject_to_unload"} {
			if f.has(k(key)) {
				f.errf(k(key), "changer.%s is a setting of the robot changer, but changer.type is %q", key, ch.Type)
			}
		}
		return
	}
	f.str(&ch.MTX, k("mtx"), "mtx")
	if len(ch.Drives) == 0 && ch.Device != "" {
		ch.Drives = []string{ch.Device}
	}
	for i := range ch.Drives {
		f.device(&ch.Drives[i], k("drives"), true, `"robot"`, "/dev/nst0")
	}
	f.num(&ch.Drive, k("drive"), 0, 0, 1000)
	switch {
	case ch.Drive >= len(ch.Drives) && len(ch.Drives) > 0:
		f.errf(k("drive"), "changer.drive = %d, but changer.drives lists %d drive(s) (numbered from 0, as mtx numbers them)", ch.Drive, len(ch.Drives))
	case ch.Device != "" && ch.Device != ch.Drives[ch.Drive]:
		f.errf(at("changer", "device"), "changer.device %s is not drive %d of changer.drives (%s); name the drive once, in drives with drive, or in device", preview(ch.Device), ch.Drive, ch.Drives[ch.Drive])
	case ch.Drive+ch.Tapers > len(ch.Drives) && len(ch.Drives) > 0:
		f.errf(k("tapers"), "changer.tapers = %d from changer.drive = %d needs drives %d to %d, but changer.drives lists %d drive(s); list every drive tapir may use in drives", ch.Tapers, ch.Drive, ch.Drive, ch.Drive+ch.Tapers-1, len(ch.Drives))
	case len(ch.Drives) > 0:
		ch.Device = ch.Drives[ch.Drive] // the first drive tapir uses
	}
	f.path(&ch.StateFile, k("state_file"), filepath.Join(c.StateDir, "changer-state.json"))
}

// duration0 is duration that allows 0.
func (f *finisher) duration0(v *Duration, p []string, def Duration) {
	if !f.has(p) {
		*v = def
	} else if *v < 0 {
		f.errf(p, "%s must not be negative, got %s", showKey(p), *v)
	}
}

// device checks a device path: required when used by the changer type,
// an error when set but unused (the volumes would silently go elsewhere).
func (f *finisher) device(v *string, p []string, used bool, types, example string) {
	key := showKey(p)
	switch {
	case used && *v == "":
		f.errf(at("changer", "type"), "changer type %q needs %s, e.g. %s = %q", f.c.Changer.Type, key, p[len(p)-1], example)
	case !used && *v != "":
		f.errf(p, "%s is set but changer.type is %q; set type = %s, or remove %s", key, f.c.Changer.Type, types, p[len(p)-1])
	case *v != "" && (!strings.HasPrefix(*v, "/") || hasControl(*v)):
		f.errf(p, "%s must be an absolute path such as %q, got %s", key, example, preview(*v))
	case *v != "":
		*v = filepath.Clean(*v)
	}
}

func (f *finisher) holdings() {
	c := f.c
	if len(c.Holding) == 0 {
		c.Holding = nil
	}
	seen := map[string]int{}
	for i := range c.Holding {
		h := &c.Holding[i]
		pp := at("holding", i, "path")
		if !f.has(pp) {
			f.errf(at("holding", i), "[[holding]] has no path; add path = \"/var/spool/tapir\" or similar")
		}
		f.path(&h.Path, pp, "")
		f.size(&h.Chunksize, at("holding", i, "chunksize"), GiB, MiB, 1<<62)
		if h.Path == "" {
			continue
		}
		if j, ok := seen[h.Path]; ok {
			f.errf(pp, "holding disk %s is listed twice (also at line %d)", preview(h.Path), f.lines.lookup(at("holding", j)))
		}
		seen[h.Path] = i
	}
}

func (f *finisher) dumptypes() {
	c := f.c
	if c.Dumptypes == nil {
		c.Dumptypes = map[string]Dumptype{}
	}
	if _, ok := c.Dumptypes["default"]; !ok {
		c.Dumptypes["default"] = DefaultDumptype()
	}
	for _, name := range sortedNames(c.Dumptypes) {
		d := c.Dumptypes[name]
		k := func(key string) []string { return at("dumptype", name, key) }
		f.name(at("dumptype", name), "dumptype", name)
		f.oneOf(&d.Compress, k("compress"), CompressClientZstd, CompressClientZstd, CompressClientGzip, CompressServerZstd, CompressNone)
		def, lo, hi := 1, 1, 19
		switch d.Compress {
		case CompressClientGzip:
			def, lo, hi = 6, 1, 9
		case CompressNone:
			def, lo, hi = 0, 0, 0
		}
		if d.Compress == CompressNone && f.has(k("compress_level")) {
			f.errf(k("compress_level"), "%s has no meaning with compress = \"none\"; remove it", showKey(k("compress_level")))
		} else {
			f.num(&d.CompressLevel, k("compress_level"), def, lo, hi)
		}
		f.size(&d.FrameSize, k("frame_size"), MiB, 64*KiB, 64*MiB)
		if len(d.Exclude) == 0 {
			d.Exclude = nil
		}
		for _, pat := range d.Exclude {
			if _, err := path.Match(pat, ""); err != nil || pat == "" || hasControl(pat) {
				f.errf(k("exclude"), "%s: %s is not a valid pattern (use *, ? and [...] as in GNU tar --exclude)", showKey(k("exclude")), preview(pat))
			}
		}
		if len(d.ExcludeList) == 0 {
			d.ExcludeList = nil
		}
		for _, l := range d.ExcludeList {
			if l == "" || hasControl(l) {
				f.errf(k("exclude_list"), "%s: %s is not a file name", showKey(k("exclude_list")), preview(l))
			}
		}
		f.oneOf(&d.Strategy, k("strategy"), "standard", "standard", "nofull", "noinc", "skip", "incronly")
		if d.OneFilesystem == nil {
			t := true
			d.OneFilesystem = &t
		}
		f.oneOf(&d.Priority, k("priority"), "medium", "low", "medium", "high")
		f.oneOf(&d.Holding, k("holding"), "auto", "auto", "never", "required")
		f.encryption(&d, k)
		f.consistency(&d, k)
		c.Dumptypes[name] = d
	}
}

// maxArgv bounds the argv of a client command (the agent's own limit).
const maxArgv = 64

// consistency checks the snapshot, command DLE and hook settings of a
// dumptype: argv lists with an absolute program, the settings each
// snapshot kind needs and no others, and a command DLE's full-only rule.
func (f *finisher) consistency(d *Dumptype, k func(string) []string) {
	argv := func(v *[]string, key string, required bool) {
		if len(*v) == 0 {
			*v = nil
			if required {
				f.errf(k("snapshot"), "%s is required here: give the command as a list, e.g. [\"/etc/tapir/exec/script\", \"arg\"]", showKey(k(key)))
			}
			return
		}
		switch {
		case len(*v) > maxArgv:
			f.errf(k(key), "%s has %d words: at most %d", showKey(k(key)), len(*v), maxArgv)
		case !strings.HasPrefix((*v)[0], "/") || path.Clean((*v)[0]) != (*v)[0]:
			f.errf(k(key), "%s: the program %s must be an absolute, clean path on the client (the agent runs no shell and searches no PATH)", showKey(k(key)), preview((*v)[0]))
		}
		for _, a := range *v {
			if strings.ContainsRune(a, 0) || len(a) > 4096 {
				f.errf(k(key), "%s: the word %s holds a NUL byte or is longer than 4096 bytes", showKey(k(key)), preview(a))
			}
		}
	}
	f.oneOf(&d.Snapshot, k("snapshot"), SnapshotNone, SnapshotNone, SnapshotBtrfs, SnapshotLVM, SnapshotZFS, SnapshotCommand)
	argv(&d.SnapshotCreate, "snapshot_create", d.Snapshot == SnapshotCommand)
	argv(&d.SnapshotRemove, "snapshot_remove", d.Snapshot == SnapshotCommand)
	if d.Snapshot != SnapshotCommand {
		for _, key := range []string{"snapshot_create", "snapshot_remove"} {
			if f.has(k(key)) {
				f.errf(k(key), "%s is for snapshot = \"command\" only; remove it or set snapshot = \"command\"", showKey(k(key)))
			}
		}
	}
	switch {
	case d.Snapshot == SnapshotLVM && d.SnapshotSize == "":
		f.errf(k("snapshot"), "snapshot = \"lvm\" needs %s: the copy-on-write space of the snapshot, as lvcreate takes it (\"2G\", \"20%%ORIGIN\")", showKey(k("snapshot_size")))
	case d.Snapshot != SnapshotLVM && d.SnapshotSize != "":
		f.errf(k("snapshot_size"), "%s is for snapshot = \"lvm\" only; remove it", showKey(k("snapshot_size")))
	case d.SnapshotSize != "" && !lvmSizeRE.MatchString(d.SnapshotSize):
		f.errf(k("snapshot_size"), "%s %s: want a size as lvcreate -L takes it (\"2G\", \"512M\") or extents as -l takes them (\"20%%ORIGIN\", \"100%%FREE\")", showKey(k("snapshot_size")), preview(d.SnapshotSize))
	}
	argv(&d.Command, "command", false)
	argv(&d.RestoreCommand, "restore_command", false)
	argv(&d.Pre, "pre", false)
	argv(&d.Post, "post", false)
	f.duration(&d.HookTimeout, k("hook_timeout"), Duration(5*time.Minute))
	if d.RestoreCommand != nil && d.Command == nil {
		f.errf(k("restore_command"), "%s is for command DLEs only (a dumptype with command = [...]); remove it", showKey(k("restore_command")))
	}
	if d.Command == nil {
		return
	}
	if f.has(k("strategy")) && d.Strategy != "noinc" && d.Strategy != "skip" {
		f.errf(k("strategy"), "%s = %q with command = [...]: a command DLE is dumped in full only; use strategy = \"noinc\" (a full every run, the default for command DLEs) or \"skip\"", showKey(k("strategy")), d.Strategy)
	} else if !f.has(k("strategy")) {
		d.Strategy = "noinc"
	}
	if len(d.Exclude) > 0 {
		f.errf(k("exclude"), "%s has no meaning for a command DLE (nothing is walked); remove it", showKey(k("exclude")))
	}
	if len(d.ExcludeList) > 0 {
		f.errf(k("exclude_list"), "%s has no meaning for a command DLE (nothing is walked); remove it", showKey(k("exclude_list")))
	}
}

// lvmSizeRE is what lvcreate takes as -L (a size with a unit) or -l
// (extents, a percentage of something).
var lvmSizeRE = regexp.MustCompile(`^([0-9]+(\.[0-9]+)?[bBsSkKmMgGtTpPeE]?|[0-9]+%(VG|FREE|ORIGIN|PVS))$`)

// encryption fills Encrypt (client when recipients are given) and reads
// the recipients, files included, into AgeRecipients.
func (f *finisher) encryption(d *Dumptype, k func(string) []string) {
	if len(d.Recipients) == 0 {
		d.Recipients = nil
	}
	if len(d.RecipientFiles) == 0 {
		d.RecipientFiles = nil
	}
	given := d.Recipients != nil || d.RecipientFiles != nil
	def := EncryptNone
	if given {
		def = EncryptClient
	}
	f.oneOf(&d.Encrypt, k("encrypt"), def, EncryptNone, EncryptClient, EncryptServer)
	for i := range d.RecipientFiles {
		f.path(&d.RecipientFiles[i], k("recipient_files"), "")
	}
	switch {
	case d.Encrypt == EncryptNone && given:
		f.errf(k("encrypt"), "%s = \"none\" but the dumptype has recipients: remove recipients and recipient_files, or set encrypt = \"client\"", showKey(k("encrypt")))
	case d.Encrypt == EncryptClient && d.Compress == CompressServerZstd:
		f.errf(k("encrypt"), "%s = \"client\" with compress = \"server-zstd\": the server cannot compress what the client encrypted; use compress = \"client-zstd\", or encrypt = \"server\"", showKey(k("encrypt")))
	case d.Encrypt != EncryptNone && !given:
		f.errf(k("encrypt"), "%s = %q needs recipients = [\"age1…\"] or recipient_files (tapir key new makes a key and prints its recipient)", showKey(k("encrypt")), d.Encrypt)
	case d.Encrypt != EncryptNone:
		rs, err := crypt.ParseRecipients(d.Recipients, d.RecipientFiles)
		if err != nil {
			key := k("recipients")
			if !f.has(key) {
				key = k("recipient_files")
			}
			f.errf(key, "%s: %v", showKey(key), err)
			return
		}
		d.AgeRecipients = rs
	}
}

func (f *finisher) dles() {
	c := f.c
	if len(c.DLEs) == 0 {
		c.DLEs = nil
	}
	type key struct{ host, path string }
	seen := map[key]int{}
	for i := range c.DLEs {
		d := &c.DLEs[i]
		d.Line = f.lines.lookup(at("dle", i))
		hp, pp := at("dle", i, "host"), at("dle", i, "path")
		switch {
		case !f.has(hp):
			f.errf(at("dle", i), "[[dle]] has no host; add host = \"<client host name>\"")
		case checkHostName(d.Host) != nil:
			f.errf(hp, "dle.host: %v", checkHostName(d.Host))
		default:
			d.Host = strings.ToLower(d.Host)
		}
		switch {
		case !f.has(pp):
			f.errf(at("dle", i), "[[dle]] has no path; add path = \"/absolute/path/on/the/client\"")
		case !strings.HasPrefix(d.Path, "/"):
			f.errf(pp, "dle.path %s must be an absolute path on the client", preview(d.Path))
		case hasControl(d.Path):
			f.errf(pp, "dle.path %s contains a control character", preview(d.Path))
		case path.Clean(d.Path) != d.Path:
			f.errf(pp, "dle.path %s is not clean; write %q", preview(d.Path), path.Clean(d.Path))
		}
		f.str(&d.Dumptype, at("dle", i, "dumptype"), "default")
		if _, ok := c.Dumptypes[d.Dumptype]; !ok && d.Dumptype != "" {
			f.errf(at("dle", i, "dumptype"), "dle.dumptype %s names no [dumptype.%s] table (known: %s)", preview(d.Dumptype), quoteKey(d.Dumptype), strings.Join(sortedNames(c.Dumptypes), ", "))
		}
		if d.Host == "" || d.Path == "" {
			continue
		}
		k := key{d.Host, d.Path}
		if j, ok := seen[k]; ok {
			f.errf(at("dle", i), "duplicate DLE %s:%s (first at line %d); each host and path may be listed once", d.Host, d.Path, c.DLEs[j].Line)
			continue
		}
		seen[k] = i
	}
}

func (f *finisher) hosts() {
	c := f.c
	hosts := map[string]Host{}
	for _, name := range sortedNames(c.Hosts) {
		h := c.Hosts[name]
		p := at("host", name)
		if err := checkHostName(name); err != nil {
			f.errf(p, "[host.%s]: %v", quoteKey(name), err)
			continue
		}
		lname := strings.ToLower(name)
		if _, dup := hosts[lname]; dup {
			f.errf(p, "[host.%s] is defined twice (host names are case-insensitive)", quoteKey(name))
			continue
		}
		ap := at("host", name, "address")
		f.str(&h.Address, ap, net.JoinHostPort(lname, strconv.Itoa(DefaultClientPort)))
		if h.Address != "" {
			addr, err := checkAddress(h.Address)
			if err != nil {
				f.errf(ap, "%s: %v", showKey(ap), err)
			}
			h.Address = addr
		}
		hosts[lname] = h
	}
	for _, d := range c.DLEs {
		if _, ok := hosts[d.Host]; !ok && d.Host != "" && checkHostName(d.Host) == nil {
			hosts[d.Host] = Host{Address: net.JoinHostPort(d.Host, strconv.Itoa(DefaultClientPort))}
		}
	}
	c.Hosts = hosts
	if len(hosts) == 0 {
		c.Hosts = nil
	}
}

// checkHostName accepts an IP address or a DNS name usable in a
// certificate: labels of 1 to 63 letters, digits and '-', not starting or
// ending with '-', 253 bytes at most.
func checkHostName(h string) error {
	if net.ParseIP(h) != nil {
		return nil
	}
	bad := fmt.Errorf("%s is not a valid host name: use a DNS name (letters, digits, '-' and '.') or an IP address, as in the client's certificate", preview(h))
	if h == "" || len(h) > 253 {
		return bad
	}
	for _, l := range strings.Split(h, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return bad
		}
		for i := 0; i < len(l); i++ {
			ch := l[i]
			if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-') {
				return bad
			}
		}
	}
	return nil
}

// checkAddress validates host:port (a missing port means the default) and
// returns it with the port.
func checkAddress(a string) (string, error) {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		if strings.Contains(a, ":") && net.ParseIP(a) == nil {
			return a, fmt.Errorf("%s is not host:port (write IPv6 addresses as \"[::1]:%d\")", preview(a), DefaultClientPort)
		}
		host, port = a, strconv.Itoa(DefaultClientPort)
	}
	if err := checkHostName(host); err != nil {
		return a, err
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return a, fmt.Errorf("%s: port %q must be a number from 1 to 65535", preview(a), port)
	}
	return net.JoinHostPort(host, strconv.Itoa(n)), nil
}

var cronDescriptors = map[string]bool{
	"@yearly": true, "@annually": true, "@monthly": true, "@weekly": true,
	"@daily": true, "@midnight": true, "@hourly": true,
}

// checkSchedule checks a cron expression: first loosely, to say plainly
// what is wrong with the common mistakes (the number of fields, a stray
// character), then with robfig/cron's standard parser, the very one the
// server uses (server/daemon.go parseSchedule), so that a schedule that
// passes `tapir config check` is one the server starts with ("99 99 * * *"
// has five fields of cron characters, but no minute 99).
func checkSchedule(s string) error {
	if err := checkScheduleShape(strings.TrimSpace(s)); err != nil {
		return err
	}
	if _, err := cron.ParseStandard(s); err != nil {
		return err
	}
	return nil
}

// checkScheduleShape is the loose check: five fields of cron characters, or
// a descriptor such as "@daily" or "@every 6h".
func checkScheduleShape(s string) error {
	if strings.HasPrefix(s, "@") {
		if cronDescriptors[s] {
			return nil
		}
		if d, ok := strings.CutPrefix(s, "@every "); ok {
			if v, err := time.ParseDuration(strings.TrimSpace(d)); err == nil && v > 0 {
				return nil
			}
			return fmt.Errorf("@every needs a positive duration such as \"@every 6h\"")
		}
		return fmt.Errorf("unknown descriptor; use @daily, @hourly, @weekly, @monthly, @yearly or @every <duration>")
	}
	fields := strings.Fields(s)
	if len(fields) != 5 {
		return fmt.Errorf("want 5 fields (minute hour day-of-month month day-of-week), got %d", len(fields))
	}
	for _, fl := range fields {
		for _, r := range fl {
			if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || strings.ContainsRune("*,/-?", r)) {
				return fmt.Errorf("field %q has the character %q, which cron does not know", fl, r)
			}
		}
	}
	return nil
}

// maxVaults bounds the [[vault]] tables of a file.
const maxVaults = 16

// vaults fills and checks the vaults: each as vault does, then against
// each other: their names, labels and changers must all differ.
func (f *finisher) vaults() {
	c := f.c
	_, one := f.raw["vault"].(map[string]any)
	prefix := func(i int) []any {
		if one {
			return []any{"vault"}
		}
		return []any{"vault", i}
	}
	if len(c.Vaults) > maxVaults {
		// Each is checked against every other: a bound keeps that short.
		f.errf(at(prefix(maxVaults)...), "%d [[vault]] tables: at most %d (each is a label set with its own changer)", len(c.Vaults), maxVaults)
		return
	}
	for i := range c.Vaults {
		f.vault(&c.Vaults[i], prefix(i))
	}
	for j := range c.Vaults {
		for i := range j {
			a, b := &c.Vaults[i], &c.Vaults[j]
			k := func(key ...string) []string {
				p := prefix(j)
				for _, x := range key {
					p = append(p, x)
				}
				return at(p...)
			}
			switch {
			case a.Name == b.Name:
				f.errf(k("name"), "two vaults are named %s: give each [[vault]] a name of its own (name = \"offsite\", name = \"dr-site\"); tapir vault --to names one", preview(a.Name))
			case a.Labelstr == b.Labelstr || (a.labelRe != nil && b.Autolabel != "" && a.labelRe.MatchString(fillTemplate(b.Autolabel, 1))) ||
				(b.labelRe != nil && a.Autolabel != "" && b.labelRe.MatchString(fillTemplate(a.Autolabel, 1))):
				f.errf(k("labelstr"), "vaults %s and %s share labels (labelstr %s and %s, autolabel %s and %s): each vault needs a label set of its own, or one would overwrite the other's copies",
					preview(a.Name), preview(b.Name), preview(a.Labelstr), preview(b.Labelstr), preview(a.Autolabel), preview(b.Autolabel))
			case a.Changer.Type == "disk" && b.Changer.Type == "disk" && a.Changer.Path == b.Changer.Path:
				f.errf(k("changer", "path"), "vaults %s and %s have the same changer directory %s: each needs slots of its own", preview(a.Name), preview(b.Name), preview(a.Changer.Path))
			case a.Changer.Type != "disk" && b.Changer.Type != "disk" && a.Changer.Device != "" && a.Changer.Device == b.Changer.Device:
				f.errf(k("changer", "device"), "vaults %s and %s have the same drive %s: each needs a drive of its own", preview(a.Name), preview(b.Name), preview(a.Changer.Device))
			case a.Changer.StateFile == b.Changer.StateFile:
				f.errf(k("changer", "state_file"), "vaults %s and %s have the same changer state file %s: give each its own", preview(a.Name), preview(b.Name), preview(a.Changer.StateFile))
			}
		}
	}
}

// vault fills and checks one vault, whose keys are at prefix ([vault] or
// the [[vault]] element): its changer like [changer] (fewer options: one
// drive), its labels, which must never be those of the volumes it copies
// from.
func (f *finisher) vault(v *Vault, prefix []any) {
	c := f.c
	k := func(key ...string) []string {
		p := append([]any(nil), prefix...)
		for _, x := range key {
			p = append(p, x)
		}
		return at(p...)
	}
	f.str(&v.Name, k("name"), "offsite")
	if !orgRE.MatchString(v.Name) {
		f.errf(k("name"), "vault.name %s must be 1 to 64 letters, digits, '.', '_' or '-'", preview(v.Name))
		return
	}
	// The defaults follow the name: "offsite" keeps those of a lone
	// [vault] (<statedir>/offsite, <org>-Offsite-NNN).
	set := v.Name
	if set == "offsite" {
		set = "Offsite"
	}
	ch := &v.Changer
	f.oneOf(&ch.Type, k("changer", "type"), "disk", "disk", "single", "robot")
	f.path(&ch.Path, k("changer", "path"), filepath.Join(c.StateDir, v.Name))
	if ch.Type == "robot" && !f.has(k("changer", "slots")) {
		ch.Slots = 0
	} else {
		f.num(&ch.Slots, k("changer", "slots"), 12, 1, 10000)
	}
	f.str(&ch.Tapetype, k("changer", "tapetype"), c.Changer.Tapetype)
	if _, ok := c.Tapetypes[ch.Tapetype]; !ok {
		f.errf(k("changer", "tapetype"), "vault.changer.tapetype %s names no [tapetype.%s] table (known: %s)", preview(ch.Tapetype), quoteKey(ch.Tapetype), strings.Join(sortedNames(c.Tapetypes), ", "))
	}
	f.device(&ch.Device, k("changer", "device"), ch.Type == "single" || (ch.Type == "robot" && (len(ch.Drives) == 0 || ch.Device != "")), `"single" or "robot"`, "/dev/nst1")
	f.device(&ch.Changer, k("changer", "changer_device"), ch.Type == "robot", `"robot"`, "/dev/sg4")
	ch.Tapers = 1
	f.duration0(&ch.Poll, k("changer", "poll"), Duration(10*time.Second))
	f.duration0(&ch.Remind, k("changer", "remind"), Duration(30*time.Minute))
	if !f.has(k("changer", "drive_options")) {
		ch.DriveOptions = []string{"scsi2logical"}
	}
	if ch.MTX == "" {
		ch.MTX = "mtx"
	}
	if len(ch.Drives) == 0 && ch.Device != "" {
		ch.Drives = []string{ch.Device}
	}
	f.path(&ch.StateFile, k("changer", "state_file"), filepath.Join(c.StateDir, v.Name+"-changer-state.json"))
	f.num(&v.Tapecycle, k("tapecycle"), c.Tapecycle, 1, 100000)
	f.num(&v.Runtapes, k("runtapes"), 10, 1, 1000)
	f.num(&v.SinceDays, k("since_days"), 0, 0, 100000)

	f.str(&v.Labelstr, k("labelstr"), "^"+regexp.QuoteMeta(c.Org)+"-"+regexp.QuoteMeta(set)+"-[0-9]{3}$")
	re, err := regexp.Compile(v.Labelstr)
	if err != nil {
		f.errf(k("labelstr"), "vault.labelstr %s is not a valid regular expression: %v", preview(v.Labelstr), err)
		return
	}
	v.labelRe = re
	if !f.has(k("autolabel")) {
		v.Autolabel = c.Org + "-" + set + "-%%%"
	}
	if v.Autolabel != "" {
		l := fillTemplate(v.Autolabel, 1)
		switch {
		case !strings.Contains(v.Autolabel, "%"):
			f.errf(k("autolabel"), "vault.autolabel %s must contain a run of %% for the volume number, e.g. %q", preview(v.Autolabel), c.Org+"-Offsite-%%%")
		case strings.ContainsFunc(l, func(r rune) bool { return r <= ' ' || r == 0x7f }) || len(l) > 128:
			f.errf(k("autolabel"), "vault.autolabel %s must make labels of at most 128 bytes without blanks or control characters", preview(v.Autolabel))
		case !re.MatchString(l):
			f.errf(k("autolabel"), "vault.autolabel %s makes label %q, which vault.labelstr %s does not match; change one of them", preview(v.Autolabel), l, preview(v.Labelstr))
		}
	}
	// The copies must be told apart from the images they copy: one label
	// set may never match the other's labels, nor share its slots.
	p := k("labelstr")
	switch {
	case v.Labelstr == c.Labelstr:
		f.errf(p, "vault.labelstr %s is labelstr itself: a vault onto the label set it copies from would overwrite the images it copies; give the copy volumes their own labels, e.g. %q", preview(v.Labelstr), "^"+c.Org+"-Offsite-[0-9]{3}$")
	case v.Autolabel != "" && c.labelRe != nil && c.labelRe.MatchString(fillTemplate(v.Autolabel, 1)):
		f.errf(p, "vault.autolabel makes %q, which labelstr %s (the volumes it copies from) matches too: a vault onto the source label set is refused; give the copy volumes labels labelstr does not match", fillTemplate(v.Autolabel, 1), preview(c.Labelstr))
	case c.Autolabel != "" && re.MatchString(fillTemplate(c.Autolabel, 1)):
		f.errf(p, "vault.labelstr %s matches %q, a label of the volumes it copies from (autolabel): a vault onto the source label set is refused; make vault.labelstr match only the copy volumes", preview(v.Labelstr), fillTemplate(c.Autolabel, 1))
	case ch.Type == "disk" && c.Changer.Type == "disk" && ch.Path == c.Changer.Path:
		f.errf(k("changer", "path"), "vault.changer.path %s is the directory of [changer]: the copy volumes need slots of their own", preview(ch.Path))
	case ch.Type != "disk" && ch.Device != "" && ch.Device == c.Changer.Device:
		f.errf(k("changer", "device"), "vault.changer.device %s is the drive of [changer]: the vault reads with one and writes with the other, so it needs a drive of its own", preview(ch.Device))
	}
}
