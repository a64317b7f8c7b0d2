package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/index/indexd"
	"github.com/tapir-backup/tapir/internal/clock"
	"github.com/tapir-backup/tapir/report/mail"
	"github.com/tapir-backup/tapir/taper"
)

// openChanger returns the changer of the configuration (or the one the
// caller injected for tests), for writing.
func openChanger(cfg *config.Config, deps Deps, log *slog.Logger) (taper.Changer, error) {
	return openChangerFor(cfg, deps, log, false)
}

// openChangerFor returns the changer of the configuration; readOnly opens
// its tape drives O_RDONLY (restore, verify, the index server: a drive
// they use can never be written).
func openChangerFor(cfg *config.Config, deps Deps, log *slog.Logger, readOnly bool) (taper.Changer, error) {
	if deps.Changer != nil {
		return deps.Changer, nil
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	clk := clock.Or(deps.Clock)
	tt := cfg.Tapetype()
	ch := cfg.Changer
	switch ch.Type {
	case "disk":
		return taper.NewDiskChanger(ch.Path, ch.Slots, int64(tt.Length), int64(tt.Blocksize), log)
	case "single":
		return taper.NewSingleChanger(taper.SingleConfig{Device: ch.Device, Clock: clk, Poll: time.Duration(ch.Poll),
			Remind: time.Duration(ch.Remind), Logger: log, DriveOptions: ch.DriveOptions, ReadOnly: readOnly})
	case "robot":
		return taper.NewRobotChanger(robotConfig(cfg, deps, log, readOnly))
	}
	return nil, fmt.Errorf("changer type %q is not known; use \"disk\", \"single\" or \"robot\"", ch.Type)
}

// openChangers returns one changer per drive a run writes with
// ([changer] tapers), sharing the changer's slots; the injected changer
// of a test is one drive.
func openChangers(cfg *config.Config, deps Deps, log *slog.Logger) ([]taper.Changer, error) {
	ch := cfg.Changer
	if deps.Changer != nil || ch.Tapers <= 1 || ch.Type == "single" {
		c, err := openChanger(cfg, deps, log)
		if err != nil {
			return nil, err
		}
		return []taper.Changer{c}, nil
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tt := cfg.Tapetype()
	var out []taper.Changer
	switch ch.Type {
	case "disk":
		ds, err := taper.NewDiskChangers(ch.Path, ch.Slots, int64(tt.Length), int64(tt.Blocksize), ch.Tapers, log)
		if err != nil {
			return nil, err
		}
		for _, d := range ds {
			out = append(out, d)
		}
	case "robot":
		var use []int
		for i := range ch.Tapers {
			use = append(use, ch.Drive+i)
		}
		rs, err := taper.NewRobotChangers(robotConfig(cfg, deps, log, false), use)
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			out = append(out, r)
		}
	default:
		return nil, fmt.Errorf("changer type %q is not known; use \"disk\", \"single\" or \"robot\"", ch.Type)
	}
	return out, nil
}

// robotConfig is the robot changer of the configuration.
func robotConfig(cfg *config.Config, deps Deps, log *slog.Logger, readOnly bool) taper.RobotConfig {
	ch := cfg.Changer
	return taper.RobotConfig{Changer: ch.Changer, MTX: ch.MTX, Drives: ch.Drives, Drive: ch.Drive,
		NoEjectBeforeUnload: ch.NoEjectToUnload, IgnoreBarcodes: ch.IgnoreBarcodes, StateFile: ch.StateFile,
		Clock: clock.Or(deps.Clock), Logger: log, DriveOptions: ch.DriveOptions, ReadOnly: readOnly}
}

// closeChanger releases a changer's drive without ejecting (changers that
// hold a device between calls; the others do nothing).
func closeChanger(ch taper.Changer) {
	ch.Close()
}

// askForVolume tells the people who run the site that a run needs a
// volume inserted: in the log and, when mailto is set, by mail.
func askForVolume(cfg *config.Config, deps Deps, log *slog.Logger, msg string) {
	tellOperator(cfg, deps, log, msg, fmt.Sprintf("The run waits for the volume for %s, then goes on without it (degraded: images stay on the holding disk).", time.Duration(cfg.Changer.Wait)))
}

// askForRestore tells the people who run the site that a restore or a
// verify needs a volume inserted.
func askForRestore(cfg *config.Config, deps Deps, log *slog.Logger, msg string) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tellOperator(cfg, deps, log, msg, "A restore or a verify waits for the volume until it is inserted or the restore is cancelled.")
}

// tellOperator logs a request for an operator and, when mailto is set,
// mails it with what happens meanwhile (then).
func tellOperator(cfg *config.Config, deps Deps, log *slog.Logger, msg, then string) {
	log.Warn("operator action needed: " + msg)
	if len(cfg.Mailto) == 0 {
		return
	}
	m := deps.Mailer
	if m == nil {
		m = Mailer(cfg, log)
	}
	o := mailOptions(cfg, "")
	msgText := fmt.Sprintf("%s\n\nConfiguration: %s\n%s\n", msg, cfg.File, then)
	mm := &mail.Message{From: o.From, To: o.To, Subject: fmt.Sprintf("%s TAPIR: %s", cfg.Org, msg), Text: msgText, Date: clock.Or(deps.Clock).Now()}
	if mm.From == "" {
		mm.From = "tapir@localhost"
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.Mail.Timeout)+30*time.Second)
	defer cancel()
	if err := m.Send(ctx, mm); err != nil {
		log.Error("could not mail the request for a volume", "err", err)
	}
}

// changerVolumes is the index server's, verify's and recover's way to a
// volume in a single or robot changer (the disk changer has
// indexd.DiskVolumes). It lends its one drive to one reader at a time. A
// volume that is not there is an error naming it and where to put it,
// unless the changer waits for a person (single) and the reader can ask
// one (Open's ask): then it ejects the volume of this configuration the
// drive holds, asks for the one wanted (through ask, the log and, with
// mailto, mail; reminded every [changer] remind) and waits for it.
type changerVolumes struct {
	ch    taper.Changer
	cat   *catalog.Catalog
	dev   string // the drive, for messages
	org   string // this configuration's org: only its volumes are ejected
	drive indexd.DrivePool
	// tell passes a request for a volume on to the site's people (log
	// and mail); nil: the log only.
	tell func(msg string)
}

// Properties declares the changer's one drive.
func (c *changerVolumes) Properties() indexd.SourceProperties {
	p := c.ch.Properties()
	return indexd.SourceProperties{Drives: 1, Where: p.Where, WaitsForPerson: p.WaitsForPerson}
}

// find returns the slot holding label.
func (c *changerVolumes) find(ctx context.Context, label string) (int, error) {
	inv, err := c.ch.Inventory(ctx)
	if err != nil {
		return 0, err
	}
	for _, s := range inv {
		if s.Label != nil && s.Label.Label == label {
			return s.Slot, nil
		}
	}
	where := "the changer"
	if c.ch.Properties().WaitsForPerson {
		where = "the drive " + c.dev
	}
	return 0, fmt.Errorf("volume %s is not in %s: load it, then try again (%w)", label, where, indexd.ErrVolumeMissing)
}

// Locate says where the volume is.
func (c *changerVolumes) Locate(ctx context.Context, label string) (string, error) {
	slot, err := c.find(ctx, label)
	if err != nil {
		return "", err
	}
	if c.ch.Properties().WaitsForPerson {
		return "the drive " + c.dev, nil
	}
	return fmt.Sprintf("slot %d", slot), nil
}

// Open loads the volume, checks its label and returns the drive rewound;
// with a single drive and an ask, it asks for a volume that is not there
// and waits for it.
func (c *changerVolumes) Open(ctx context.Context, label string, ask indexd.Ask) (taper.Device, func(), error) {
	give, err := c.drive.Take(ctx, "volume "+label)
	if err != nil {
		return nil, nil, err
	}
	release := func() {
		closeChanger(c.ch)
		give()
	}
	if c.ch.Properties().WaitsForPerson {
		return c.openSingle(ctx, label, ask, give, release)
	}
	slot, err := c.find(ctx, label)
	if err != nil {
		give()
		return nil, nil, err
	}
	dev, err := c.ch.Load(ctx, slot)
	if err != nil {
		give()
		return nil, nil, c.loadError(label, err)
	}
	l, err := taper.ReadLabel(dev)
	if err != nil || l.Label != label {
		release()
		if err == nil {
			err = fmt.Errorf("the drive holds volume %s now", l.Label)
		}
		return nil, nil, fmt.Errorf("volume %s: %v (%w)", label, err, indexd.ErrVolumeMissing)
	}
	if err := dev.Rewind(); err != nil {
		release()
		return nil, nil, fmt.Errorf("volume %s: rewind after reading its label: %w", label, err)
	}
	return dev, release, nil
}

// openSingle opens the volume in a single drive: Load reads the label of
// the cartridge there (the inventory then says what it read, without
// moving the tape), so the drive is opened and its label read once. A
// volume that is not there is asked for when someone can be asked.
func (c *changerVolumes) openSingle(ctx context.Context, label string, ask indexd.Ask, give, release func()) (taper.Device, func(), error) {
	dev, err := c.ch.Load(ctx, 1)
	var inv []taper.SlotInfo
	switch {
	case err != nil && !errors.Is(err, taper.ErrNoMedium):
		give()
		return nil, nil, c.loadError(label, err)
	case err == nil:
		if inv, err = c.ch.Inventory(ctx); err != nil {
			release()
			return nil, nil, fmt.Errorf("volume %s: %w", label, err)
		}
		if len(inv) == 1 && inv[0].Label != nil && inv[0].Label.Label == label {
			return dev, release, nil
		}
		closeChanger(c.ch)
	}
	missing := fmt.Errorf("volume %s is not in the drive %s: load it, then try again (%w)", label, c.dev, indexd.ErrVolumeMissing)
	if len(inv) == 1 && inv[0].Label != nil {
		missing = fmt.Errorf("volume %s is not in the drive %s, which holds volume %s: load it, then try again (%w)", label, c.dev, inv[0].Label.Label, indexd.ErrVolumeMissing)
	}
	if ask == nil {
		give()
		return nil, nil, missing
	}
	dev, err = c.waitFor(ctx, label, inv, ask)
	if err != nil {
		give()
		return nil, nil, err
	}
	return dev, release, nil
}

// loadError says why the drive could not be loaded for reading label.
func (c *changerVolumes) loadError(label string, err error) error {
	if errors.Is(err, taper.ErrBusy) {
		return fmt.Errorf("volume %s: the drive %s is busy (a backup run is writing); try again when it is done: %w", label, c.dev, err)
	}
	return fmt.Errorf("volume %s: %w", label, err)
}

// waitFor asks a person for the volume label and waits until it is in the
// drive or ctx ends. A volume of this configuration in the drive is
// ejected first (the reader is done with it, or it is not the one needed),
// so that the person only has to swap cartridges; anything else is left
// where it is.
func (c *changerVolumes) waitFor(ctx context.Context, label string, inv []taper.SlotInfo, ask indexd.Ask) (taper.Device, error) {
	for _, s := range inv {
		if s.Label != nil && s.Label.Org == c.org && c.org != "" {
			if err := c.ch.Eject(ctx); err != nil {
				return nil, fmt.Errorf("volume %s is needed; ejecting volume %s from the drive %s failed: %w", label, s.Label.Label, c.dev, err)
			}
		}
	}
	prompt := func(msg string) {
		ask(msg)
		if c.tell != nil {
			c.tell(msg)
		}
	}
	want := func(l *taper.Label, err error) bool { return err == nil && l.Label == label }
	dev, _, err := c.ch.WaitFor(ctx, "volume "+label, want, prompt)
	if err != nil {
		return nil, fmt.Errorf("volume %s: %w", label, err)
	}
	return dev, nil
}

// VolumeSource returns how the index server, verify and recover reach the
// volumes of cfg, through their own changer (never the run's). cat may be
// nil (the disk changer then finds volumes by reading labels).
func VolumeSource(cfg *config.Config, deps Deps, cat *catalog.Catalog, log *slog.Logger) (indexd.VolumeSource, error) {
	ch, err := openChangerFor(cfg, deps, log, true)
	if err != nil {
		return nil, err
	}
	vs := volumeSourceOf(ch, cfg, cat)
	if cv, ok := vs.(*changerVolumes); ok {
		cv.tell = func(msg string) { askForRestore(cfg, deps, log, msg) }
	}
	if len(cfg.Vaults) == 0 {
		return vs, nil
	}
	// The copy volumes of each vault are read through its own changer.
	sets := &setSources{main: vs}
	for i := range cfg.Vaults {
		v := &cfg.Vaults[i]
		vcfg := cfg.VaultConfig(v)
		vdeps := deps
		vdeps.Changer = deps.VaultChangers[v.Name]
		var src indexd.VolumeSource
		vch, err := openChangerFor(vcfg, vdeps, log, true)
		if err != nil {
			// The copies cannot be read now; the images' own volumes
			// (and other copies) still can: a restore that needs one of
			// these says why it cannot.
			if log != nil {
				log.Warn("the changer of a vault's copy volumes cannot be opened; its copies are not read", "vault", v.Name, "err", err)
			}
			src = noSource{fmt.Errorf("the changer of the copy volumes of vault %s ([vault.changer]) cannot be opened: %v", v.Name, err)}
		} else {
			src = volumeSourceOf(vch, vcfg, cat)
			if cv, ok := src.(*changerVolumes); ok {
				cv.tell = func(msg string) { askForRestore(vcfg, deps, log, msg) }
			}
		}
		sets.vaults = append(sets.vaults, vaultSource{re: vcfg.LabelRegexp(), src: src})
	}
	return sets, nil
}

// setSources reads the volumes of every label set: a label a vault's
// labelstr matches from that vault's changer, every other from the
// configuration's.
type setSources struct {
	main   indexd.VolumeSource
	vaults []vaultSource
}

type vaultSource struct {
	re  *regexp.Regexp
	src indexd.VolumeSource
}

func (s *setSources) of(label string) indexd.VolumeSource {
	for _, v := range s.vaults {
		if v.re.MatchString(label) {
			return v.src
		}
	}
	return s.main
}

func (s *setSources) Properties() indexd.SourceProperties {
	p := s.main.Properties()
	for _, v := range s.vaults {
		p.Where += " (copy volumes: " + v.src.Properties().Where + ")"
		p.WaitsForPerson = p.WaitsForPerson || v.src.Properties().WaitsForPerson
	}
	return p
}

func (s *setSources) Locate(ctx context.Context, label string) (string, error) {
	return s.of(label).Locate(ctx, label)
}

func (s *setSources) Open(ctx context.Context, label string, ask indexd.Ask) (taper.Device, func(), error) {
	return s.of(label).Open(ctx, label, ask)
}

// volumeSourceOf is the VolumeSource over ch: DiskVolumes for a disk
// changer (it reads the labels of the slot directories without loading
// them), the changer-backed source otherwise.
func volumeSourceOf(ch taper.Changer, cfg *config.Config, cat *catalog.Catalog) indexd.VolumeSource {
	if ch.Properties().Kind == "disk" {
		return &indexd.DiskVolumes{Changer: ch, Catalog: cat}
	}
	return &changerVolumes{ch: ch, cat: cat, dev: cfg.Changer.Device, org: cfg.Org}
}

// noSource is a changer that could not be opened: every volume is
// missing, for the reason err.
type noSource struct{ err error }

func (n noSource) Properties() indexd.SourceProperties { return indexd.SourceProperties{Drives: 1} }

func (n noSource) Locate(context.Context, string) (string, error) {
	return "", fmt.Errorf("%w: %v", indexd.ErrVolumeMissing, n.err)
}

func (n noSource) Open(context.Context, string, indexd.Ask) (taper.Device, func(), error) {
	return nil, nil, fmt.Errorf("%w: %v", indexd.ErrVolumeMissing, n.err)
}
