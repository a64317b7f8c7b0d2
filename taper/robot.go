package taper

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/tapir-backup/tapir/internal/clock"
)

// ErrNotScanned is wrapped in SlotInfo.Err by RobotChanger.Inventory for a
// full slot whose label tapir has not read yet (Scan reads them).
var ErrNotScanned = errors.New("label not read yet")

// Defaults of the robot changer.
const (
	DefaultRobotLoadWait   = 5 * time.Minute
	DefaultRobotPoll       = 5 * time.Second
	DefaultRobotMtxTimeout = 20 * time.Minute
)

// RobotConfig configures the robot changer.
type RobotConfig struct {
	// Changer is the media changer's device, given to mtx -f (a /dev/sgN
	// or a /dev/tape/by-id/...-changer link).
	Changer string
	// MTX is the mtx program; default "mtx" (found in PATH).
	MTX string
	// Drives lists the tape device of each drive, indexed by mtx's drive
	// number (Data Transfer Element N): the drives that are tapir's. Drive
	// picks the one NewRobotChanger uses; NewRobotChangers takes the list
	// of drives to use at once. A drive of the library that is not listed
	// (an empty device, or beyond the list) is never touched.
	Drives []string
	Drive  int
	// NoEjectBeforeUnload: the library takes the cartridge out of the
	// drive by itself. By default the drive ejects it (MTOFFL) first, as
	// most libraries need.
	NoEjectBeforeUnload bool
	// IgnoreBarcodes runs `mtx nobarcode status`: the library has no
	// barcode reader, or its barcodes are not to be trusted. Labels are
	// then remembered by slot.
	IgnoreBarcodes bool
	// StateFile keeps what tapir learned (barcode -> label) between runs;
	// "" keeps it in memory only.
	StateFile string
	Open      DriveOpener   // default OpenTapeDrive
	Clock     clock.Clock   // default clock.Real
	LoadWait  time.Duration // how long a drive may take to come online after a load; default DefaultRobotLoadWait
	Poll      time.Duration // how often to look while waiting; default DefaultRobotPoll
	Timeout   time.Duration // longest mtx run; default DefaultRobotMtxTimeout
	Logger    *slog.Logger  // default: discard
	// DriveOptions are the st options set at each open (MTSETDRVBUFFER);
	// nil: DefaultDriveOptions, empty: none.
	DriveOptions []string
	// ReadOnly: the changer is used only to read (restore, verify, the
	// index server): every drive open is O_RDONLY and the Tape refuses
	// writes (ErrWriteProtected). Eject before unload (MTOFFL) and the
	// drive options (MTSETDRVBUFFER) still work: st allows its ioctls on
	// a read-only descriptor.
	ReadOnly bool
}

// RobotChanger is the `robot` changer: a SCSI media changer driven by the
// mtx program, with one of its drives for tapir. Slots are mtx's storage
// element numbers; import/export elements (the mailbox) are not used.
// It learns each volume's label when it loads it, and keeps what it
// learned by barcode (by slot without barcodes). It is safe for concurrent
// use.
//
// A RobotChanger is one drive's view of the library: NewRobotChangers
// makes one view per drive tapir uses at once. The views share one lock
// (mtx runs on the library one at a time, and every move is decided on a
// fresh `mtx status` under it), what was learned about the volumes, and
// the state file, which only that lock's holder writes.
type RobotChanger struct {
	*robotGroup
	driveNo int    // mtx's number of this view's drive
	drive   string // its device

	op sync.Mutex // one Load, Eject, Close, Labelled or ReadLabelAt of this view at a time

	// Under op:
	current *Tape
	curKey  string // label key of the loaded volume

	// Under robotGroup.mu:
	holding int // home slot of the volume this view holds open (lent by Load, not ejected or closed), 0 for none
}

// robotGroup is what the views of one library share.
type robotGroup struct {
	cfg RobotConfig
	mtx mtxRunner
	log *slog.Logger

	// mu serializes the mtx runs and the moves of the group and guards
	// labels, the views' holding and the state file. A view takes its op
	// lock first, then mu.
	mu     sync.Mutex
	labels map[string]robotLabel
	views  []*RobotChanger
}

// robotLabel is what a slot's volume was found to hold.
type robotLabel struct {
	Label   *Label `json:"label,omitempty"`
	Blank   bool   `json:"blank,omitempty"`
	Foreign string `json:"foreign,omitempty"`
	Damaged string `json:"damaged,omitempty"` // ReadLabel's ErrDamagedLabel error: the slot is unreadable
}

// damagedError is a remembered damaged label: the error ReadLabel gave.
func (l robotLabel) damagedError() error { return rememberedDamage(l.Damaged) }

// rememberedDamage is the message of a remembered ErrDamagedLabel error.
type rememberedDamage string

func (e rememberedDamage) Error() string        { return string(e) }
func (e rememberedDamage) Is(target error) bool { return target == ErrDamagedLabel }

type robotState struct {
	Labels map[string]robotLabel `json:"labels"`
}

var _ Changer = (*RobotChanger)(nil)

// NewRobotChanger returns the robot changer of cfg.Drive:
// NewRobotChangers(cfg, []int{cfg.Drive})[0]. It runs nothing yet.
func NewRobotChanger(cfg RobotConfig) (*RobotChanger, error) {
	cs, err := NewRobotChangers(cfg, []int{cfg.Drive})
	if err != nil {
		return nil, err
	}
	return cs[0], nil
}

// NewRobotChangers returns one view of the library per drive in use (mtx
// drive numbers, indexes into cfg.Drives, e.g. []int{0, 1}; cfg.Drive is
// ignored). The views share one mtx lock, what was learned about the
// volumes and the state file. Each view loads, ejects and closes its own
// drive; a slot whose volume another view holds open is refused
// (ErrInOtherDrive). It runs nothing yet.
func NewRobotChangers(cfg RobotConfig, use []int) ([]*RobotChanger, error) {
	switch {
	case cfg.Changer == "":
		return nil, errors.New("robot changer: no changer device given; set the changer's device (the media changer, e.g. /dev/sg3)")
	case len(cfg.Drives) == 0:
		return nil, fmt.Errorf("robot changer %s: no tape drives given; list the drive devices (e.g. /dev/nst0) in mtx's drive order", cfg.Changer)
	case len(use) == 0:
		return nil, fmt.Errorf("robot changer %s: no drive to use; say which of the drives (0 to %d) tapir uses", cfg.Changer, len(cfg.Drives)-1)
	}
	seen := map[int]bool{}
	devs := map[string]int{}
	for _, n := range use {
		switch {
		case n < 0 || n >= len(cfg.Drives):
			return nil, fmt.Errorf("robot changer %s: drive %d: the drives configured are 0 to %d", cfg.Changer, n, len(cfg.Drives)-1)
		case cfg.Drives[n] == "":
			return nil, fmt.Errorf("robot changer %s: drive %d has no device", cfg.Changer, n)
		case seen[n]:
			return nil, fmt.Errorf("robot changer %s: drive %d is listed twice among the drives to use", cfg.Changer, n)
		}
		if m, dup := devs[cfg.Drives[n]]; dup {
			return nil, fmt.Errorf("robot changer %s: drives %d and %d have the same device %s; each drive has its own", cfg.Changer, m, n, cfg.Drives[n])
		}
		seen[n], devs[cfg.Drives[n]] = true, n
	}
	if cfg.MTX == "" {
		cfg.MTX = "mtx"
	}
	if err := checkDriveOptions(cfg.DriveOptions); err != nil {
		return nil, fmt.Errorf("robot changer %s: %w", cfg.Changer, err)
	}
	if cfg.Open == nil {
		cfg.Open = OpenTapeDrive
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real
	}
	if cfg.LoadWait <= 0 {
		cfg.LoadWait = DefaultRobotLoadWait
	}
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultRobotPoll
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultRobotMtxTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := &robotGroup{
		cfg:    cfg,
		mtx:    mtxRunner{program: cfg.MTX, changer: cfg.Changer, noBarcode: cfg.IgnoreBarcodes, timeout: cfg.Timeout},
		log:    log,
		labels: map[string]robotLabel{},
	}
	if cfg.StateFile != "" {
		b, err := os.ReadFile(cfg.StateFile)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("robot changer %s: state: %w", cfg.Changer, err)
		default:
			var st robotState
			if err := json.Unmarshal(b, &st); err != nil {
				return nil, fmt.Errorf("robot changer %s: state file %s is damaged (%v); move it away, tapir rebuilds it by scanning", cfg.Changer, cfg.StateFile, err)
			}
			if st.Labels != nil {
				g.labels = st.Labels
			}
		}
	}
	for _, n := range use {
		g.views = append(g.views, &RobotChanger{robotGroup: g, driveNo: n, drive: cfg.Drives[n]})
	}
	return g.views, nil
}

func (c *RobotChanger) name() string { return "robot changer " + c.cfg.Changer }

// Properties declares the robot changer: the library's drives tapir uses
// and this view's, labels learned by loading each volume once (Scan), no
// person.
func (c *RobotChanger) Properties() Properties {
	return Properties{Kind: "robot", Drives: len(c.views), Drive: c.driveNo, NeedsScan: true, KnowsDrive: true, Where: "the library " + c.cfg.Changer}
}

// Where names a storage slot of the library.
func (c *RobotChanger) Where(slot int) string {
	return fmt.Sprintf("slot %d of the library %s", slot, c.cfg.Changer)
}

// WaitFor is not supported: the robot loads volumes itself.
func (c *RobotChanger) WaitFor(ctx context.Context, what string, want func(*Label, error) bool, prompt func(string)) (Device, *Label, error) {
	return nil, nil, notSupported(c.name(), "wait for "+what, "only a single changer waits for a person; put the volume into a storage slot of the library (through the mailbox) and load it")
}

// Erase is not supported: a tape is erased by labelling it again.
func (c *RobotChanger) Erase(ctx context.Context, slot int, org, label string) (int, error) {
	return 0, notSupported(c.name(), fmt.Sprintf("erase slot %d (volume %s)", slot, label), "only a disk changer erases a volume; label the tape again (tapir label --force) to reuse it")
}

// Drive says, from `mtx status`, what this view's drive holds.
func (c *RobotChanger) Drive(ctx context.Context) (DriveInfo, error) {
	st, err := c.Status(ctx)
	if err != nil {
		return DriveInfo{}, err
	}
	d, ok := st.Drive(c.driveNo)
	if !ok {
		return DriveInfo{}, c.errf("the library has no drive %d", c.driveNo)
	}
	return DriveInfo{Drive: c.driveNo, Device: c.drive, Full: d.Full, Slot: d.Source, Barcode: d.Barcode}, nil
}

func (g *robotGroup) errf(format string, args ...any) error {
	return fmt.Errorf("robot changer %s: "+format, append([]any{g.cfg.Changer}, args...)...)
}

// Status runs `mtx status` and returns what the library reports.
func (g *robotGroup) Status(ctx context.Context) (*MtxStatus, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.statusLocked(ctx)
}

func (g *robotGroup) statusLocked(ctx context.Context) (*MtxStatus, error) {
	st, err := g.mtx.status(ctx)
	if err != nil {
		return nil, g.errf("%w", err)
	}
	return st, nil
}

// Slots returns the highest storage element number: slots are numbered 1
// to it (Inventory leaves out import/export elements).
func (c *RobotChanger) Slots(ctx context.Context) (int, error) {
	st, err := c.Status(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range st.Slots {
		n = max(n, s.Slot)
	}
	return n, nil
}

func (c *robotGroup) key(barcode string, slot int) string {
	if barcode != "" && !c.cfg.IgnoreBarcodes {
		return barcode
	}
	return "slot:" + strconv.Itoa(slot)
}

func (c *robotGroup) saveLocked() {
	if c.cfg.StateFile == "" {
		return
	}
	b, err := json.MarshalIndent(robotState{Labels: c.labels}, "", "  ")
	if err == nil {
		tmp := c.cfg.StateFile + ".tmp"
		if err = os.MkdirAll(filepath.Dir(c.cfg.StateFile), 0o750); err == nil {
			if err = os.WriteFile(tmp, b, 0o640); err == nil {
				err = os.Rename(tmp, c.cfg.StateFile)
			}
		}
	}
	if err != nil {
		c.log.Warn("robot changer: cannot save what it learned about the volumes; it will read their labels again", "file", c.cfg.StateFile, "err", err)
	}
}

func (c *robotGroup) learnLocked(key string, l *Label, err error) {
	var fe *ForeignError
	switch {
	case err == nil:
		c.labels[key] = robotLabel{Label: l}
	case errors.Is(err, ErrBlank):
		c.labels[key] = robotLabel{Blank: true}
	case errors.As(err, &fe):
		c.labels[key] = robotLabel{Foreign: fe.Found}
	case errors.Is(err, ErrDamagedLabel):
		c.labels[key] = robotLabel{Damaged: err.Error()}
	default:
		delete(c.labels, key)
	}
	c.saveLocked()
}

// Load puts the volume of a storage slot into this view's drive, first
// putting back the one there (ejected from the drive, then unloaded into
// its home slot), waits for the drive, reads the label (to remember it)
// and returns the drive rewound. A slot whose volume another view holds
// open is refused with ErrInOtherDrive, moving nothing. A slot whose
// volume sits in another of tapir's drives that no view holds open (left
// there by an earlier run) is unloaded from there first; one in a drive
// that is not tapir's is refused with an error that says what to do.
func (c *RobotChanger) Load(ctx context.Context, slot int) (Device, error) {
	c.op.Lock()
	defer c.op.Unlock()
	return c.loadLocked(ctx, slot)
}

// holderLocked returns the view other than c that holds slot's volume
// open, nil when none.
func (c *RobotChanger) holderLocked(slot int) *RobotChanger {
	if slot < 1 { // holding 0 is no slot
		return nil
	}
	for _, v := range c.views {
		if v != c && v.holding == slot {
			return v
		}
	}
	return nil
}

// inOtherDrive is the error of a Load of slot that view v holds.
func (c *RobotChanger) inOtherDrive(slot int, v *RobotChanger) error {
	return c.errf("load slot %d into drive %d: %w: drive %d (%s) is using it; choose another slot, or wait until drive %d has ejected it",
		slot, c.driveNo, ErrInOtherDrive, v.driveNo, v.drive, v.driveNo)
}

// loadLocked loads slot; c.op is held.
func (c *RobotChanger) loadLocked(ctx context.Context, slot int) (*Tape, error) {
	g := c.robotGroup
	if err := ctx.Err(); err != nil {
		return nil, c.errf("load slot %d: %w", slot, err)
	}
	g.mu.Lock()
	locked := true
	defer func() {
		if locked {
			g.mu.Unlock()
		}
	}()
	if v := c.holderLocked(slot); v != nil {
		return nil, c.inOtherDrive(slot, v)
	}
	st, err := g.statusLocked(ctx)
	if err != nil {
		return nil, err
	}
	s, ok := st.Slot(slot)
	if !ok {
		return nil, c.errf("load slot %d: no such slot (the library lists %d storage elements)", slot, len(st.Slots))
	}
	if s.ImportExport {
		return nil, c.errf("load slot %d: it is an import/export element (the mailbox); move the volume into a storage slot first (mtx -f %s transfer %d SLOT)", slot, c.cfg.Changer, slot)
	}
	d, ok := st.Drive(c.driveNo)
	if !ok {
		return nil, c.errf("load slot %d: the library has no drive %d", slot, c.driveNo)
	}
	if d.Full && d.Source == slot {
		c.holding = slot
		g.mu.Unlock()
		locked = false
		tp, err := c.currentLocked()
		if err == nil {
			err = tp.Rewind()
		}
		if err != nil {
			g.mu.Lock()
			c.holding = 0
			g.mu.Unlock()
			return nil, c.errf("load slot %d (already in drive %d): %w", slot, c.driveNo, err)
		}
		if c.curKey == "" {
			c.curKey = g.key(d.Barcode, slot)
		}
		return tp, nil
	}
	// The slot's volume in another drive that no view holds open: put it
	// back first.
	for _, od := range st.Drives {
		if od.Index == c.driveNo || !od.Full || od.Source != slot {
			continue
		}
		if err := c.unloadOtherLocked(ctx, st, od); err != nil {
			return nil, err
		}
		if st, err = g.statusLocked(ctx); err != nil {
			return nil, err
		}
		s, _ = st.Slot(slot)
		d, _ = st.Drive(c.driveNo)
		break
	}
	if !s.Full {
		return nil, c.errf("load slot %d: the slot is empty", slot)
	}
	if d.Full {
		if err := c.unloadLocked(ctx, st, d); err != nil {
			return nil, err
		}
	}
	if _, err := g.mtx.run(ctx, "load", strconv.Itoa(slot), strconv.Itoa(c.driveNo)); err != nil {
		return nil, c.errf("load slot %d into drive %d: %w", slot, c.driveNo, err)
	}
	g.log.Info("robot changer: loaded", "slot", slot, "drive", c.driveNo, "barcode", s.Barcode)
	// The volume is this view's from now on: wait for the drive and read
	// the label without keeping the other views from the library.
	c.holding = slot
	g.mu.Unlock()
	locked = false
	tp, err := c.waitOnline(ctx, slot)
	if err != nil {
		g.mu.Lock()
		c.holding = 0
		g.mu.Unlock()
		return nil, err
	}
	c.current, c.curKey = tp, g.key(s.Barcode, slot)
	l, lerr := ReadLabel(tp)
	g.mu.Lock()
	g.learnLocked(c.curKey, l, lerr)
	g.mu.Unlock()
	if err := tp.Rewind(); err != nil {
		return nil, c.errf("load slot %d: %w", slot, err)
	}
	return tp, nil
}

// unloadOtherLocked puts back the volume that drive od (not this view's)
// holds, for this view to load it; g.mu is held. A drive that a view of
// the group holds open is not touched (ErrInOtherDrive), nor one that is
// not tapir's.
func (c *RobotChanger) unloadOtherLocked(ctx context.Context, st *MtxStatus, od MtxDrive) error {
	g := c.robotGroup
	slot := od.Source
	for _, v := range g.views {
		if v.driveNo == od.Index {
			if v.holding != 0 {
				return c.inOtherDrive(slot, v)
			}
			break
		}
	}
	if od.Index >= len(c.cfg.Drives) || c.cfg.Drives[od.Index] == "" {
		return c.errf("load slot %d into drive %d: its volume %s is in drive %d of the library, which is not one of tapir's drives (the configured drives are 0 to %d); if nothing uses that drive, put the volume back with mtx -f %s unload %d %d, or load another slot",
			slot, c.driveNo, orUnknown(od.Barcode), od.Index, len(c.cfg.Drives)-1, c.cfg.Changer, slot, od.Index)
	}
	dev := c.cfg.Drives[od.Index]
	g.log.Info("robot changer: the slot's volume is in another drive; putting it back first", "slot", slot, "drive", od.Index, "device", dev, "for", c.driveNo)
	drv, err := c.cfg.Open(dev, c.cfg.ReadOnly)
	if err != nil {
		return c.errf("load slot %d into drive %d: its volume %s is in drive %d (%s), which cannot be opened to put it back: %v; if another program is using that drive, wait until it is done, or load another slot",
			slot, c.driveNo, orUnknown(od.Barcode), od.Index, dev, tapeErrno(dev, "open", err))
	}
	tp, err := newTape(dev, drv, tapeConfig{log: g.log, driveOptions: c.cfg.DriveOptions, readOnly: c.cfg.ReadOnly})
	if err != nil {
		return c.errf("load slot %d into drive %d: drive %d (%s): %w", slot, c.driveNo, od.Index, dev, err)
	}
	return g.unloadDriveLocked(ctx, st, od, dev, tp, g.key(od.Barcode, od.Source))
}

func orUnknown(barcode string) string {
	if barcode == "" {
		return "(no barcode)"
	}
	return barcode
}

// currentLocked returns the open tape in this view's drive, opening it if
// needed; c.op is held.
func (c *RobotChanger) currentLocked() (*Tape, error) {
	if c.current != nil && !c.current.closed {
		return c.current, nil
	}
	c.current = nil
	drv, err := c.cfg.Open(c.drive, c.cfg.ReadOnly)
	if err != nil {
		return nil, fmt.Errorf("tape %s: open: %w", c.drive, tapeErrno(c.drive, "open", err))
	}
	tp, err := newTape(c.drive, drv, tapeConfig{log: c.log, driveOptions: c.cfg.DriveOptions, readOnly: c.cfg.ReadOnly})
	if err != nil {
		return nil, err
	}
	c.current = tp
	return tp, nil
}

// waitOnline opens the drive until it reports a volume online.
func (c *RobotChanger) waitOnline(ctx context.Context, slot int) (*Tape, error) {
	deadline := c.cfg.Clock.Now().Add(c.cfg.LoadWait)
	var last error
	for {
		drv, err := c.cfg.Open(c.drive, c.cfg.ReadOnly)
		if err == nil {
			var tp *Tape
			if tp, err = newTape(c.drive, drv, tapeConfig{log: c.log, driveOptions: c.cfg.DriveOptions, readOnly: c.cfg.ReadOnly}); err == nil {
				st, serr := tp.Status()
				if serr == nil && st.Online {
					return tp, nil
				}
				tp.Close()
				err = serr
			}
		} else {
			err = tapeErrno(c.drive, "open", err)
		}
		if err != nil {
			last = err
		}
		if !c.cfg.Clock.Now().Before(deadline) {
			if last != nil {
				return nil, c.errf("load slot %d: drive %d (%s) did not come online within %v: %v", slot, c.driveNo, c.drive, c.cfg.LoadWait, last)
			}
			return nil, c.errf("load slot %d: drive %d (%s) did not come online within %v; check the drive and the library", slot, c.driveNo, c.drive, c.cfg.LoadWait)
		}
		select {
		case <-ctx.Done():
			return nil, c.errf("load slot %d: waiting for drive %d (%s) to come online: %w", slot, c.driveNo, c.drive, ctx.Err())
		case <-c.cfg.Clock.After(c.cfg.Poll):
		}
	}
}

// unloadLocked puts the volume in this view's drive back into its home
// slot (or the first empty storage slot when the library does not know
// its home); c.op and g.mu are held.
func (c *RobotChanger) unloadLocked(ctx context.Context, st *MtxStatus, d MtxDrive) error {
	tp := c.current
	c.current = nil
	c.holding = 0
	if tp != nil && tp.closed { // the caller closed the device it was given
		tp.ejected = true
		tp = nil
	}
	if tp == nil && !c.cfg.NoEjectBeforeUnload {
		var err error
		if tp, err = c.currentLocked(); err != nil {
			return c.errf("unload drive %d: %w", c.driveNo, err)
		}
		c.current = nil
	}
	key := c.curKey
	c.curKey = ""
	if key == "" && (d.Barcode != "" || d.Source > 0) {
		key = c.key(d.Barcode, d.Source)
	}
	return c.unloadDriveLocked(ctx, st, d, c.drive, tp, key)
}

// unloadDriveLocked puts the volume in drive d (device dev, open as tp, or
// nil when not opened) back into its home slot, reading its label once
// more (under key) when the drive is online: the run may have written a
// new one. tp is ejected (MTOFFL, unless NoEjectBeforeUnload) and closed,
// and fails with ErrNoMedium from then on. g.mu is held.
func (g *robotGroup) unloadDriveLocked(ctx context.Context, st *MtxStatus, d MtxDrive, dev string, tp *Tape, key string) error {
	if tp != nil {
		if key != "" {
			if st, err := tp.Status(); err == nil && st.Online {
				if err := tp.finish("unload"); err == nil {
					l, lerr := ReadLabel(tp)
					g.learnLocked(key, l, lerr)
				}
			}
		}
		var err error
		if !g.cfg.NoEjectBeforeUnload {
			err = tp.Eject()
		}
		cerr := tp.Close()
		tp.ejected = true // a device handed out before fails with ErrNoMedium
		if err != nil {
			return g.errf("unload drive %d (%s): %w", d.Index, dev, err)
		}
		if cerr != nil {
			return g.errf("unload drive %d (%s): %w", d.Index, dev, cerr)
		}
	}
	home := d.Source
	if s, ok := st.Slot(home); home == 0 || !ok || s.Full {
		home = 0
		for _, s := range st.Slots {
			if !s.Full && !s.ImportExport {
				home = s.Slot
				break
			}
		}
		if home == 0 {
			return g.errf("unload drive %d: no empty storage slot to put the volume %s in", d.Index, d.Barcode)
		}
		g.log.Warn("robot changer: the volume's home slot is unknown or taken; unloading into the first empty slot", "drive", d.Index, "slot", home)
	}
	if _, err := g.mtx.run(ctx, "unload", strconv.Itoa(home), strconv.Itoa(d.Index)); err != nil {
		return g.errf("unload drive %d into slot %d: %w", d.Index, home, err)
	}
	g.log.Info("robot changer: unloaded", "drive", d.Index, "slot", home, "barcode", d.Barcode)
	return nil
}

// Eject puts the volume in this view's drive back into its slot (ending
// any file being written). An empty drive is not an error. The other
// views' drives are not touched.
func (c *RobotChanger) Eject(ctx context.Context) error {
	c.op.Lock()
	defer c.op.Unlock()
	g := c.robotGroup
	g.mu.Lock()
	defer g.mu.Unlock()
	st, err := g.statusLocked(ctx)
	if err != nil {
		return err
	}
	d, ok := st.Drive(c.driveNo)
	if !ok {
		return c.errf("eject: the library has no drive %d", c.driveNo)
	}
	if !d.Full {
		if c.current != nil {
			c.current.Close()
			c.current.ejected = true
			c.current = nil
		}
		c.holding, c.curKey = 0, ""
		return nil
	}
	return c.unloadLocked(ctx, st, d)
}

// Close releases this view's drive without moving anything: the device
// it lent is closed, and the volume in the drive is no longer held open
// (another view may put it back to load it).
func (c *RobotChanger) Close() error {
	c.op.Lock()
	defer c.op.Unlock()
	c.mu.Lock()
	c.holding = 0
	c.mu.Unlock()
	if c.current == nil {
		return nil
	}
	err := c.current.Close()
	c.current = nil
	return err
}

// Inventory reports every storage slot (import/export elements left out)
// from `mtx status` and what tapir learned when it last loaded each
// volume; it moves nothing. A volume in a drive, any drive of the
// library, is reported in its home slot. A full slot whose volume tapir
// has not read yet has an Err wrapping ErrNotScanned.
func (c *RobotChanger) Inventory(ctx context.Context) ([]SlotInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, err := c.statusLocked(ctx)
	if err != nil {
		return nil, err
	}
	inDrive := map[int]MtxDrive{}
	for _, d := range st.Drives {
		if d.Full && d.Source > 0 {
			inDrive[d.Source] = d
		}
	}
	var out []SlotInfo
	for _, s := range st.Slots {
		if s.ImportExport {
			continue
		}
		barcode, full := s.Barcode, s.Full
		if d, ok := inDrive[s.Slot]; ok && !s.Full {
			barcode, full = d.Barcode, true
		}
		si := SlotInfo{Slot: s.Slot}
		if !full {
			si.Empty = true
			out = append(out, si)
			continue
		}
		key := c.key(barcode, s.Slot)
		l, ok := c.labels[key]
		switch {
		case !ok:
			what := "the volume"
			if barcode != "" {
				what = "volume " + barcode
			}
			si.Err = c.errf("slot %d holds %s: %w (scan the library: tapir loads each volume once to read it)", s.Slot, what, ErrNotScanned)
		case l.Label != nil:
			si.Label = l.Label
		case l.Blank:
			si.Blank = true
		case l.Damaged != "":
			si.Err = l.damagedError()
		default:
			si.Foreign = l.Foreign
		}
		out = append(out, si)
	}
	return out, nil
}

// ReadLabelAt loads the volume of a slot into this view's drive to read
// its label, and reports it as Inventory would. The volume stays in the
// drive.
func (c *RobotChanger) ReadLabelAt(ctx context.Context, slot int) SlotInfo {
	c.op.Lock()
	defer c.op.Unlock()
	if _, err := c.loadLocked(ctx, slot); err != nil {
		return SlotInfo{Slot: slot, Err: err}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.labels[c.curKey]
	switch {
	case !ok:
		return SlotInfo{Slot: slot, Err: c.errf("slot %d: the label could not be read", slot)}
	case l.Label != nil:
		return SlotInfo{Slot: slot, Label: l.Label}
	case l.Blank:
		return SlotInfo{Slot: slot, Blank: true}
	case l.Damaged != "":
		return SlotInfo{Slot: slot, Err: l.damagedError()}
	}
	return SlotInfo{Slot: slot, Foreign: l.Foreign}
}

// Scan reads the label of every full storage slot tapir has not read yet
// (ReadLabelAt, with this view's drive) and returns the inventory. It
// moves volumes.
func (c *RobotChanger) Scan(ctx context.Context) ([]SlotInfo, error) {
	inv, err := c.Inventory(ctx)
	if err != nil {
		return nil, err
	}
	for i, si := range inv {
		if errors.Is(si.Err, ErrNotScanned) {
			inv[i] = c.ReadLabelAt(ctx, si.Slot)
			if err := ctx.Err(); err != nil {
				return nil, c.errf("scan: %w", err)
			}
		}
	}
	return inv, nil
}

// Labelled tells the changer that the volume in this view's drive now
// carries l (tapir just wrote the label), so that what it remembers of
// that barcode stays true: a volume it took for blank must never be
// offered as blank again once it holds data.
func (c *RobotChanger) Labelled(ctx context.Context, l *Label) error {
	c.op.Lock()
	defer c.op.Unlock()
	if c.curKey != "" {
		c.mu.Lock()
		c.learnLocked(c.curKey, l, nil)
		c.mu.Unlock()
	}
	return nil
}
