package taper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// Changer is the seam for changers: disk (a directory of vtape slots),
// single (one drive, a person changes tapes) and robots. Slots count from 1.
//
// Every changer implements every method. What a changer can do is declared
// by Properties, never discovered by type assertions: a method a changer
// cannot honour fails with an error matching ErrNotSupported that says
// which changer does it. Every method that may move a volume, run a
// program or wait takes a ctx first and stops when it ends (an mtx run is
// killed, a wait for a person ends); a ctx that is already done makes
// every method fail at once, wrapping ctx.Err(), before anything moves.
//
// A Changer is one drive's view of its slots. A changer whose drives tapir
// uses at once (NewDiskChangers, NewRobotChangers) has one view per drive,
// a group: each view's Load, Eject, Drive, WaitFor and Close act on its own
// drive, Inventory and Scan on the whole library, and a volume is never
// open in two drives (ErrInOtherDrive).
type Changer interface {
	// Properties declares what the changer is and can do. It is fixed for
	// the changer's life and moves nothing.
	Properties() Properties
	// Slots returns the number of slots.
	Slots(ctx context.Context) (int, error)
	// Load puts the volume of a slot into the drive and returns the drive,
	// rewound. A device returned by an earlier Load is unloaded first and
	// fails with ErrNoMedium from then on. When another view of the same
	// group holds the slot's volume open in its drive, Load fails with an
	// error matching ErrInOtherDrive that names that drive, and moves
	// nothing: a volume is never open in two drives.
	Load(ctx context.Context, slot int) (Device, error)
	// Inventory reports what each slot of the whole library holds (the
	// same from every view of a group), without side effects: it neither
	// moves volumes nor disturbs a loaded drive. A volume in a drive is
	// reported at its home slot. With NeedsScan,
	// a full slot whose label was never read has an Err wrapping
	// ErrNotScanned.
	Inventory(ctx context.Context) ([]SlotInfo, error)
	// Scan is Inventory after reading every label the changer does not
	// know yet: with NeedsScan it loads those volumes (it moves them);
	// otherwise it is Inventory.
	Scan(ctx context.Context) ([]SlotInfo, error)
	// Eject unloads the drive (ending any file being written); the other
	// drives of a group keep their volumes and devices.
	Eject(ctx context.Context) error
	// WaitFor (WaitsForPerson) asks a person for a volume through prompt
	// and waits until the drive holds one that want accepts; it returns
	// the drive rewound, with the label read. what names the volume for a
	// person. It ends with ctx.
	WaitFor(ctx context.Context, what string, want func(*Label, error) bool, prompt func(msg string)) (Device, *Label, error)
	// Labelled tells the changer that the volume in the drive now
	// carries l (tapir just wrote the label), so that what it remembers
	// never offers a volume that now holds data as blank. Changers that
	// read labels from the volumes every time remember nothing.
	Labelled(ctx context.Context, l *Label) error
	// Erase (CanErase) empties the volume of slot, which must carry the
	// tapir label label of configuration org, and returns the number of
	// tape files removed.
	Erase(ctx context.Context, slot int, org, label string) (int, error)
	// Drive (KnowsDrive) says what this view's drive holds, as the
	// changer knows it, without moving anything.
	Drive(ctx context.Context) (DriveInfo, error)
	// Where names the place of a slot's volume for a person: the slot's
	// directory, "the drive /dev/nst0", "slot 3 of the library /dev/sg3".
	Where(slot int) string
	// Close releases a drive the changer holds open between calls,
	// without ejecting or moving anything. It never waits, so it takes no
	// ctx. The changer stays usable.
	Close() error
}

// Properties is what a changer declares about itself (Changer.Properties).
type Properties struct {
	// Kind is the changer type of the configuration: "disk", "single" or
	// "robot".
	Kind string
	// Drives is the number of drives of the group this changer belongs
	// to: a changer is one drive's view of a library whose drives tapir
	// uses at once (NewDiskChangers, NewRobotChangers), one view per
	// drive, and every view of a group declares the same Drives. A
	// single changer, and a disk or robot changer made alone, has one.
	Drives int
	// Drive is the number of this view's drive, in the changer's own
	// numbering: mtx's data transfer element for a robot, 0 to Drives-1
	// for a disk changer, 0 for a single changer. Load, Eject, Drive,
	// WaitFor and Close act on this drive only.
	Drive int
	// WaitsForPerson: WaitFor works; a person changes the volumes.
	WaitsForPerson bool
	// NeedsScan: Inventory does not know a volume's label until the
	// changer has loaded it once (Scan does).
	NeedsScan bool
	// CanErase: Erase works.
	CanErase bool
	// KnowsDrive: Drive says which slot's volume the drive holds.
	KnowsDrive bool
	// Where names the changer for a person: "the disk changer
	// /srv/vtapes", "the drive /dev/nst0", "the library /dev/sg3".
	Where string
}

// DriveInfo is what a changer's drive holds (Changer.Drive).
type DriveInfo struct {
	Drive   int    // the changer's number for the drive
	Device  string // the drive's device, e.g. /dev/nst0
	Full    bool   // a volume is in the drive
	Slot    int    // the home slot of that volume, 0 when unknown
	Barcode string // its barcode, "" without one
}

// ErrInOtherDrive is matched (errors.Is) by the error of Load when the
// slot's volume is held open in another drive of the same group (another
// view lent it and has not ejected it); the message names that drive.
var ErrInOtherDrive = errors.New("the volume is held open in another drive of this changer")

// ErrNotSupported is matched (errors.Is) by the error of a Changer method
// the changer does not declare in its Properties.
var ErrNotSupported = errors.New("not supported by this changer")

// notSupported is the error of a method a changer cannot honour.
func notSupported(changer, op, who string) error {
	return fmt.Errorf("%s: %s: %w: %s", changer, op, ErrNotSupported, who)
}

// ctxErr is the error of a changer method called with a ctx that is done.
func ctxErr(ctx context.Context, changer, op string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %s: %w", changer, op, err)
	}
	return nil
}

// SlotInfo is what one slot holds. Exactly one of Empty, Blank, Foreign,
// Label and Err is set.
type SlotInfo struct {
	Slot    int
	Empty   bool   // no volume in the slot
	Blank   bool   // a volume with nothing on it
	Foreign string // not a tapir volume: what was found, for a person
	Label   *Label // a tapir volume
	Err     error  // the slot could not be read (a damaged vtape, an I/O error)
}

// DiskChanger is the `disk` changer: root/slot1 .. root/slotN, each slot
// directory one vtape. A DiskChanger is one vtape drive's view of the
// slots; NewDiskChangers makes several drives that share them, so that
// several tapers write at once, each to its own slot. It is safe for
// concurrent use.
type DiskChanger struct {
	*diskGroup
	drive int // this view's drive, 0 to drives-1

	// Under diskGroup.mu:
	current *Vtape
	curSlot int
}

// diskGroup is what the drives of one disk changer share.
type diskGroup struct {
	root      string
	slots     int
	capacity  int64
	blocksize int64
	drives    int
	log       *slog.Logger

	mu           sync.Mutex
	earlyWarning int64
	held         map[int]int // slot -> the drive that holds its vtape open
}

// ErrNoChangerRoot is matched by the error of NewDiskChanger when the
// changer's directory does not exist.
var ErrNoChangerRoot = errors.New("the directory does not exist")

// MaxDiskSlots bounds the slots of a disk changer.
const MaxDiskSlots = 10000

// NewDiskChanger opens the disk changer at root with one drive and slots
// slots of capacity bytes each: NewDiskChangers(root, slots, capacity,
// blocksize, 1, log)[0].
func NewDiskChanger(root string, slots int, capacity, blocksize int64, log *slog.Logger) (*DiskChanger, error) {
	cs, err := NewDiskChangers(root, slots, capacity, blocksize, 1, log)
	if err != nil {
		return nil, err
	}
	return cs[0], nil
}

// MaxDiskDrives bounds the drives of a disk changer.
const MaxDiskDrives = 64

// NewDiskChangers opens the disk changer at root with drives vtape drives
// that share its slots, and returns one view per drive (drive numbers 0 to
// drives-1). Each view loads, ejects and closes its own drive; a slot's
// vtape held open by one drive (loaded, not ejected) cannot be loaded by
// another (ErrInOtherDrive). The disk changer has slots slots of capacity
// bytes each. root must exist (a missing one is an error matching
// ErrNoChangerRoot: an unmounted disk must not silently become an empty
// changer on the root filesystem); root/slot1..slotN are created (mode
// 0750) when absent. Nothing is ever deleted: slot directories beyond slots
// are left alone (and logged). blocksize is the record size assumed for volumes
// whose label does not give one. Early warning is DefaultEarlyWarning(capacity)
// until SetEarlyWarning changes it. log may be nil.
func NewDiskChangers(root string, slots int, capacity, blocksize int64, drives int, log *slog.Logger) ([]*DiskChanger, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	switch {
	case root == "":
		return nil, errors.New("disk changer: no directory given; set the changer's directory")
	case slots < 1 || slots > MaxDiskSlots:
		return nil, fmt.Errorf("disk changer %s: %d slots: want 1 to %d", root, slots, MaxDiskSlots)
	case capacity <= 0:
		return nil, fmt.Errorf("disk changer %s: capacity %d bytes is not positive; set the tapetype length", root, capacity)
	case drives < 1 || drives > MaxDiskDrives:
		return nil, fmt.Errorf("disk changer %s: %d drives: want 1 to %d", root, drives, MaxDiskDrives)
	case drives > slots:
		return nil, fmt.Errorf("disk changer %s: %d drives but only %d slots: each drive needs a slot of its own; add slots or use fewer drives", root, drives, slots)
	}
	if err := checkBlocksize(blocksize); err != nil {
		return nil, fmt.Errorf("disk changer %s: %w", root, err)
	}
	if fi, err := os.Stat(root); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("disk changer %s: %w: mount it, or create it with mkdir if it is new (tapir creates the slot directories inside it, never the directory itself)", root, ErrNoChangerRoot)
	} else if err != nil {
		return nil, fmt.Errorf("disk changer %s: %w", root, err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("disk changer %s: not a directory; the changer's path must be a directory of slot directories", root)
	}
	c := &diskGroup{root: root, slots: slots, capacity: capacity, blocksize: blocksize, drives: drives,
		earlyWarning: DefaultEarlyWarning(capacity), log: log, held: map[int]int{}}
	for i := 1; i <= slots; i++ {
		dir := c.SlotDir(i)
		err := os.Mkdir(dir, 0o750)
		if err == nil {
			log.Info("disk changer: created slot", "dir", dir)
			continue
		}
		if !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("disk changer %s: create slot %d: %w", root, i, err)
		}
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("disk changer %s: slot %d: %s exists but is not a directory; move it away", root, i, dir)
		}
	}
	if ents, err := os.ReadDir(root); err == nil {
		for _, e := range ents {
			if n, ok := strings.CutPrefix(e.Name(), "slot"); ok && e.IsDir() {
				if k, err := strconv.Atoi(n); err == nil && k > slots {
					log.Warn("disk changer: slot directory beyond the configured slots is kept but not used",
						"dir", filepath.Join(root, e.Name()), "slots", slots)
				}
			}
		}
	}
	views := make([]*DiskChanger, drives)
	for i := range views {
		views[i] = &DiskChanger{diskGroup: c, drive: i}
	}
	return views, nil
}

// SetEarlyWarning sets the early-warning distance in bytes for volumes
// loaded from now on, by every drive of the changer.
func (c *DiskChanger) SetEarlyWarning(bytes int64) error {
	if bytes < 0 || bytes >= c.capacity {
		return fmt.Errorf("disk changer %s: early warning %d bytes must be between 0 and the capacity (%d bytes)", c.root, bytes, c.capacity)
	}
	c.mu.Lock()
	c.earlyWarning = bytes
	c.mu.Unlock()
	return nil
}

// SlotDir returns the directory of a slot.
func (c *diskGroup) SlotDir(slot int) string {
	return filepath.Join(c.root, "slot"+strconv.Itoa(slot))
}

func (c *DiskChanger) name() string {
	if c.drives > 1 {
		return fmt.Sprintf("disk changer %s (drive %d)", c.root, c.drive)
	}
	return "disk changer " + c.root
}

// Properties declares the disk changer: its drives and this view's,
// labels read from the vtapes, erase.
func (c *DiskChanger) Properties() Properties {
	return Properties{Kind: "disk", Drives: c.drives, Drive: c.drive, CanErase: true, Where: "the disk changer " + c.root}
}

// Where returns the directory of a slot.
func (c *DiskChanger) Where(slot int) string { return c.SlotDir(slot) }

// Slots returns the configured number of slots.
func (c *DiskChanger) Slots(ctx context.Context) (int, error) {
	if err := ctxErr(ctx, c.name(), "slots"); err != nil {
		return 0, err
	}
	return c.slots, nil
}

func (c *DiskChanger) checkSlot(op string, slot int) error {
	if slot < 1 || slot > c.slots {
		return fmt.Errorf("disk changer %s: %s slot %d: slots are 1 to %d", c.root, op, slot, c.slots)
	}
	return nil
}

// Load unloads this drive's volume, if any, and loads the vtape of slot.
// A slot whose vtape another drive holds is refused (ErrInOtherDrive),
// and this drive keeps what it holds.
func (c *DiskChanger) Load(ctx context.Context, slot int) (Device, error) {
	if err := c.checkSlot("load", slot); err != nil {
		return nil, err
	}
	if err := ctxErr(ctx, c.name(), fmt.Sprintf("load slot %d", slot)); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if d, ok := c.held[slot]; ok && d != c.drive {
		return nil, fmt.Errorf("disk changer %s: load slot %d into drive %d: %w: drive %d is using it; choose another slot, or wait until drive %d has ejected it",
			c.root, slot, c.drive, ErrInOtherDrive, d, d)
	}
	if err := c.unloadLocked(); err != nil {
		return nil, err
	}
	v, err := openVtape(c.SlotDir(slot), c.capacity, c.earlyWarning, c.blocksize)
	if err != nil {
		return nil, fmt.Errorf("disk changer %s: load slot %d: %w", c.root, slot, err)
	}
	c.current, c.curSlot = v, slot
	c.held[slot] = c.drive
	c.log.Debug("disk changer: loaded", "slot", slot, "drive", c.drive, "dir", v.dir)
	return v, nil
}

// Loaded returns the slot in this view's drive, 0 if none.
func (c *DiskChanger) Loaded() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.curSlot
}

func (c *DiskChanger) unloadLocked() error {
	if c.current == nil {
		return nil
	}
	v, slot := c.current, c.curSlot
	c.current, c.curSlot = nil, 0
	delete(c.held, slot)
	err := v.Eject() // releases every file handle; the device answers ErrNoMedium from now on
	if err != nil {
		return fmt.Errorf("disk changer %s: unload slot %d from drive %d: %w", c.root, slot, c.drive, err)
	}
	c.log.Debug("disk changer: unloaded", "slot", slot, "drive", c.drive)
	return nil
}

// Eject unloads this view's drive; the other drives keep their volumes.
func (c *DiskChanger) Eject(ctx context.Context) error {
	if err := ctxErr(ctx, c.name(), "eject"); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.unloadLocked()
}

// Inventory reads the label of every slot through its own read-only
// handle, also of the slots that a drive has loaded (and may be writing).
func (c *DiskChanger) Inventory(ctx context.Context) ([]SlotInfo, error) {
	if err := ctxErr(ctx, c.name(), "inventory"); err != nil {
		return nil, err
	}
	out := make([]SlotInfo, 0, c.slots)
	for i := 1; i <= c.slots; i++ {
		out = append(out, c.inspect(i))
	}
	return out, nil
}

// Scan is Inventory: the disk changer reads every label each time.
func (c *DiskChanger) Scan(ctx context.Context) ([]SlotInfo, error) { return c.Inventory(ctx) }

// WaitFor is not supported: nobody changes the volumes of a disk changer.
func (c *DiskChanger) WaitFor(ctx context.Context, what string, want func(*Label, error) bool, prompt func(string)) (Device, *Label, error) {
	return nil, nil, notSupported(c.name(), "wait for "+what, "only a single changer waits for a person to insert a volume; put the vtape into a slot directory")
}

// Labelled does nothing: the disk changer reads labels from the vtapes.
func (c *DiskChanger) Labelled(ctx context.Context, l *Label) error { return nil }

// Drive is not supported: the disk changer holds no drive between runs.
func (c *DiskChanger) Drive(ctx context.Context) (DriveInfo, error) {
	return DriveInfo{}, notSupported(c.name(), "drive status", "the disk changer holds no drive between runs: each run loads the slot it writes (Inventory shows the slots)")
}

// Close does nothing: the vtape it lends holds no drive that another
// process could want, and stays usable (and held by this drive: another
// drive cannot load its slot) until this view's next Load or Eject.
func (c *DiskChanger) Close() error { return nil }

func (c *diskGroup) inspect(slot int) SlotInfo {
	si := SlotInfo{Slot: slot}
	v, err := openVtape(c.SlotDir(slot), c.capacity, 0, c.blocksize)
	if errors.Is(err, ErrNoMedium) {
		si.Empty = true
		return si
	}
	if err != nil {
		si.Err = err
		return si
	}
	defer v.Close()
	l, err := ReadLabel(v)
	return SlotInfoOf(slot, l, err)
}

// SlotInfoOf is what a slot holds, from what ReadLabel said of its volume.
func SlotInfoOf(slot int, l *Label, err error) SlotInfo {
	si := SlotInfo{Slot: slot}
	var fe *ForeignError
	switch {
	case err == nil:
		si.Label = l
	case errors.Is(err, ErrBlank):
		si.Blank = true
	case errors.As(err, &fe):
		si.Foreign = fe.Found
	default:
		si.Err = err
	}
	return si
}

var (
	_ Device  = (*Vtape)(nil)
	_ Changer = (*DiskChanger)(nil)
)
