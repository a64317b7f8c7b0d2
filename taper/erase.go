package taper

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Erase empties the vtape of slot, which must carry the tapir label label
// of configuration org: every tape file is removed, the last first (as a
// vtape erases itself when a label is written, so that a crash leaves a
// shorter but consistent volume), and the slot then holds a blank volume.
// Files that are not tape files are left alone. The label is read from the
// volume under the changer's lock just before; a slot that holds another
// label, another configuration's volume, a blank or foreign volume, the
// volume in the drive, or a write-protected one is refused, and nothing is
// removed. It returns the number of tape files removed.
func (c *DiskChanger) Erase(ctx context.Context, slot int, org, label string) (int, error) {
	if err := c.checkSlot("erase", slot); err != nil {
		return 0, err
	}
	if err := ctxErr(ctx, c.name(), fmt.Sprintf("erase slot %d", slot)); err != nil {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	dir := c.SlotDir(slot)
	fail := func(format string, args ...any) error {
		return fmt.Errorf("disk changer %s: erase slot %d (volume %s): "+format, append([]any{c.root, slot, label}, args...)...)
	}
	if d, ok := c.held[slot]; ok {
		return 0, fail("the volume is in drive %d; eject it first", d)
	}
	v, err := openVtape(dir, c.capacity, 0, c.blocksize)
	if err != nil {
		return 0, fail("%w", err)
	}
	l, err := ReadLabel(v)
	files := v.files
	wp, werr := v.writeProtected()
	v.Close()
	switch {
	case err != nil && errors.Is(err, ErrBlank):
		return 0, fail("the slot holds a blank volume, not %s; nothing erased", label)
	case err != nil:
		return 0, fail("cannot read its label, nothing erased: %w", err)
	case l.Label != label || l.Org != org:
		return 0, fail("the slot holds volume %s of configuration %q, not %s of %q; nothing erased", l.Label, l.Org, label, org)
	case werr != nil:
		return 0, fail("%w", werr)
	case wp:
		return 0, fail("%w (the slot directory is not writable by its owner; chmod u+w %s to allow it)", ErrWriteProtected, dir)
	}
	for i := len(files) - 1; i >= 0; i-- {
		if err := os.Remove(filepath.Join(dir, files[i].name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return len(files) - 1 - i, fail("%d of %d tape files removed, the label and the first files are still there: %w; remove the rest by hand, or write a new label with tapir label --force", len(files)-1-i, len(files), err)
		}
	}
	if err := syncDir(dir); err != nil {
		return len(files), fail("fsync %s: %w", dir, err)
	}
	c.log.Info("disk changer: erased", "slot", slot, "label", label, "files", len(files))
	return len(files), nil
}
