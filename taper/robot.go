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
	// number (Data Transfer Element N); Drive picks the one tapir uses.
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
type RobotChanger struct {
	cfg   RobotConfig
	mtx   mtxRunner
	log   *slog.Logger
	drive string // device of the drive tapir uses

	mu      sync.Mutex
	current *Tape
	curKey  string // label key of the loaded volume
	labels  map[string]robotLabel
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

// NewRobotChanger returns the robot changer. It runs nothing yet.
func NewRobotChanger(cfg RobotConfig) (*RobotChanger, error) {
	switch {
	case cfg.Changer == "":
		return nil, errors.New("robot changer: no changer device given; set the changer's device (the media changer, e.g. /dev/sg3)")
	case len(cfg.Drives) == 0:
		return nil, fmt.Errorf("robot changer %s: no tape drives given; list the drive devices (e.g. /dev/nst0) in mtx's drive order", cfg.Changer)
	case cfg.Drive < 0 || cfg.Drive >= len(cfg.Drives):
		return nil, fmt.Errorf("robot changer %s: drive %d: the drives configured are 0 to %d", cfg.Changer, cfg.Drive, len(cfg.Drives)-1)
	case cfg.Drives[cfg.Drive] == "":
		return nil, fmt.Errorf("robot changer %s: drive %d has no device", cfg.Changer, cfg.Drive)
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
	c := &RobotChanger{
		cfg:    cfg,
		mtx:    mtxRunner{program: cfg.MTX, changer: cfg.Changer, noBarcode: cfg.IgnoreBarcodes, timeout: cfg.Timeout},
		log:    log,
		drive:  cfg.Drives[cfg.Drive],
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
				c.labels = st.Labels
			}
		}
	}
	return c, nil
}

func (c *RobotChanger) name() string { return "robot changer " + c.cfg.Changer }

// Properties declares the robot changer: one of the library's drives,
// labels learned by loading each volume once (Scan), no person.
func (c *RobotChanger) Properties() Properties {
	return Properties{Kind: "robot", Drives: 1, Drive: c.cfg.Drive, NeedsScan: true, KnowsDrive: true, Where: "the library " + c.cfg.Changer}
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

// Drive says, from `mtx status`, what tapir's drive holds.
func (c *RobotChanger) Drive(ctx context.Context) (DriveInfo, error) {
	st, err := c.Status(ctx)
	if err != nil {
		return DriveInfo{}, err
	}
	d, ok := st.Drive(c.cfg.Drive)
	if !ok {
		return DriveInfo{}, c.errf("the library has no drive %d", c.cfg.Drive)
	}
	return DriveInfo{Drive: c.cfg.Drive, Device: c.drive, Full: d.Full, Slot: d.Source, Barcode: d.Barcode}, nil
}

func (c *RobotChanger) errf(format string, args ...any) error {
	return fmt.Errorf("robot changer %s: "+format, append([]any{c.cfg.Changer}, args...)...)
}

// Status runs `mtx status` and returns what the library reports.
func (c *RobotChanger) Status(ctx context.Context) (*MtxStatus, error) {
	st, err := c.mtx.status(ctx)
	if err != nil {
		return nil, c.errf("%w", err)
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

func (c *RobotChanger) key(barcode string, slot int) string {
	if barcode != "" && !c.cfg.IgnoreBarcodes {
		return barcode
	}
	return "slot:" + strconv.Itoa(slot)
}

func (c *RobotChanger) saveLocked() {
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

func (c *RobotChanger) learnLocked(key string, l *Label, err error) {
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

// Load puts the volume of a storage slot into tapir's drive, first putting
// back the one there (ejected from the drive, then unloaded into its home
// slot), waits for the drive, reads the label (to remember it) and returns
// the drive rewound.
func (c *RobotChanger) Load(ctx context.Context, slot int) (Device, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.loadLocked(ctx, slot)
}

func (c *RobotChanger) loadLocked(ctx context.Context, slot int) (*Tape, error) {
	st, err := c.Status(ctx)
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
	d, ok := st.Drive(c.cfg.Drive)
	if !ok {
		return nil, c.errf("load slot %d: the library has no drive %d", slot, c.cfg.Drive)
	}
	if d.Full && d.Source == slot {
		tp, err := c.currentLocked()
		if err == nil {
			err = tp.Rewind()
		}
		if err != nil {
			return nil, c.errf("load slot %d (already in drive %d): %w", slot, c.cfg.Drive, err)
		}
		return tp, nil
	}
	if !s.Full {
		return nil, c.errf("load slot %d: the slot is empty", slot)
	}
	if d.Full {
		if err := c.unloadLocked(ctx, st, d); err != nil {
			return nil, err
		}
	}
	if _, err := c.mtx.run(ctx, "load", strconv.Itoa(slot), strconv.Itoa(c.cfg.Drive)); err != nil {
		return nil, c.errf("load slot %d into drive %d: %w", slot, c.cfg.Drive, err)
	}
	c.log.Info("robot changer: loaded", "slot", slot, "drive", c.cfg.Drive, "barcode", s.Barcode)
	tp, err := c.waitOnline(ctx, slot)
	if err != nil {
		return nil, err
	}
	c.current, c.curKey = tp, c.key(s.Barcode, slot)
	l, lerr := ReadLabel(tp)
	c.learnLocked(c.curKey, l, lerr)
	if err := tp.Rewind(); err != nil {
		return nil, c.errf("load slot %d: %w", slot, err)
	}
	return tp, nil
}

// currentLocked returns the open tape in the drive, opening it if needed.
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
				return nil, c.errf("load slot %d: drive %d (%s) did not come online within %v: %v", slot, c.cfg.Drive, c.drive, c.cfg.LoadWait, last)
			}
			return nil, c.errf("load slot %d: drive %d (%s) did not come online within %v; check the drive and the library", slot, c.cfg.Drive, c.drive, c.cfg.LoadWait)
		}
		select {
		case <-ctx.Done():
			return nil, c.errf("load slot %d: waiting for drive %d (%s) to come online: %w", slot, c.cfg.Drive, c.drive, ctx.Err())
		case <-c.cfg.Clock.After(c.cfg.Poll):
		}
	}
}

// unloadLocked puts the volume in the drive back into its home slot (or
// the first empty storage slot when the library does not know its home).
func (c *RobotChanger) unloadLocked(ctx context.Context, st *MtxStatus, d MtxDrive) error {
	tp := c.current
	c.current = nil
	if tp != nil && tp.closed { // the caller closed the device it was given
		tp.ejected = true
		tp = nil
	}
	if tp == nil && !c.cfg.NoEjectBeforeUnload {
		var err error
		if tp, err = c.currentLocked(); err != nil {
			return c.errf("unload drive %d: %w", c.cfg.Drive, err)
		}
		c.current = nil
	}
	if tp != nil {
		// Read the label once more before it goes: the run may have
		// written a new one.
		if c.curKey == "" && (d.Barcode != "" || d.Source > 0) {
			c.curKey = c.key(d.Barcode, d.Source)
		}
		if c.curKey != "" {
			if st, err := tp.Status(); err == nil && st.Online {
				if err := tp.finish("unload"); err == nil {
					l, lerr := ReadLabel(tp)
					c.learnLocked(c.curKey, l, lerr)
				}
			}
		}
		var err error
		if !c.cfg.NoEjectBeforeUnload {
			err = tp.Eject()
		}
		cerr := tp.Close()
		tp.ejected = true // a device handed out before fails with ErrNoMedium
		if err != nil {
			return c.errf("unload drive %d: %w", c.cfg.Drive, err)
		}
		if cerr != nil {
			return c.errf("unload drive %d: %w", c.cfg.Drive, cerr)
		}
	}
	c.curKey = ""
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
			return c.errf("unload drive %d: no empty storage slot to put the volume %s in", c.cfg.Drive, d.Barcode)
		}
		c.log.Warn("robot changer: the volume's home slot is unknown or taken; unloading into the first empty slot", "drive", c.cfg.Drive, "slot", home)
	}
	if _, err := c.mtx.run(ctx, "unload", strconv.Itoa(home), strconv.Itoa(c.cfg.Drive)); err != nil {
		return c.errf("unload drive %d into slot %d: %w", c.cfg.Drive, home, err)
	}
	c.log.Info("robot changer: unloaded", "drive", c.cfg.Drive, "slot", home, "barcode", d.Barcode)
	return nil
}

// Eject puts the volume in tapir's drive back into its slot (ending any
// file being written). An empty drive is not an error.
func (c *RobotChanger) Eject(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	d, ok := st.Drive(c.cfg.Drive)
	if !ok {
		return c.errf("eject: the library has no drive %d", c.cfg.Drive)
	}
	if !d.Full {
		if c.current != nil {
			c.current.Close()
			c.current.ejected = true
			c.current = nil
		}
		return nil
	}
	return c.unloadLocked(ctx, st, d)
}

// Close releases the drive without moving anything.
func (c *RobotChanger) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.current == nil {
		return nil
	}
	err := c.current.Close()
	c.current = nil
	return err
}

// Inventory reports every storage slot (import/export elements left out)
// from `mtx status` and what tapir learned when it last loaded each
// volume; it moves nothing. A volume in a drive is reported in its home
// slot. A full slot whose volume tapir has not read yet has an Err
// wrapping ErrNotScanned.
func (c *RobotChanger) Inventory(ctx context.Context) ([]SlotInfo, error) {
	st, err := c.Status(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
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

// ReadLabelAt loads the volume of a slot to read its label, and reports
// it as Inventory would. The volume stays in the drive.
func (c *RobotChanger) ReadLabelAt(ctx context.Context, slot int) SlotInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.loadLocked(ctx, slot); err != nil {
		return SlotInfo{Slot: slot, Err: err}
	}
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
// (ReadLabelAt) and returns the inventory. It moves volumes.
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

// Labelled tells the changer that the volume in its drive now carries l
// (tapir just wrote the label), so that what it remembers of that
// barcode stays true: a volume it took for blank must never be offered as
// blank again once it holds data.
func (c *RobotChanger) Labelled(ctx context.Context, l *Label) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.curKey != "" {
		c.learnLocked(c.curKey, l, nil)
	}
	return nil
}
