package indexd

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/taper"
)

// VolumeSource is the seam between the readers of volumes (the index
// server, verify, recover, rebuild) and the changers: it finds a volume by
// its label and lends the drive holding it, for reading. The disk changer
// implementation is DiskVolumes; the server has one for single-drive and
// robot changers (a single drive answers Locate with "load volume X" unless
// X is in the drive). index/indexd/volumetest is the conformance suite every
// implementation passes.
type VolumeSource interface {
	// Properties declares the source: how many volumes it can lend at
	// once (its drives) and where its volumes are, for a person.
	Properties() SourceProperties
	// Locate says where a volume is without moving anything: a place for a
	// person ("slot 3"), or an error (matching ErrVolumeMissing when the
	// volume is not there) that says which volume to load where.
	Locate(ctx context.Context, label string) (string, error)
	// Open loads the volume and returns its drive, positioned at the
	// beginning of the volume (the label is the next record), after
	// checking that the volume there carries label (a wrong volume is an
	// error matching ErrVolumeMissing). release gives the drive back (it
	// does not eject); it may be called more than once. With every drive
	// lent, Open waits for one to be given back, until ctx ends.
	//
	// When the volume is not available, a source that declares
	// WaitsForPerson and is given an ask asks a person for it (through
	// ask, and its own log and mail), reminds them, and waits until the
	// volume is there or ctx ends; every other Open fails at once, like
	// Locate.
	Open(ctx context.Context, label string, ask Ask) (dev taper.Device, release func(), err error)
}

// Ask receives what a person must do for a read to go on ("insert volume
// T-002 into /dev/nst0"): the request, what is wrong with the volume they
// inserted, and each reminder. A nil Ask means nobody can be asked.
type Ask func(msg string)

// SourceProperties is what a VolumeSource declares about itself.
type SourceProperties struct {
	// Drives is the number of volumes the source can lend at once.
	Drives int
	// Where names the changer for a person ("the disk changer
	// /srv/vtapes", "the drive /dev/nst0").
	Where string
	// Dir is the directory that holds the volumes as files (a disk
	// changer), "" for tapes: error replies never name the paths in it.
	Dir string
	// WaitsForPerson: a volume that is not there is brought by a person
	// (a single drive): Open given an Ask asks for it and waits.
	WaitsForPerson bool
}

// DrivePool lends the drives of a VolumeSource: one volume per drive at a
// time. Its zero value has one drive.
type DrivePool struct {
	N int // drives; 0 means 1

	once sync.Once
	free chan struct{}
}

// Take waits for a free drive until ctx ends; release gives it back (once,
// however often it is called). what names the volume, for the error.
func (p *DrivePool) Take(ctx context.Context, what string) (release func(), err error) {
	p.once.Do(func() { p.free = make(chan struct{}, max(p.N, 1)) })
	select {
	case p.free <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: waiting for a drive (every one is lent to another restore): %w", what, ctx.Err())
	}
	var once sync.Once
	return func() { once.Do(func() { <-p.free }) }, nil
}

// ErrVolumeMissing is matched (errors.Is) by the errors of a VolumeSource
// for a volume that is not in the changer.
var ErrVolumeMissing = errors.New("volume not available")

type missingError struct{ msg string }

func (e *missingError) Error() string        { return e.msg }
func (e *missingError) Is(target error) bool { return target == ErrVolumeMissing }

// DiskVolumes finds vtapes in a disk changer: first in the slot the catalog
// remembers for the label, then by reading the labels of all slots. One
// volume is loaded at a time (the changer has one drive); Open waits for a
// drive lent to another restore, as a person would wait for a drive.
type DiskVolumes struct {
	// Changer is a disk changer (Properties().Kind "disk"), or a wrapper
	// of one: Where(slot) is the slot's vtape directory, whose label is
	// read without loading it.
	Changer taper.Changer
	Catalog *catalog.Catalog // may be nil: every slot is read

	drive DrivePool // the changer's one drive
	slots map[string]int
	smu   sync.Mutex
}

// Properties declares one drive and the changer's directory.
func (d *DiskVolumes) Properties() SourceProperties {
	return SourceProperties{Drives: 1, Where: d.Changer.Properties().Where, Dir: filepath.Dir(d.Changer.Where(1))}
}

// Locate finds the slot of a label.
func (d *DiskVolumes) Locate(ctx context.Context, label string) (string, error) {
	slot, err := d.find(ctx, label)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("slot %d", slot), nil
}

// find returns the slot holding label, checking the label on the vtape.
func (d *DiskVolumes) find(ctx context.Context, label string) (int, error) {
	d.smu.Lock()
	defer d.smu.Unlock()
	if d.slots == nil {
		d.slots = map[string]int{}
	}
	var damaged error // the label of the slot the volume was last seen in is damaged
	try := func(slot int) bool {
		v, err := taper.OpenVtape(d.Changer.Where(slot), 1<<62, 0)
		if err != nil {
			return false
		}
		defer v.Close()
		l, err := taper.ReadLabel(v)
		if errors.Is(err, taper.ErrDamagedLabel) {
			damaged = err
		}
		return err == nil && l.Label == label
	}
	if slot, ok := d.slots[label]; ok {
		if try(slot) {
			return slot, nil
		}
		delete(d.slots, label)
	}
	var hint int
	if d.Catalog != nil {
		if v, err := d.Catalog.Volume(ctx, label); err == nil && v.Slot > 0 {
			hint = v.Slot
			damaged = nil
			if try(v.Slot) {
				d.slots[label] = v.Slot
				return v.Slot, nil
			}
		}
	}
	inv, err := d.Changer.Inventory(ctx)
	if err != nil {
		return 0, fmt.Errorf("volume %s: read the changer's slots: %w", label, err)
	}
	clear(d.slots)
	for _, s := range inv {
		if s.Label != nil {
			d.slots[s.Label.Label] = s.Slot
		}
	}
	if slot, ok := d.slots[label]; ok {
		return slot, nil
	}
	if hint > 0 && damaged != nil {
		return 0, &missingError{fmt.Sprintf("volume %s: slot %d, where it was last seen, holds a volume whose label is damaged, so it cannot be told to be %s: %v", label, hint, label, damaged)}
	}
	n, _ := d.Changer.Slots(ctx)
	where := fmt.Sprintf("put it back into one of the %d slots of the disk changer", n)
	if hint > 0 {
		where = fmt.Sprintf("it was last seen in slot %d; put it back there", hint)
	}
	return 0, &missingError{fmt.Sprintf("volume %s is in no slot of the changer: %s, then extract again", label, where)}
}

// Open loads the slot holding label. A disk changer never waits for a
// person: ask is not used.
func (d *DiskVolumes) Open(ctx context.Context, label string, ask Ask) (taper.Device, func(), error) {
	slot, err := d.find(ctx, label)
	if err != nil {
		return nil, nil, err
	}
	release, err := d.drive.Take(ctx, "volume "+label)
	if err != nil {
		return nil, nil, err
	}
	dev, err := d.Changer.Load(ctx, slot)
	if err != nil {
		release()
		return nil, nil, fmt.Errorf("volume %s: load slot %d: %w", label, slot, err)
	}
	l, err := taper.ReadLabel(dev)
	if err == nil && l.Label == label {
		err = dev.Rewind()
		if err != nil {
			err = fmt.Errorf("rewind after reading the label: %w", err)
		}
	} else if err == nil {
		err = fmt.Errorf("slot %d holds volume %s now", slot, l.Label)
	}
	if err != nil {
		d.Changer.Eject(context.WithoutCancel(ctx))
		release()
		return nil, nil, &missingError{fmt.Sprintf("volume %s: %v; put it back and extract again", label, err)}
	}
	return dev, release, nil
}
