package taper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"syscall"
	"time"

	"github.com/benmcclelland/mtio"

	"github.com/tapir-backup/tapir/internal/clock"
)

// Defaults of the single changer.
const (
	DefaultSinglePoll   = 10 * time.Second
	DefaultSingleRemind = 30 * time.Minute
)

// SingleConfig configures the single changer.
type SingleConfig struct {
	Device string        // the drive, e.g. /dev/nst0
	Open   DriveOpener   // default OpenTapeDrive
	Clock  clock.Clock   // default clock.Real
	Poll   time.Duration // how often WaitFor looks at the drive; default DefaultSinglePoll
	Remind time.Duration // how often WaitFor repeats its request; default DefaultSingleRemind, negative: never
	Logger *slog.Logger  // default: discard
	// DriveOptions are the st options set at each open (MTSETDRVBUFFER);
	// nil: DefaultDriveOptions, empty: none.
	DriveOptions []string
	// ReadOnly: the changer is used only to read (restore, verify, the
	// index server): every drive open is O_RDONLY and the Tape refuses
	// writes (ErrWriteProtected). Eject (MTOFFL) and the drive options
	// (MTSETDRVBUFFER) still work: st allows its ioctls on a read-only
	// descriptor.
	ReadOnly bool
}

// SingleChanger is the `single` changer: one drive, one slot (slot 1), and
// a person who changes cartridges. WaitFor asks for a volume and watches
// the drive until it is there; it never loads, ejects or rewinds a
// cartridge that is not the one wanted (a drive ejecting again and again
// while an operator is on the way is Amanda issue #179). It is safe for
// concurrent use.
type SingleChanger struct {
	cfg SingleConfig
	log *slog.Logger

	mu      sync.Mutex
	current *Tape    // the volume handed out by Load or WaitFor
	slot    SlotInfo // what the drive held when last looked at
	known   bool     // slot is valid
}

var _ Changer = (*SingleChanger)(nil)

// NewSingleChanger returns the single changer for one drive.
func NewSingleChanger(cfg SingleConfig) (*SingleChanger, error) {
	if cfg.Device == "" {
		return nil, errors.New("single changer: no tape device given; set the changer's device (for example /dev/nst0)")
	}
	if err := checkDriveOptions(cfg.DriveOptions); err != nil {
		return nil, fmt.Errorf("single changer %s: %w", cfg.Device, err)
	}
	if cfg.Open == nil {
		cfg.Open = OpenTapeDrive
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real
	}
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultSinglePoll
	}
	if cfg.Remind == 0 {
		cfg.Remind = DefaultSingleRemind
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &SingleChanger{cfg: cfg, log: log}, nil
}

func (c *SingleChanger) openTape() (*Tape, error) {
	drv, err := c.cfg.Open(c.cfg.Device, c.cfg.ReadOnly)
	if err != nil {
		return nil, fmt.Errorf("tape %s: open: %w", c.cfg.Device, tapeErrno(c.cfg.Device, "open", err))
	}
	return newTape(c.cfg.Device, drv, c.tapeConfig())
}

// tapeConfig is how every Tape of this changer is made: its logger, its
// drive options, read-only or not.
func (c *SingleChanger) tapeConfig() tapeConfig {
	return tapeConfig{log: c.log, driveOptions: c.cfg.DriveOptions, readOnly: c.cfg.ReadOnly}
}

func (c *SingleChanger) name() string { return "single changer " + c.cfg.Device }

// Properties declares the single changer: one drive, one slot, a person
// who changes cartridges.
func (c *SingleChanger) Properties() Properties {
	return Properties{Kind: "single", Drives: 1, WaitsForPerson: true, Where: "the drive " + c.cfg.Device}
}

// Where names the drive: the single changer's only slot.
func (c *SingleChanger) Where(slot int) string { return "the drive " + c.cfg.Device }

// Slots returns 1.
func (c *SingleChanger) Slots(ctx context.Context) (int, error) {
	if err := ctxErr(ctx, c.name(), "slots"); err != nil {
		return 0, err
	}
	return 1, nil
}

// Scan is Inventory: the single changer reads the label in the drive.
func (c *SingleChanger) Scan(ctx context.Context) ([]SlotInfo, error) { return c.Inventory(ctx) }

// Erase is not supported: a tape is erased by labelling it again.
func (c *SingleChanger) Erase(ctx context.Context, slot int, org, label string) (int, error) {
	return 0, notSupported(c.name(), fmt.Sprintf("erase slot %d (volume %s)", slot, label), "only a disk changer erases a volume; label the tape again (tapir label --force) to reuse it")
}

// Drive is not supported: the drive is the only slot (Inventory says what
// it holds).
func (c *SingleChanger) Drive(ctx context.Context) (DriveInfo, error) {
	return DriveInfo{}, notSupported(c.name(), "drive status", "the single changer's drive is its only slot; its inventory says what the drive holds")
}

// releaseLocked closes the tape handed out before, so that the drive can
// be opened again.
func (c *SingleChanger) releaseLocked() error {
	if c.current == nil {
		return nil
	}
	err := c.current.Close()
	c.current = nil
	return err
}

// Load returns the volume in the drive, rewound. Slot 1 is the only slot;
// an empty drive is ErrNoMedium.
func (c *SingleChanger) Load(ctx context.Context, slot int) (Device, error) {
	if slot != 1 {
		return nil, fmt.Errorf("single changer %s: load slot %d: the single changer has one slot, 1", c.cfg.Device, slot)
	}
	if err := ctxErr(ctx, c.name(), "load"); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.current != nil {
		if err := c.current.Rewind(); err == nil {
			return c.current, nil
		}
		c.releaseLocked()
	}
	tp, err := c.openTape()
	if err != nil {
		return nil, fmt.Errorf("single changer: load: %w", err)
	}
	st, err := tp.Status()
	if err == nil && !st.Online {
		tp.Close()
		c.slot, c.known = SlotInfo{Slot: 1, Empty: true}, true
		return nil, fmt.Errorf("single changer %s: load: no volume in the drive; insert one: %w", c.cfg.Device, ErrNoMedium)
	}
	if err == nil {
		err = tp.Rewind()
	}
	var si SlotInfo
	if err == nil {
		// Read the label now, so that Inventory can say what the drive
		// holds without touching the device handed out.
		l, lerr := ReadLabel(tp)
		si = SlotInfoOf(1, l, lerr)
		err = tp.Rewind()
	}
	if err != nil {
		tp.Close()
		return nil, fmt.Errorf("single changer: load: %w", err)
	}
	c.current = tp
	c.slot, c.known = si, true
	return tp, nil
}

// Eject unloads the drive (MTOFFL), ending any file being written.
func (c *SingleChanger) Eject(ctx context.Context) error {
	if err := ctxErr(ctx, c.name(), "eject"); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	tp := c.current
	c.current = nil
	if tp != nil && tp.closed { // the caller closed the device it was given
		tp.ejected = true
		tp = nil
	}
	if tp == nil {
		var err error
		if tp, err = c.openTape(); err != nil {
			return fmt.Errorf("single changer: eject: %w", err)
		}
	}
	err := tp.Eject()
	cerr := tp.Close()
	tp.ejected = true // a device handed out before fails with ErrNoMedium
	c.slot, c.known = SlotInfo{Slot: 1, Empty: true}, true
	if err != nil {
		return fmt.Errorf("single changer: %w", err)
	}
	if cerr != nil {
		return fmt.Errorf("single changer: %w", cerr)
	}
	return nil
}

// Close releases the drive without ejecting.
func (c *SingleChanger) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.releaseLocked()
}

// Inventory reports the one slot. While a volume handed out by Load or
// WaitFor is in use it reports what was read then, without touching the
// drive; otherwise it opens the drive and reads the label (which moves
// the tape, but no one is using it).
func (c *SingleChanger) Inventory(ctx context.Context) ([]SlotInfo, error) {
	if err := ctxErr(ctx, c.name(), "inventory"); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.current != nil && c.known {
		return []SlotInfo{c.slot}, nil
	}
	if c.current != nil {
		c.releaseLocked()
	}
	tp, err := c.openTape()
	if err != nil {
		return []SlotInfo{{Slot: 1, Err: err}}, nil
	}
	defer tp.Close()
	c.slot, c.known = c.inspect(tp), true
	return []SlotInfo{c.slot}, nil
}

func (c *SingleChanger) inspect(tp *Tape) SlotInfo {
	st, err := tp.Status()
	switch {
	case err != nil:
		return SlotInfo{Slot: 1, Err: err}
	case !st.Online:
		return SlotInfo{Slot: 1, Empty: true}
	}
	l, err := ReadLabel(tp)
	return SlotInfoOf(1, l, err)
}

// probe opens the drive and asks MTIOCGET, nothing else: no load, no
// rewind, not even the block size.
func (c *SingleChanger) probe() (TapeDrive, mtio.MtGet, error) {
	drv, err := c.cfg.Open(c.cfg.Device, c.cfg.ReadOnly)
	if err != nil {
		return nil, mtio.MtGet{}, fmt.Errorf("tape %s: open: %w", c.cfg.Device, tapeErrno(c.cfg.Device, "open", err))
	}
	g, err := drv.Status()
	if err != nil {
		drv.Close()
		if errors.Is(err, syscall.ENOTTY) || errors.Is(err, syscall.EINVAL) {
			return nil, g, fmt.Errorf("tape %s: %w: MTIOCGET fails (%v)", c.cfg.Device, ErrNotTape, err)
		}
		return nil, g, fmt.Errorf("tape %s: status (MTIOCGET): %w", c.cfg.Device, tapeErrno(c.cfg.Device, "status", err))
	}
	return drv, g, nil
}

// describeVolume tells a person what a volume is, from ReadLabel's result.
func describeVolume(l *Label, err error) string {
	var fe *ForeignError
	switch {
	case err == nil:
		return "volume " + l.Label
	case errors.Is(err, ErrBlank):
		return "a blank volume"
	case errors.As(err, &fe):
		return "a volume that is not tapir's (" + fe.Found + ")"
	}
	return fmt.Sprintf("a volume whose label cannot be read (%v)", err)
}

// WaitFor waits until the drive holds a volume that want accepts and
// returns it rewound, with its label (want sees ReadLabel's result, so it
// may accept a blank volume). what names the volume for a person, e.g.
// "volume DailySet1-007" or "a new volume".
//
// It asks once, through prompt, "insert <what> into <device>", and again
// every Remind. It then looks at the drive every Poll: status only, no
// load, no eject, no rewind. When a volume appears it reads its label
// once; if it is not wanted it says so once and leaves it where it is (the
// tape stays after its label, so the next looks see the same volume is
// still there: a newly inserted one is at its beginning). It returns when
// ctx ends, or with an error when the device cannot be used at all (not a
// tape, missing).
func (c *SingleChanger) WaitFor(ctx context.Context, what string, want func(*Label, error) bool, prompt func(msg string)) (Device, *Label, error) {
	if err := ctxErr(ctx, c.name(), "waiting for "+what); err != nil {
		return nil, nil, err
	}
	c.mu.Lock()
	c.releaseLocked()
	c.known = false
	c.mu.Unlock()
	say := func(msg string) {
		c.log.Info("single changer: "+msg, "device", c.cfg.Device)
		if prompt != nil {
			prompt(msg)
		}
	}
	var asked, since time.Time
	prompted, judged, busy := false, false, false
	for {
		drv, g, err := c.probe()
		switch {
		case errors.Is(err, ErrBusy):
			if !busy {
				say(fmt.Sprintf("%s is busy: another process has the drive open (find it with fuser %s); waiting", c.cfg.Device, c.cfg.Device))
				busy = true
			}
		case err != nil:
			return nil, nil, fmt.Errorf("single changer: waiting for %s: %w", what, err)
		case !mtio.IsOnline(g.GStat):
			busy, judged = false, false
			drv.Close()
		case judged && !mtio.IsBOT(g.GStat):
			busy = false
			drv.Close() // the volume already turned down is still there
		default:
			busy = false
			tp, err := newTape(c.cfg.Device, drv, c.tapeConfig())
			if err != nil {
				return nil, nil, fmt.Errorf("single changer: waiting for %s: %w", what, err)
			}
			l, lerr := ReadLabel(tp)
			if want(l, lerr) {
				if err := tp.Rewind(); err != nil {
					tp.Close()
					return nil, nil, fmt.Errorf("single changer: %w", err)
				}
				c.mu.Lock()
				c.current = tp
				c.slot, c.known = SlotInfoOf(1, l, lerr), true
				c.mu.Unlock()
				return tp, l, nil
			}
			say(fmt.Sprintf("%s holds %s, not %s: eject it and insert %s", c.cfg.Device, describeVolume(l, lerr), what, what))
			if !prompted {
				since = c.cfg.Clock.Now()
			}
			asked, prompted, judged = c.cfg.Clock.Now(), true, true
			tp.Close()
		}
		now := c.cfg.Clock.Now()
		switch {
		case !prompted:
			say(fmt.Sprintf("insert %s into %s", what, c.cfg.Device))
			asked, since, prompted = now, now, true
		case c.cfg.Remind > 0 && now.Sub(asked) >= c.cfg.Remind:
			say(fmt.Sprintf("still waiting for %s in %s (since %s)", what, c.cfg.Device, since.Format("2006-01-02 15:04")))
			asked = now
		}
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("single changer %s: waiting for %s: %w", c.cfg.Device, what, ctx.Err())
		case <-c.cfg.Clock.After(c.cfg.Poll):
		}
	}
}

// Labelled tells the changer that the volume in the drive now carries l
// (tapir just wrote the label), so that its inventory says so.
func (c *SingleChanger) Labelled(ctx context.Context, l *Label) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.slot, c.known = SlotInfo{Slot: 1, Label: l}, true
	return nil
}
