package server

import (
	"bufio"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tapir-backup/tapir/client"
	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/holding"
	"github.com/tapir-backup/tapir/image/crypt"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/index/indexd"
	"github.com/tapir-backup/tapir/internal/bytesize"
	"github.com/tapir-backup/tapir/internal/clock"
	"github.com/tapir-backup/tapir/report"
	"github.com/tapir-backup/tapir/report/mail"
	"github.com/tapir-backup/tapir/wire"
)

// CheckOptions choose what Check looks at.
type CheckOptions struct {
	Clients bool // ask every client agent for a selfcheck of its DLEs
	Mail    bool // greet the mail server
	// Identity, when set, is an age identity file (tapir key new): the
	// check proves it opens the newest image of every encrypted DLE.
	Identity string
}

// MailCheck mails the outcome of a check to mailto.
func MailCheck(ctx context.Context, cfg *config.Config, c *report.Check, deps Deps) error {
	if len(cfg.Mailto) == 0 {
		return fmt.Errorf("mailto is empty in %s: nobody to mail the check to", cfg.File)
	}
	m := deps.Mailer
	if m == nil {
		m = Mailer(cfg, deps.Log)
	}
	return mail.SendCheck(ctx, m, c, mailOptions(cfg, c.Hostname))
}

// Check is the preflight check (`tapir check`, amcheck): the directories
// and their permissions, the holding disks' space, the volume the next run
// would write (or why none), the certificates, the catalog, every client
// agent reachable with the right certificate and its DLEs readable, and
// the mail server. Each problem is one line a person can act on. It
// changes nothing.
func Check(ctx context.Context, cfg *config.Config, deps Deps, opt CheckOptions) *report.Check {
	if deps.Clock == nil {
		deps.Clock = clock.Real
	}
	start := deps.Clock.Now()
	host, _ := os.Hostname()
	c := &report.Check{Org: cfg.Org, Config: cfg.File, Hostname: host, Time: start}
	problem := func(where, format string, a ...any) {
		c.Problems = append(c.Problems, report.Problem{Where: where, What: fmt.Sprintf(format, a...)})
	}
	info := func(format string, a ...any) { c.Info = append(c.Info, fmt.Sprintf(format, a...)) }

	warn := func(format string, a ...any) { c.Warnings = append(c.Warnings, fmt.Sprintf(format, a...)) }
	serverChecks(ctx, cfg, deps, start, true, problem, info)
	checkEncryption(ctx, cfg, deps, opt.Identity, problem, warn, info)
	checkPeers(ctx, cfg, deps, warn, info)
	if opt.Clients {
		n := checkClients(ctx, cfg, problem)
		c.Summary = fmt.Sprintf("Client check: %d host(s), %d DLE(s) checked in %s.", n, len(cfg.DLEs), deps.Clock.Now().Sub(start).Round(time.Millisecond))
	}
	if opt.Mail && len(cfg.Mailto) > 0 {
		if err := greetMail(ctx, cfg); err != nil {
			problem("mail server "+cfg.Mail.Server, "%v; the run reports cannot be mailed to %s", err, strings.Join(cfg.Mailto, ", "))
		} else {
			info("The mail server %s answers; reports go to %s.", cfg.Mail.Server, strings.Join(cfg.Mailto, ", "))
		}
	}
	return c
}

// serverChecks is the part of Check that needs no client: the run does it
// too, before it dumps, and puts what it finds in its report.
func serverChecks(ctx context.Context, cfg *config.Config, deps Deps, now time.Time, vols bool, problem func(where, format string, a ...any), info func(format string, a ...any)) {
	dirs := []struct{ what, dir string }{{"state directory", cfg.StateDir}, {"report directory", cfg.ReportDir}}
	if !config.IsPostgresDSN(cfg.Catalog) {
		dirs = append(dirs, struct{ what, dir string }{"catalog directory", filepath.Dir(cfg.Catalog)})
	}
	for _, d := range dirs {
		if err := writableDir(d.dir); err != nil {
			problem(d.what+" "+d.dir, "%v", err)
		}
	}
	if cat, err := OpenCatalog(cfg); err != nil {
		problem("catalog "+config.MaskDSN(cfg.Catalog), "%v", err)
	} else {
		if _, err := cat.Runs(ctx); err != nil {
			problem("catalog "+config.MaskDSN(cfg.Catalog), "%v", err)
		} else {
			info("The catalog %s opens and reads.", config.MaskDSN(cfg.Catalog))
		}
		if !config.IsPostgresDSN(cfg.Catalog) {
			if f, err := os.OpenFile(cfg.Catalog, os.O_RDWR, 0); err != nil {
				problem("catalog "+config.MaskDSN(cfg.Catalog), "cannot be written: %v", err)
			} else {
				f.Close()
			}
		}
		defer cat.Close()
		checkServers(ctx, cfg, cat, problem, info)
		if vols {
			checkVolumes(ctx, cfg, deps, cat, problem, info)
		}
	}
	checkHolding(cfg, problem, info)
	checkCerts(cfg, now, problem, info)
}

func writableDir(dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("cannot be created: %w", err)
	}
	f, err := os.CreateTemp(dir, ".tapir-check-*")
	if err != nil {
		return fmt.Errorf("is not writable by this user: %w", errors.Unwrap(err))
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}

func checkHolding(cfg *config.Config, problem func(where, format string, a ...any), info func(format string, a ...any)) {
	if len(cfg.Holding) == 0 {
		info("No holding disk: every image goes straight to a volume, and a night without a usable volume dumps nothing.")
		return
	}
	var usable []holding.Disk
	for _, h := range cfg.Holding {
		where := "holding disk " + h.Path
		if err := holding.CheckDisk(h.Path); errors.Is(err, holding.ErrNoDisk) {
			// Never created: an unmounted disk must be noticed.
			problem(where, "does not exist: mount it, or create it with mkdir if it is new")
			continue
		} else if err != nil {
			problem(where, "%v", err)
			continue
		}
		if err := writableDir(h.Path); err != nil {
			problem(where, "%v", err)
			continue
		}
		free, err := holding.FreeSpace(h.Path)
		if err != nil {
			problem(where, "free space: %v", err)
			continue
		}
		switch {
		case h.Use > 0 && free < int64(h.Use):
			problem(where, "only %s free on its filesystem, but use = %s: dumps will fail with a full disk and go straight to a volume; free space or lower use", bytesize.Format(free), bytesize.Format(int64(h.Use)))
		case free < 1<<30 && h.Use == 0:
			problem(where, "only %s free; free space or point it at a larger filesystem", bytesize.Format(free))
		}
		usable = append(usable, holding.Disk{Path: h.Path, Use: int64(h.Use), Chunksize: int64(h.Chunksize)})
	}
	checkHoldingLimits(cfg, usable, info)
	found, left, err := holding.Scan(holdingDisks(cfg))
	if err == nil && len(found)+len(left) > 0 {
		info("%d image(s) and %d partial file(s) from earlier runs are on the holding disks (tapir admin holding list).", len(found), len(left))
	}
}

// checkHoldingLimits says what a run may fill on the holding disks, the
// way the run counts it (holding.NewPool): each disk's use limit (or what
// is free when use = 0) with what earlier runs left there, and the share
// that reserve leaves to fulls on a night without a usable volume.
func checkHoldingLimits(cfg *config.Config, disks []holding.Disk, info func(format string, a ...any)) {
	if len(disks) == 0 {
		return
	}
	pool, err := holding.NewPool(disks, holding.PoolOptions{Reserve: cfg.Reserve})
	if err != nil {
		info("Holding space could not be measured: %v.", err)
		return
	}
	for _, d := range pool.Disks() {
		limit := "what is free on its filesystem"
		for _, h := range disks {
			if h.Path == d.Path && h.Use > 0 {
				limit = "use = " + bytesize.Format(h.Use)
			}
		}
		info("Holding disk %s: a run may fill %s (%s), of which %s hold images of earlier runs: %s left for tonight.",
			d.Path, bytesize.Format(d.Capacity), limit, bytesize.Format(d.Used), bytesize.Format(max(d.Capacity-d.Used, 0)))
	}
	total := pool.Total()
	fulls := holding.FullLimit(total, cfg.Reserve)
	info("Holding reserve = %d%%: on a night without a usable volume, fulls may use %s of the %s in all and incrementals all of it; a larger full drops to an incremental.",
		cfg.Reserve, bytesize.Format(fulls), bytesize.Format(total))
}

func checkVolumes(ctx context.Context, cfg *config.Config, deps Deps, cat *catalog.Catalog, problem func(where, format string, a ...any), info func(format string, a ...any)) {
	ch, err := openChanger(cfg, deps, nil)
	if err != nil {
		problem("changer", "%v", err)
		return
	}
	if m, ok, err := lookForMissingVolumes(ctx, cat, ch, vaultLabels(cfg)); err != nil {
		problem("volumes", "comparing the catalog with the changer: %v", err)
	} else if ok {
		if p := m.problem(cfg.File); p != "" {
			problem("volumes", "%s", p)
		}
		for _, i := range m.info() {
			info("%s", i)
		}
	}
	problems := config.ChainProblems(cfg)
	for _, w := range problems {
		problem("configuration "+cfg.File, "%s", w)
	}
	for _, w := range config.ChainWarnings(cfg)[len(problems):] {
		info("Configuration: %s.", w)
	}
	checkVault(ctx, cfg, deps, cat, problem, info)
	v := &volumes{cfg: cfg, cat: cat, ch: ch, clock: deps.Clock, log: deps.Log}
	c, err := v.choose(ctx)
	if err != nil {
		problem("volumes", "%v; the next run will be degraded (holding disk only)", err)
		return
	}
	if c.Relabel {
		info("Will write to a new volume, labelled %s in slot %d (autolabel).", c.Label, c.Slot)
	} else {
		info("Will write to volume %s in slot %d (%s).", c.Label, c.Slot, c.Reason)
	}
	// The look-ahead: chains the next runs would need to overwrite get a
	// full at the next run (said here, so nobody is surprised).
	pdles, err := plannerDLEs(ctx, cat, cfg)
	if err != nil {
		problem("catalog", "%v", err)
		return
	}
	marked, _, err := lookAhead(ctx, cat, v, pdles)
	if err != nil {
		problem("volumes", "the look-ahead for chains failed: %v", err)
	}
	for _, d := range marked {
		info("The next run gives %s a full: %s.", d.Name(), d.ChainAtRisk)
	}
}

func checkCerts(cfg *config.Config, now time.Time, problem func(where, format string, a ...any), info func(format string, a ...any)) {
	if _, err := wire.ServerConfig(wire.Files{CA: cfg.TLS.CA, Cert: cfg.TLS.Cert, Key: cfg.TLS.Key}, wire.RoleClient, wire.RoleAdmin); err != nil {
		problem("server certificate", "%v", err)
		return
	}
	for _, f := range []string{cfg.TLS.CA, cfg.TLS.Cert} {
		cert, err := wire.LoadCert(f)
		if err != nil {
			problem("certificate "+f, "%v", err)
			continue
		}
		expiry(cert, f, now, problem)
	}
	info("The server's certificate %s and CA %s load.", cfg.TLS.Cert, cfg.TLS.CA)
}

func expiry(cert *x509.Certificate, file string, now time.Time, problem func(where, format string, a ...any)) {
	switch left := cert.NotAfter.Sub(now); {
	case left <= 0:
		problem("certificate "+file, "expired on %s; issue a new one with tapir ca issue", cert.NotAfter.Format("2006-01-02"))
	case left < 30*24*time.Hour:
		problem("certificate "+file, "expires on %s, in %d days; issue a new one with tapir ca issue", cert.NotAfter.Format("2006-01-02"), int(left.Hours()/24))
	}
}

// checkClients asks every client host's agent, in parallel, for a
// selfcheck of each of its DLEs, and returns the number of hosts.
func checkClients(ctx context.Context, cfg *config.Config, problem func(where, format string, a ...any)) int {
	files := wire.Files{CA: cfg.TLS.CA, Cert: cfg.TLS.Cert, Key: cfg.TLS.Key}
	byHost := map[string][]config.DLE{}
	for _, d := range cfg.DLEs {
		byHost[d.Host] = append(byHost[d.Host], d)
	}
	hosts := make([]string, 0, len(byHost))
	for h := range byHost {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	type finding struct{ where, what string }
	results := make([][]finding, len(hosts))
	var wg sync.WaitGroup
	sem := make(chan struct{}, cfg.Inparallel)
	for i, h := range hosts {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			remote, err := newRemote(cfg, files, h, time.Duration(cfg.Etimeout))
			if err != nil {
				results[i] = append(results[i], finding{"host " + h, err.Error()})
				return
			}
			for _, d := range byHost[h] {
				// What a dump would ask besides the DLE: the agent proves
				// it can make the snapshot and may run the commands.
				req := wire.Request{DLE: d.Path}
				consistency(&req, cfg.Dumptype(d))
				rep, err := remote.SelfcheckRequest(ctx, req)
				if err != nil && tooOld(err) {
					results[i] = append(results[i], finding{fmt.Sprintf("DLE %s:%s", h, d.Path),
						fmt.Sprintf("the agent on %s refuses the dumptype's snapshot, command or hooks (%v): it is older than them; upgrade tapir on %s", h, err, h)})
					continue
				}
				if err != nil {
					results[i] = append(results[i], finding{"host " + h, err.Error()})
					return
				}
				if need := missingFeature(req, rep.Features); need != "" {
					results[i] = append(results[i], finding{fmt.Sprintf("DLE %s:%s", h, d.Path),
						fmt.Sprintf("the agent on %s (version %s) lacks the feature %q this DLE's dumptype needs; upgrade tapir on %s", h, rep.Version, need, h)})
				}
				if dt := cfg.Dumptype(d); dt.Encrypt == config.EncryptClient && !slices.Contains(rep.Features, client.FeatureAge) {
					results[i] = append(results[i], finding{fmt.Sprintf("DLE %s:%s", h, d.Path), noAgeFeature(d, rep.Version)})
				}
				for _, p := range rep.Problems {
					results[i] = append(results[i], finding{fmt.Sprintf("DLE %s:%s", h, d.Path), p})
				}
			}
		})
	}
	wg.Wait()
	for _, fs := range results {
		for _, f := range fs {
			problem(f.where, "%s", f.what)
		}
	}
	return len(hosts)
}

// checkEncryption warns about every DLE whose encryption changed since
// its last full (recipientsChanged) and, with an identity file, proves
// that the key opens the newest restorable image of every encrypted DLE:
// it unwraps the key from the image's age header in the catalog and, when
// the image can be read without a person (the holding disk, a disk or
// robot changer), decrypts its first and last chunks.
func checkEncryption(ctx context.Context, cfg *config.Config, deps Deps, identity string, problem func(where, format string, a ...any), warn, info func(format string, a ...any)) {
	var ids *crypt.Identities
	if identity != "" {
		var err error
		if ids, err = crypt.ReadIdentities(identity); err != nil {
			problem("identity "+identity, "%v", err)
			ids = nil
		}
	}
	encrypted := false
	for _, d := range cfg.DLEs {
		encrypted = encrypted || cfg.Dumptype(d).Encrypted()
	}
	cat, err := OpenCatalog(cfg)
	if err != nil {
		return // serverChecks said so
	}
	defer cat.Close()
	var vs indexd.VolumeSource
	var vsErr error
	volumes := func() (indexd.VolumeSource, error) {
		if vs == nil && vsErr == nil {
			vs, vsErr = VolumeSource(cfg, deps, cat, deps.Log)
		}
		return vs, vsErr
	}
	opened := 0
	for _, dle := range cfg.DLEs {
		w, err := recipientsChanged(ctx, cat, dle, cfg.Dumptype(dle))
		if err != nil {
			problem("catalog", "%v", err)
			return
		}
		if w != "" {
			warn("%s", w)
		}
		if ids == nil {
			continue
		}
		d, err := cat.NewestRestorable(ctx, dle.Host, dle.Path)
		if err != nil {
			problem("catalog", "%v", err)
			return
		}
		if d == nil || !d.Encrypted() {
			continue
		}
		where := fmt.Sprintf("DLE %s:%s", dle.Host, dle.Path)
		what := fmt.Sprintf("level %d image %s of %s:%s", d.Level, d.Datestamp, d.Host, d.Path)
		msg, err := proveKey(ctx, cat, holdingDisks(cfg), volumes, ids, d, what)
		if err != nil {
			problem(where, "%v", err)
			continue
		}
		opened++
		info("%s", msg)
	}
	if ids != nil && opened == 0 && !encrypted {
		info("No DLE is encrypted: the identity %s was not needed.", identity)
	}
}

// proveKey shows that ids open the image d (what names it): the key is
// unwrapped from the age header the catalog keeps, and the first and the
// last chunk are decrypted when the image can be read without a person.
func proveKey(ctx context.Context, cat *catalog.Catalog, disks []string, volumes func() (indexd.VolumeSource, error), ids *crypt.Identities, d *catalog.Dump, what string) (string, error) {
	if len(d.CryptHeader) == 0 {
		return "", fmt.Errorf("the catalog has no age header for the %s: rebuild its catalog entry (tapir admin rebuild) to check a key against it", what)
	}
	key, err := crypt.Unwrap(d.CryptHeader, d.PayloadSize, ids.List)
	if errors.Is(err, crypt.ErrWrongKey) {
		mine := ids.Fingerprints()
		if len(mine) == 0 {
			mine = []string{"(none: the file holds no X25519 identity)"}
		}
		return "", fmt.Errorf("the key in %s is not a recipient of the %s: its fingerprint is %s, the image's are %s; restoring it needs one of those keys", ids.File, what, strings.Join(mine, ", "), strings.Join(d.Recipients, ", "))
	}
	if err != nil {
		return "", fmt.Errorf("the %s: %v", what, err)
	}
	src := fmt.Sprintf("The key in %s opens the %s", ids.File, what)
	var parts []catalog.Part
	if d.HoldingPath == "" {
		if parts, err = cat.Parts(ctx, d.ID); err != nil {
			return "", err
		}
	}
	var vs indexd.VolumeSource
	if len(parts) > 0 {
		vs, err = volumes()
		if err != nil {
			return src + fmt.Sprintf(" (its age header; its chunks were not read: %v).", err), nil
		}
		if vs.Properties().WaitsForPerson {
			return src + fmt.Sprintf(" (its age header; its chunks were not read: it is on volume %s, which a person would have to insert).", parts[0].Volume), nil
		}
	}
	is := indexd.NewImageReader(ctx, vs, disks, *d, parts)
	defer is.Close()
	l := key.Layout()
	for _, off := range []int64{0, l.PlainSize() - 1} {
		if off < 0 {
			off = 0
		}
		first, _, cOff, cLen, err := l.Span(off, 1)
		if err != nil {
			return "", fmt.Errorf("the %s: %v", what, err)
		}
		ct := make([]byte, cLen)
		if _, err := is.ReadAt(ct, cOff); err != nil {
			return "", fmt.Errorf("the key opens the age header of the %s, but its chunk %d cannot be read: %v", what, first, err)
		}
		if _, err := key.Open(nil, ct, first); err != nil {
			return "", fmt.Errorf("the key opens the age header of the %s, but %v (read from %s): the image is damaged", what, err, strings.Join(is.Where(), ", "))
		}
	}
	return src + fmt.Sprintf(" (first and last chunk decrypted from %s).", strings.Join(is.Where(), ", ")), nil
}

// recipientsChanged says how the encryption of dle under its dumptype
// now differs from that of its last full still in the catalog (other
// recipients, or encrypted on one side only); "" when it does not, or
// there is no full.
func recipientsChanged(ctx context.Context, cat *catalog.Catalog, dle config.DLE, dt config.Dumptype) (string, error) {
	full, err := cat.LastFull(ctx, dle.Host, dle.Path)
	if err != nil || full == nil {
		return "", err
	}
	var now []string
	if dt.Encrypted() {
		now = crypt.Fingerprints(dt.AgeRecipients)
	}
	was := slices.Clone(full.Recipients)
	if !full.Encrypted() {
		was = nil
	}
	slices.Sort(was)
	if slices.Equal(was, now) {
		return "", nil
	}
	name := dle.Host + ":" + dle.Path
	force := fmt.Sprintf("`tapir admin force %s %s`", dle.Host, dle.Path)
	fps := func(l []string) string {
		if len(l) == 0 {
			return "not encrypted"
		}
		return strings.Join(l, ", ")
	}
	switch {
	case was == nil:
		return fmt.Sprintf("%s is encrypted now (to %s) but its full of %s is not: the chain mixes plain and encrypted images; %s starts a chain encrypted from its full", name, fps(now), full.Datestamp, force), nil
	case now == nil:
		return fmt.Sprintf("%s is no longer encrypted but its full of %s is (to %s): restoring the chain needs those keys too; %s starts a chain without them", name, full.Datestamp, fps(was), force), nil
	}
	return fmt.Sprintf("recipients of %s changed since its full of %s (was %s, now %s): restoring the chain needs the old keys too; %s starts a chain under the new keys", name, full.Datestamp, fps(was), fps(now), force), nil
}

// greetMail connects to the mail server and waits for its greeting.
func greetMail(ctx context.Context, cfg *config.Config) error {
	d := net.Dialer{Timeout: time.Duration(cfg.Mail.Timeout)}
	conn, err := d.DialContext(ctx, "tcp", cfg.Mail.Server)
	if err != nil {
		return fmt.Errorf("cannot connect: %w", errors.Unwrap(err))
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Duration(cfg.Mail.Timeout)))
	tp := textproto.NewReader(bufio.NewReader(conn))
	if _, _, err := tp.ReadResponse(220); err != nil {
		return fmt.Errorf("no SMTP greeting: %w", err)
	}
	fmt.Fprintf(conn, "QUIT\r\n")
	return nil
}

// checkServers looks at the other tapir servers sharing the catalog: this
// server's name must not be another machine's, its DLEs must not be
// dumped by another server too, and its labelstr must not match another
// server's volumes (its autolabel would then be refused).
func checkServers(ctx context.Context, cfg *config.Config, cat *catalog.Catalog, problem func(string, string, ...any), info func(string, ...any)) {
	servers, err := cat.Servers(ctx)
	if err != nil {
		problem("catalog "+config.MaskDSN(cfg.Catalog), "%v", err)
		return
	}
	name := cfg.Server.Name
	host, _ := os.Hostname()
	var others []string
	for _, s := range servers {
		if s.Name != name {
			others = append(others, s.Name)
			continue
		}
		if s.Host != "" && s.Host != host {
			problem("server name "+name, "is registered in the catalog by host %s, and this is host %s: give this server a [server] name of its own; if this machine replaced %s, run tapir admin servers --take-over -c %s", s.Host, host, s.Host, cfg.File)
		}
	}
	if len(others) == 0 {
		return
	}
	info("This server is %q; the catalog is shared with %s.", name, strings.Join(others, ", "))
	for _, dle := range cfg.DLEs {
		ds, err := cat.Dumps(ctx, dle.Host, dle.Path)
		if err != nil {
			problem("catalog "+config.MaskDSN(cfg.Catalog), "%v", err)
			return
		}
		if len(ds) > 0 && ds[0].Server != "" && ds[0].Server != name {
			problem("DLE "+dle.Host+":"+dle.Path, "its newest image (%s, level %d) was made by tapir server %q: a DLE is backed up by one server; remove it from one configuration (this server takes its chain over where the other left it)", ds[0].Datestamp, ds[0].Level, ds[0].Server)
		}
	}
	vols, err := cat.AllVolumes(ctx)
	if err != nil {
		problem("catalog "+config.MaskDSN(cfg.Catalog), "%v", err)
		return
	}
	re := cfg.LabelRegexp()
	overlap := map[string][]string{}
	for _, v := range vols {
		if v.Server != "" && v.Server != name && re.MatchString(v.Label) {
			overlap[v.Server] = append(overlap[v.Server], v.Label)
		}
	}
	for _, srv := range slices.Sorted(maps.Keys(overlap)) {
		ls := overlap[srv]
		problem("labelstr "+cfg.Labelstr, "matches %d volume(s) of tapir server %q (%s): this server may never write them, and its autolabel may choose their labels; give each server labels of its own (labelstr and autolabel)", len(ls), srv, strings.Join(ls[:min(len(ls), 3)], ", "))
	}
}

// checkPeers proves that this server can read the volumes of every other
// tapir server of the catalog (restore from anywhere): each one's index
// server answers at the address it registered and accepts this server's
// certificate. A server that cannot be reached is a warning, not a
// problem: tonight's run does not need it, a restore of its volumes from
// here does.
func checkPeers(ctx context.Context, cfg *config.Config, deps Deps, warn, info func(string, ...any)) {
	cat, err := OpenCatalog(cfg)
	if err != nil {
		return // serverChecks said why
	}
	defer cat.Close()
	servers, err := cat.Servers(ctx)
	if err != nil {
		return
	}
	links := Peers(cfg, deps.Log).Links(cat)
	defer links.Close()
	for _, s := range servers {
		switch {
		case s.Name == cfg.Server.Name:
		case s.IndexAddr == "" && s.Volumes > 0:
			warn("tapir server %q owns %d volume(s) but has registered no index server address: restores of them from this server fail until it runs `tapir server` with [server] index_listen (and advertise) set", s.Name, s.Volumes)
		case s.IndexAddr == "":
		default:
			if err := links.Hello(ctx, s); err != nil {
				warn("restores of the %d volume(s) of tapir server %q from this server would fail: %v", s.Volumes, s.Name, err)
			} else {
				info("The index server of tapir server %q at %s answers this server's certificate (its %d volume(s) restore from here).", s.Name, s.IndexAddr, s.Volumes)
			}
		}
	}
}

// checkVault checks the changer of each vault's copy volumes and says
// which copy volume its next run writes.
func checkVault(ctx context.Context, cfg *config.Config, deps Deps, cat *catalog.Catalog, problem func(where, format string, a ...any), info func(format string, a ...any)) {
	for i := range cfg.Vaults {
		v := &cfg.Vaults[i]
		vcfg := cfg.VaultConfig(v)
		vdeps := deps
		vdeps.Changer = deps.VaultChangers[v.Name]
		ch, err := openChangerFor(vcfg, vdeps, deps.Log, true)
		if err != nil {
			problem("vault "+v.Name, "the changer of the copy volumes ([vault.changer]): %v; tapir vault cannot write, and restores read only the images' other locations", err)
			continue
		}
		vol := &volumes{cfg: vcfg, cat: cat, ch: ch, clock: deps.Clock, log: deps.Log}
		c, err := vol.choose(ctx)
		switch {
		case err != nil:
			problem("vault "+v.Name, "%v; tapir vault would copy nothing", err)
		case c.Relabel:
			info("Vault %s will write to a new copy volume, labelled %s in slot %d.", v.Name, c.Label, c.Slot)
		default:
			info("Vault %s will write to copy volume %s in slot %d (%s).", v.Name, c.Label, c.Slot, c.Reason)
		}
		if vdeps.Changer == nil {
			closeChanger(ch)
		}
	}
}

// tooOld says an agent refused a request for fields it does not know.
func tooOld(err error) bool {
	for _, f := range []string{"snapshot", "command", "pre", "post", "hook_timeout"} {
		if strings.Contains(err.Error(), `unknown field "`+f+`"`) {
			return true
		}
	}
	return false
}

// missingFeature names the first agent feature that req needs and
// features lacks ("" when none).
func missingFeature(req wire.Request, features []string) string {
	var need []string
	if req.Snapshot != nil {
		need = append(need, "snapshot-"+req.Snapshot.Kind)
	}
	if len(req.Command) > 0 {
		need = append(need, "command")
	}
	if len(req.Pre) > 0 || len(req.Post) > 0 {
		need = append(need, "hooks")
	}
	for _, f := range need {
		if !slices.Contains(features, f) {
			return f
		}
	}
	return ""
}
