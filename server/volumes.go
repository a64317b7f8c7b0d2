package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/internal/clock"
	"github.com/tapir-backup/tapir/report"
	"github.com/tapir-backup/tapir/taper"
)

// volumes is the run's source of volumes for its drives: it chooses each
// volume with taper.ChooseVolume (never one inside tapecycle, never a
// foreign one, never one this run wrote), labels it for this run, and
// stops at runtapes, counted over all drives. Choosing, loading and
// labelling hold mu, so two drives never take the same volume.
type volumes struct {
	cfg       *config.Config
	cat       *catalog.Catalog
	ch        taper.Changer // the first drive's: inventory, and the wait for a person
	datestamp string
	clock     clock.Clock
	log       *slog.Logger
	notes     func(string)
	deps      Deps // for the mail that asks for a volume

	mu      sync.Mutex
	drives  []*tapeDrive
	used    []report.Volume // the volumes written by this run, in order
	claimed map[int]string  // slots autolabel may take though not blank: the label they had
	expects string          // what the run expected when it could get no volume
	refused []string        // volumes kept for the newest chains on them, when the run could get no volume
}

// tapeDrive is one drive the run writes with: its changer, the volume it
// holds, and the taper.VolumeSource of its scribe.
type tapeDrive struct {
	v      *volumes
	ch     taper.Changer
	name   string       // for a person: "drive 1 (/dev/nst1)"; "" with one drive
	cur    taper.Device // under v.mu
	curIdx int          // v.used index of cur's volume
	loaded time.Time    // when cur was loaded
	wrote  bool         // the drive wrote a volume this run
}

// setDrives makes the run write with one drive per changer (the first is
// also v.ch). With several, each is named for a person by its number and,
// for a robot, its device in [changer] drives.
func (v *volumes) setDrives(chs []taper.Changer) {
	v.ch = chs[0]
	v.drives = nil
	for _, ch := range chs {
		d := &tapeDrive{v: v, ch: ch}
		if len(chs) > 1 {
			p := ch.Properties()
			d.name = fmt.Sprintf("drive %d", p.Drive)
			if devs := v.cfg.Changer.Drives; p.Kind == "robot" && p.Drive >= 0 && p.Drive < len(devs) {
				d.name += " (" + devs[p.Drive] + ")"
			}
		}
		v.drives = append(v.drives, d)
	}
}

// unloaded adds the time the current volume spent in the drive to it.
func (d *tapeDrive) unloaded() {
	if d.cur != nil {
		d.v.used[d.curIdx].Time += d.v.clock.Now().Sub(d.loaded)
	}
}

// states merges the changer's inventory with the catalog's memory of each
// volume, and finds the next free autolabel. Volumes already written by
// this run are marked not reusable, so that a second volume of the run is
// never the first one again.
func (v *volumes) states(ctx context.Context, thisRunWritable bool) ([]taper.VolumeState, string, error) {
	return v.statesWith(ctx, v.ch, thisRunWritable)
}

// statesWith is states with the labels a robot does not know read
// through ch's drive: the drive that needs a volume, which writes nothing
// now, never another drive of the run in the middle of an image.
func (v *volumes) statesWith(ctx context.Context, ch taper.Changer, thisRunWritable bool) ([]taper.VolumeState, string, error) {
	inv, err := ch.Inventory(ctx)
	if err != nil {
		return nil, "", err
	}
	if ch.Properties().NeedsScan && notScanned(inv) {
		// A robot learns the labels it does not know by loading each
		// volume once (they are remembered by barcode).
		if inv, err = ch.Scan(ctx); err != nil {
			return nil, "", err
		}
	}
	notes, err := resolveOverwrites(ctx, v.cat, inv, int64(v.cfg.Tapetype().Blocksize), v.clock.Now())
	for _, n := range notes {
		if v.notes != nil {
			v.notes(n)
		} else if v.log != nil {
			v.log.Warn(n)
		}
	}
	if err != nil {
		return nil, "", err
	}
	return v.statesFrom(ctx, inv, thisRunWritable)
}

func notScanned(inv []taper.SlotInfo) bool {
	for _, s := range inv {
		if errors.Is(s.Err, taper.ErrNotScanned) {
			return true
		}
	}
	return false
}

// statesFrom is states for a given inventory.
func (v *volumes) statesFrom(ctx context.Context, inv []taper.SlotInfo, thisRunWritable bool) ([]taper.VolumeState, string, error) {
	v.claimed = nil
	vols, err := v.cat.Volumes(ctx)
	if err != nil {
		return nil, "", err
	}
	known := map[string]catalog.Volume{}
	for _, x := range vols {
		known[x.Label] = x
	}
	pins, err := chainPins(ctx, v.cat, v.cfg.LabelRegexp())
	if err != nil {
		return nil, "", err
	}
	thisRun := map[string]bool{}
	for _, u := range v.used {
		thisRun[u.Label] = !thisRunWritable
	}
	used := map[string]bool{}
	var states []taper.VolumeState
	re := v.cfg.LabelRegexp()
	for _, s := range inv {
		if s.Empty {
			continue
		}
		st := taper.VolumeState{Slot: s.Slot, Blank: s.Blank, Foreign: s.Foreign, Reuse: true}
		kind := ""
		switch {
		case s.Err != nil:
			st.Foreign, kind = "unreadable: "+s.Err.Error(), config.ClaimUnreadable
		case s.Foreign != "":
			kind = config.ClaimNonTapir
		}
		if s.Label != nil {
			st.Label = s.Label.Label
			used[st.Label] = true
			switch {
			case s.Label.Org != v.cfg.Org:
				st.Foreign, kind = fmt.Sprintf("labelled %s by configuration %q", s.Label.Label, s.Label.Org), config.ClaimOtherConfig
			case !re.MatchString(s.Label.Label):
				st.Foreign, kind = fmt.Sprintf("label %s does not match labelstr %s", s.Label.Label, re), config.ClaimOtherConfig
			}
			if k, ok := known[st.Label]; ok {
				st.Written, st.Reuse = k.Written, k.Reuse
			} else if s.Label.Datestamp != taper.NeverWritten {
				st.Written = s.Label.Datestamp
			}
			if thisRun[st.Label] {
				st.Reuse = false
			}
			st.Pinned = pins[st.Label]
		}
		if kind != "" && v.cfg.Claims(kind) && v.cfg.Autolabel != "" && len(pins[st.Label]) == 0 {
			// autolabel_media lets autolabel take this volume like a
			// blank one; what the catalog knew of it is forgotten when it
			// is labelled.
			if v.claimed == nil {
				v.claimed = map[int]string{}
			}
			v.claimed[s.Slot] = st.Label
			st = taper.VolumeState{Slot: s.Slot, Blank: true}
		}
		states = append(states, st)
	}
	// Volumes the catalog knows that are not in the changer now: never
	// chosen, but ChooseVolume names them as the volume to insert.
	for _, k := range vols {
		if !used[k.Label] {
			st := taper.VolumeState{Label: k.Label, Written: k.Written, Reuse: k.Reuse, Pinned: pins[k.Label]}
			if thisRun[k.Label] {
				st.Reuse = false
			}
			if re.MatchString(k.Label) {
				states = append(states, st)
			}
		}
		used[k.Label] = true
	}
	if v.cfg.Autolabel == "" {
		return states, "", nil
	}
	for n := 1; n < 1_000_000; n++ {
		if l := v.cfg.AutolabelFor(n); !used[l] {
			return states, l, nil
		}
	}
	return nil, "", errors.New("autolabel template exhausted: every label it can make is in use")
}

// choose picks the volume the next write of this run would use, without
// touching it (never one this run wrote already).
func (v *volumes) choose(ctx context.Context) (taper.Choice, error) { return v.chooseFor(ctx, false) }

// chooseFor picks a volume; nextRun predicts the next run's choice (the
// volumes this run wrote are then ordinary written volumes).
func (v *volumes) chooseFor(ctx context.Context, nextRun bool) (taper.Choice, error) {
	return v.chooseWith(ctx, v.ch, nextRun)
}

// chooseWith is chooseFor with unknown labels read through ch's drive
// (statesWith).
func (v *volumes) chooseWith(ctx context.Context, ch taper.Changer, nextRun bool) (taper.Choice, error) {
	states, next, err := v.statesWith(ctx, ch, nextRun)
	if err != nil {
		return taper.Choice{}, err
	}
	return taper.ChooseVolume(states, v.cfg.Tapecycle, v.cfg.LabelRegexp(), next)
}

// probe tells whether the run has a volume to write at all; when not, the
// run goes degraded and the returned error says why. With a single drive
// and [changer] wait, it first asks for the volume and waits that long.
func (v *volumes) probe(ctx context.Context) (taper.Choice, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	c, err := v.choose(ctx)
	if err != nil {
		v.expects, v.refused = c.NextExpected, c.Refused
		if v.canWait() {
			if c, err = v.waitForVolume(ctx); err == nil {
				v.refused = nil // a person brought a volume
			}
		}
	}
	return c, err
}

// canWait reports whether the run may wait for a person to insert a volume.
func (v *volumes) canWait() bool {
	return v.ch.Properties().WaitsForPerson && v.cfg.Changer.Wait > 0
}

// waitForVolume asks for the volume the run expects (v.expects) and waits,
// at most [changer] wait, for a volume it may write to be in the drive.
func (v *volumes) waitForVolume(ctx context.Context) (taper.Choice, error) {
	what := v.expects
	if what == "" {
		what = "a volume this configuration may write"
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		tm := clock.Or(v.clock).NewTimer(time.Duration(v.cfg.Changer.Wait))
		select {
		case <-tm.C():
			cancel()
		case <-wctx.Done():
			tm.Stop()
		}
	}()
	var choice taper.Choice
	want := func(l *taper.Label, err error) bool {
		si := taper.SlotInfoOf(1, l, err)
		if si.Err != nil {
			return false
		}
		states, next, serr := v.statesFrom(ctx, []taper.SlotInfo{si}, false)
		if serr != nil {
			return false
		}
		c, cerr := taper.ChooseVolume(states, v.cfg.Tapecycle, v.cfg.LabelRegexp(), next)
		if cerr != nil {
			return false
		}
		choice = c
		return true
	}
	prompt := func(msg string) { askForVolume(v.cfg, v.deps, v.log, msg) }
	if _, _, err := v.ch.WaitFor(wctx, what, want, prompt); err != nil {
		if ctx.Err() == nil && wctx.Err() != nil {
			err = fmt.Errorf("%w: waited %s for %s in the drive; nobody inserted it", taper.ErrNoVolume, time.Duration(v.cfg.Changer.Wait), what)
		}
		return taper.Choice{NextExpected: v.expects}, err
	}
	return choice, nil
}

// Next loads, labels and returns the next volume of the drive
// (taper.VolumeSource).
func (d *tapeDrive) Next(ctx context.Context) (*taper.Volume, error) {
	v := d.v
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(v.used) >= v.cfg.Runtapes {
		return nil, fmt.Errorf("%w: this run already wrote %d volume(s) (%s), runtapes = %d", taper.ErrNoVolume, len(v.used), v.labels(), v.cfg.Runtapes)
	}
	c, err := v.chooseWith(ctx, d.ch, false)
	if err != nil && v.canWait() {
		// A person must change the volume: give them the full one first.
		if d.cur != nil {
			d.unloaded()
			d.cur = nil
			if eerr := d.ch.Eject(ctx); eerr != nil {
				v.log.Warn("eject the full volume", "err", eerr)
			}
		}
		v.expects = c.NextExpected
		c, err = v.waitForVolume(ctx)
	}
	if err != nil {
		v.expects = c.NextExpected
		if len(c.Refused) > 0 {
			v.refused = c.Refused
		}
		return nil, err
	}
	// Load unloads the volume in the drive first (ending its last file).
	d.unloaded()
	d.cur = nil
	dev, err := d.ch.Load(ctx, c.Slot)
	if err != nil {
		return nil, fmt.Errorf("%w: load slot %d: %v", taper.ErrNoVolume, c.Slot, err)
	}
	tt := v.cfg.Tapetype()
	l := taper.Label{Datestamp: v.datestamp, Label: c.Label, Org: v.cfg.Org, Blocksize: int64(tt.Blocksize), Created: v.clock.Now()}
	// Two phases: the old images stay in the catalog until the new label
	// is on the volume and read back (writeLabel), then StartVolumeWrite
	// forgets them and records this run's datestamp.
	old := c.Label
	claimedOld, claimed := v.claimed[c.Slot]
	if c.Relabel {
		old = claimedOld
		v.log.Info("labelling new volume", "label", c.Label, "slot", c.Slot)
	}
	res, err := writeLabel(ctx, v.cat, dev, old, l, c.Slot, v.clock.Now())
	if err != nil {
		dev.Close()
		return nil, fmt.Errorf("%w: volume %s in slot %d: %v", taper.ErrNoVolume, c.Label, c.Slot, err)
	}
	if claimed && c.Relabel {
		v.notes(fmt.Sprintf("taper: autolabel took the volume in slot %d (%s) as %s (autolabel_media); %d image(s) that were on it left the catalog", c.Slot, orBlank(claimedOld), c.Label, len(res.Dropped)))
	}
	dropped, err := v.cat.StartVolumeWrite(ctx, c.Label, c.Slot, int64(tt.Blocksize), v.datestamp)
	if err != nil {
		dev.Close()
		return nil, err
	}
	if len(dropped) > 0 {
		var names []string
		for _, d := range dropped {
			names = append(names, fmt.Sprintf("%s:%s lev %d of %s", d.Host, d.Path, d.Level, d.Datestamp))
		}
		v.notes(fmt.Sprintf("Volume %s was overwritten; these images were on it, superseded by newer chains, and left the catalog: %s.", c.Label, strings.Join(names, ", ")))
	}
	if err := d.ch.Labelled(ctx, &l); err != nil {
		v.log.Warn("the changer could not note the new label", "label", l.Label, "err", err)
	}
	v.log.Info("writing volume", "label", c.Label, "slot", c.Slot, "device", dev.Name(), "why", c.Reason)
	d.cur, d.loaded, d.curIdx, d.wrote = dev, v.clock.Now(), len(v.used), true
	v.used = append(v.used, report.Volume{Label: c.Label, Slot: c.Slot, New: c.Relabel, Length: int64(tt.Length), Drive: d.name})
	return &taper.Volume{Label: c.Label, Slot: c.Slot, Dev: dev, Blocksize: int(tt.Blocksize)}, nil
}

// chainPins maps each volume of the label set re to the newest chains it
// holds a part of (of an image or of a copy of it), in words for the
// report: "host:/path (full of DATE)". A chain that is complete outside
// the set — every image of it whole on volumes re does not match, as its
// own parts or as a copy — pins none of the set's volumes: it survives
// their reuse (the catalog then keeps each image on its copy).
func chainPins(ctx context.Context, cat *catalog.Catalog, re *regexp.Regexp) (map[string][]string, error) {
	chains, err := cat.Chains(ctx)
	if err != nil {
		return nil, err
	}
	copies, err := cat.AllCopies(ctx)
	if err != nil {
		return nil, err
	}
	pins := map[string][]string{}
	for _, ch := range chains {
		out, err := chainOutside(ctx, cat, ch, copies, re)
		if err != nil {
			return nil, err
		}
		if out {
			continue
		}
		what := fmt.Sprintf("%s:%s (full of %s)", ch.Host, ch.Path, ch.Full().Datestamp)
		seen := map[string]bool{}
		add := func(l string) {
			if !seen[l] && re.MatchString(l) {
				seen[l] = true
				pins[l] = append(pins[l], what)
			}
		}
		for _, l := range ch.Volumes {
			add(l)
		}
		for _, d := range ch.Dumps {
			for _, c := range copies[d.ID] {
				for _, l := range c.Volumes() {
					add(l)
				}
			}
		}
	}
	return pins, nil
}

// chainOutside reports whether every image of the chain is whole on
// volumes outside the label set re: its own parts, or one of its copies.
func chainOutside(ctx context.Context, cat *catalog.Catalog, ch catalog.Chain, copies map[int64][]catalog.ImageCopy, re *regexp.Regexp) (bool, error) {
	for _, d := range ch.Dumps {
		parts, err := cat.Parts(ctx, d.ID)
		if err != nil {
			return false, err
		}
		var own []string
		for _, p := range parts {
			own = append(own, p.Volume)
		}
		ok := noneMatch(own, re)
		for _, c := range copies[d.ID] {
			ok = ok || noneMatch(c.Volumes(), re)
		}
		if !ok {
			return false, nil
		}
	}
	return true, nil
}

func noneMatch(labels []string, re *regexp.Regexp) bool {
	for _, l := range labels {
		if re.MatchString(l) {
			return false
		}
	}
	return len(labels) > 0
}

func orBlank(label string) string {
	if label == "" {
		return "not a tapir volume of this configuration"
	}
	return "labelled " + label
}

// refusals are the volumes the run needed but kept for their chains.
func (v *volumes) refusals() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.refused...)
}

// current names the volumes in the drives, "" when none.
func (v *volumes) current() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	var ls []string
	for _, d := range v.drives {
		if d.cur != nil {
			ls = append(ls, v.used[d.curIdx].Label)
		}
	}
	return strings.Join(ls, ", ")
}

func (v *volumes) labels() string {
	var ls []string
	for _, u := range v.used {
		ls = append(ls, u.Label)
	}
	return strings.Join(ls, ", ")
}

// account adds a taped part to its volume's use.
func (v *volumes) account(label string, bytes int64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for i := range v.used {
		if v.used[i].Label == label {
			v.used[i].Files++
			v.used[i].Bytes += bytes
		}
	}
}

// finish closes the drives, ejects the volumes written when configured,
// and says what the next run expects.
func (v *volumes) finish(ctx context.Context, eject bool) (used []report.Volume, next string, notes []string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.ch == nil {
		return nil, "", notes
	}
	for _, d := range v.drives {
		d.unloaded()
		switch {
		case eject && d.wrote:
			// Eject ends the last file and unloads the drive.
			if err := d.ch.Eject(ctx); err != nil {
				notes = append(notes, fmt.Sprintf("taper: eject %s failed: %v", orDrive(d.name), err))
			}
		case d.cur != nil:
			if err := d.cur.Close(); err != nil {
				notes = append(notes, fmt.Sprintf("taper: closing %s: %v", d.cur.Name(), err))
			}
		}
		d.cur = nil
	}
	c, err := v.chooseFor(ctx, true)
	switch {
	case err == nil && c.Relabel:
		next = fmt.Sprintf("a new volume, labelled %s in slot %d", c.Label, c.Slot)
	case err == nil:
		next = fmt.Sprintf("volume %s in slot %d", c.Label, c.Slot)
	case errors.Is(err, taper.ErrNoVolume):
		next = err.Error() // says "no usable volume" already
	default:
		next = "no usable volume: " + err.Error()
	}
	return append([]report.Volume(nil), v.used...), next, notes
}

func orDrive(name string) string {
	if name == "" {
		return "the drive"
	}
	return name
}
