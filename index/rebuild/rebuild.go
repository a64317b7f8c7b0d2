package rebuild

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/tapir-backup/tapir/holding"
	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/image/crypt"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/index/indexd"
	"github.com/tapir-backup/tapir/index/tarscan"
	"github.com/tapir-backup/tapir/internal/dsn"
	"github.com/tapir-backup/tapir/taper"
)

// Options say what to rebuild from and where to.
type Options struct {
	Catalog string // the catalog file to create (SQLite; never a DSN)
	// Server is the tapir server whose volumes and holding disks these
	// are ([server] name): the runs, images and volumes rebuilt are
	// recorded as its own, so that the catalog can later be copied into
	// one shared with other servers. "" records them as no server's.
	Server  string
	Force   bool          // move an existing catalog aside instead of refusing
	Changer taper.Changer // every slot is read
	// Vaults are the changers of the vaults' copy volumes (tapir vault),
	// every slot read too. An image whole on the volumes of Changer is
	// recorded there, and whole on a vault's volumes as a copy (the
	// catalog's copies); an image whole only on a vault's volumes is
	// recorded there, as the catalog keeps an image whose first location
	// was overwritten.
	Vaults  []Vault
	Holding []string // holding disks
	Org     string   // the configuration's org: volumes of another org are reported and skipped
	Loc     *time.Location
	Now     func() time.Time
	Log     *slog.Logger
	// Progress receives a line per volume and per image for a person; may
	// be nil.
	Progress func(string)
	// Identities open encrypted images (docs/keys.md): with them the
	// frames, the file index and the listings of an encrypted image are
	// rebuilt from its plaintext; without them (or when none opens an
	// image) its dump and parts are recorded from the headers alone,
	// without frames or file index (Result.NoIndex).
	Identities *crypt.Identities
}

// Vault is a vault's changer for Rebuild.
type Vault struct {
	Name    string
	Changer taper.Changer
}

// Result says what the new catalog holds and what was left out.
type Result struct {
	MovedAside string // where the old catalog went (Force)
	Volumes    int
	Runs       int
	Dumps      int // images recorded (good and holding)
	Parts      int
	Copies     int      // further whole copies recorded (on vaults' volumes)
	Files      int64    // index entries
	Problems   []string // volumes and images left out, and why
	// Skipped are tape files a failed write left (a truncated or
	// header-only copy of a part) next to a whole copy of the same image,
	// on a volume or on the holding disk, which was recorded instead. They
	// are recorded as failed files, so that verify lists them as such.
	// Not problems: nothing is missing.
	Skipped []string
	// Encrypted counts the encrypted images recorded. NoIndex lists those
	// recorded without frames and file index, and why: no identity given,
	// or none given opens it (WrongKey counts these).
	Encrypted int
	NoIndex   []string
	WrongKey  int
}

// image is one image found on the media.
type found struct {
	hdr     *image.Header
	parts   []foundPart
	extra   []foundPart // more copies of a part number already in parts
	holding string      // first chunk of a holding image
	size    int64       // payload bytes (holding)
	// noIndex says why an encrypted image was recorded without frames
	// and file index (no identity, or a wrong one: wrongKey).
	noIndex  string
	wrongKey bool
	id       int64       // the dump recorded
	others   []foundPart // parts on the other sets than the one recorded: copies
	// holdingFirst: recorded from the holding disk though a vault holds
	// it (splitSets); others are those parts.
	holdingFirst bool
}

type foundPart struct {
	label     string
	set       int // 0: Options.Changer; i: Options.Vaults[i-1]
	slot      int
	part      int
	pos       taper.Position
	length    int64
	blocksize int64
}

type key struct {
	datestamp, host, path string
	level                 int
}

type vol struct {
	label *taper.Label
	set   int
	slot  int
}

// changers are the changers read, by set: Options.Changer, then each
// vault's.
func (o Options) changers() []taper.Changer {
	chs := []taper.Changer{o.Changer}
	for _, v := range o.Vaults {
		chs = append(chs, v.Changer)
	}
	return chs
}

// setName names a set of volumes for a person.
func (o Options) setName(set int) string {
	if set == 0 {
		return "the changer"
	}
	return "the changer of vault " + o.Vaults[set-1].Name
}

// Rebuild scans the media and writes a new catalog.
func Rebuild(ctx context.Context, o Options) (*Result, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Loc == nil {
		o.Loc = time.Local
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	say := func(format string, a ...any) {
		if o.Progress != nil {
			o.Progress(fmt.Sprintf(format, a...))
		}
	}
	if o.Catalog == "" {
		return nil, errors.New("rebuild: no catalog file given")
	}
	if dsn.IsPostgres(o.Catalog) {
		return nil, fmt.Errorf("rebuild: the catalog %s is a PostgreSQL database: rebuild writes a new SQLite file, never into a database: give it a file (tapir admin rebuild --out FILE), then copy that into an empty database (tapir admin catalog copy)", catalog.MaskDSN(o.Catalog))
	}
	res := &Result{}
	if _, err := os.Stat(o.Catalog); err == nil {
		if !o.Force {
			return nil, fmt.Errorf("rebuild: catalog %s exists; rebuild never overwrites a catalog: add --force to move it aside (it is kept as %s.before-rebuild-<time>)", o.Catalog, o.Catalog)
		}
	}
	tmp := o.Catalog + ".rebuilding"
	for _, suf := range []string{"", "-wal", "-shm"} {
		os.Remove(tmp + suf)
	}
	cat, err := catalog.Open(tmp)
	if err != nil {
		return nil, fmt.Errorf("rebuild: %w", err)
	}
	defer func() {
		if cat != nil {
			cat.Close()
			for _, suf := range []string{"", "-wal", "-shm"} {
				os.Remove(tmp + suf)
			}
		}
	}()

	if o.Server != "" {
		if err := cat.SetServer(o.Server); err != nil {
			return nil, fmt.Errorf("rebuild: %w", err)
		}
	}
	images := map[key]*found{}
	vols := map[string]vol{}
	for set, ch := range o.changers() {
		if ch == nil {
			continue
		}
		if err := scanVolumes(ctx, o, set, ch, images, vols, res, say); err != nil {
			return nil, err
		}
	}
	if err := scanHolding(o, images, res, say); err != nil {
		return nil, err
	}

	// Runs: every datestamp of an image or of a volume label.
	stamps := map[string]bool{}
	for k := range images {
		stamps[k.datestamp] = true
	}
	for _, v := range vols {
		if v.label.Datestamp != taper.NeverWritten {
			stamps[v.label.Datestamp] = true
		}
	}
	runIDs := map[string]int64{}
	for _, ds := range sortedKeys(stamps) {
		t, err := time.ParseInLocation("20060102150405", ds, o.Loc)
		if err != nil {
			return nil, fmt.Errorf("rebuild: datestamp %s: %w", ds, err)
		}
		id, err := cat.BeginRun(ctx, ds, o.Org, t)
		if err != nil {
			return nil, err
		}
		if err := cat.FinishRun(ctx, id, catalog.RunOK, t, "rebuilt by `tapir admin rebuild` on "+o.Now().Format(time.RFC3339)+" from the volumes and holding disks"); err != nil {
			return nil, err
		}
		runIDs[ds] = id
		res.Runs++
	}
	labels := make([]string, 0, len(vols))
	for l := range vols {
		labels = append(labels, l)
	}
	sort.Strings(labels)
	for _, l := range labels {
		v := vols[l]
		if _, err := cat.AddVolume(ctx, catalog.Volume{Label: l, Slot: v.slot, Blocksize: v.label.Blocksize, Created: v.label.Created}); err != nil {
			return nil, err
		}
		if v.label.Datestamp != taper.NeverWritten {
			if _, err := cat.StartVolumeWrite(ctx, l, v.slot, v.label.Blocksize, v.label.Datestamp); err != nil {
				return nil, err
			}
		}
		res.Volumes++
	}

	src := &slotVolumes{chs: o.changers(), at: map[string]vol{}}
	for l, v := range vols {
		src.at[l] = v
	}
	keys := make([]key, 0, len(images))
	for k := range images {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.datestamp != b.datestamp {
			return a.datestamp < b.datestamp
		}
		if a.host != b.host {
			return a.host < b.host
		}
		return a.path < b.path
	})
	for _, k := range keys {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		f := images[k]
		n, err := record(ctx, o, cat, src, runIDs[k.datestamp], f, res, say)
		what := fmt.Sprintf("%s:%s level %d of %s", k.host, k.path, k.level, k.datestamp)
		if err != nil {
			var p *problem
			if errors.As(err, &p) {
				res.Problems = append(res.Problems, what+": "+p.msg)
				say("%s: NOT RECORDED: %s", what, p.msg)
				continue
			}
			return nil, fmt.Errorf("rebuild: %s: %w", what, err)
		}
		res.Dumps++
		res.Parts += len(f.parts)
		res.Files += n
		if f.hdr.Encryption == image.EncAge {
			res.Encrypted++
		}
		where := "the holding disk"
		if len(f.parts) > 0 {
			var ls []string
			for _, p := range f.parts {
				ls = append(ls, fmt.Sprintf("%s file %d", p.label, p.pos.File))
			}
			where = strings.Join(ls, ", ")
		}
		if f.noIndex != "" {
			res.NoIndex = append(res.NoIndex, what+": "+f.noIndex)
			if f.wrongKey {
				res.WrongKey++
			}
			say("%s: encrypted; dump and parts recorded from %s, no file index: %s", what, where, f.noIndex)
		} else {
			say("%s: %d entries, from %s", what, n, where)
		}
		if err := recordCopies(ctx, o, cat, src, vols, f, what, res, say); err != nil {
			return nil, fmt.Errorf("rebuild: %s: %w", what, err)
		}
	}

	if err := cat.Close(); err != nil {
		return nil, err
	}
	cat = nil
	if _, err := os.Stat(o.Catalog); err == nil {
		aside := o.Catalog + ".before-rebuild-" + o.Now().Format("20060102150405")
		for _, suf := range []string{"", "-wal", "-shm"} {
			if err := os.Rename(o.Catalog+suf, aside+suf); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("rebuild: move the old catalog aside: %w (the new one is %s)", err, tmp)
			}
		}
		res.MovedAside = aside
	}
	if err := os.Rename(tmp, o.Catalog); err != nil {
		return nil, fmt.Errorf("rebuild: put the new catalog in place: %w (it is %s)", err, tmp)
	}
	return res, nil
}

// problem is an image or volume left out of the catalog, with the reason.
type problem struct{ msg string }

func (p *problem) Error() string { return p.msg }

func problemf(format string, a ...any) error { return &problem{fmt.Sprintf(format, a...)} }

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// scanVolumes reads every slot: the label, then the header and size of
// every tape file.
func scanVolumes(ctx context.Context, o Options, set int, ch taper.Changer, images map[key]*found, vols map[string]vol, res *Result, say func(string, ...any)) error {
	inv, err := ch.Inventory(ctx)
	if err == nil && ch.Properties().NeedsScan {
		inv, err = ch.Scan(ctx) // a robot reads the labels it does not know
	}
	if err != nil {
		return fmt.Errorf("rebuild: %s: %w", o.setName(set), err)
	}
	defer ch.Eject(context.WithoutCancel(ctx))
	in := ""
	if set > 0 {
		in = " of vault " + o.Vaults[set-1].Name
	}
	for _, si := range inv {
		if err := ctx.Err(); err != nil {
			return err
		}
		switch {
		case si.Empty, si.Blank:
			continue
		case si.Foreign != "":
			res.Problems = append(res.Problems, fmt.Sprintf("slot %d%s: not a tapir volume (%s); skipped", si.Slot, in, si.Foreign))
			continue
		case si.Err != nil:
			res.Problems = append(res.Problems, fmt.Sprintf("slot %d%s: %v; skipped", si.Slot, in, si.Err))
			continue
		case si.Label == nil:
			continue
		}
		l := si.Label
		if o.Org != "" && l.Org != o.Org {
			res.Problems = append(res.Problems, fmt.Sprintf("slot %d%s: volume %s belongs to configuration %q, not %q; skipped", si.Slot, in, l.Label, l.Org, o.Org))
			continue
		}
		if prev, ok := vols[l.Label]; ok {
			res.Problems = append(res.Problems, fmt.Sprintf("slot %d%s: volume %s is also in slot %d of %s; only that one was read", si.Slot, in, l.Label, prev.slot, o.setName(prev.set)))
			continue
		}
		vols[l.Label] = vol{label: l, set: set, slot: si.Slot}
		files, err := scanVolume(ctx, o, set, ch, si.Slot, l, images, res)
		if err != nil {
			return err
		}
		say("slot %d%s: volume %s (written %s): %d image file%s", si.Slot, in, l.Label, l.Datestamp, files, plural(files))
	}
	return nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func scanVolume(ctx context.Context, o Options, set int, ch taper.Changer, slot int, l *taper.Label, images map[key]*found, res *Result) (int, error) {
	dev, err := ch.Load(ctx, slot)
	if err != nil {
		res.Problems = append(res.Problems, fmt.Sprintf("slot %d: volume %s: %v; skipped", slot, l.Label, err))
		return 0, nil
	}
	if _, err := taper.ReadLabel(dev); err != nil {
		res.Problems = append(res.Problems, fmt.Sprintf("slot %d: volume %s: %v; skipped", slot, l.Label, err))
		return 0, nil
	}
	bs := max(l.Blocksize, taper.LabelSize)
	buf := make([]byte, bs)
	// To the start of file 1.
	if err := dev.SpaceFiles(1); err != nil {
		if errors.Is(err, taper.ErrEndOfData) {
			return 0, nil
		}
		res.Problems = append(res.Problems, fmt.Sprintf("volume %s: %v; the rest of the volume is not read", l.Label, err))
		return 0, nil
	}
	files := 0
	for {
		pos, err := dev.Tell()
		if err != nil {
			return files, fmt.Errorf("rebuild: volume %s: %w", l.Label, err)
		}
		n, err := dev.ReadRecord(buf)
		if errors.Is(err, taper.ErrEndOfData) {
			return files, nil
		}
		where := fmt.Sprintf("volume %s file %d", l.Label, pos.File)
		if err != nil && !errors.Is(err, io.EOF) {
			res.Problems = append(res.Problems, fmt.Sprintf("%s: %v; the rest of the volume is not read", where, err))
			return files, nil
		}
		if errors.Is(err, io.EOF) { // an empty file
			continue
		}
		h, perr := image.ParseHeader(buf[:n])
		switch {
		case errors.Is(perr, image.ErrHeaderChecksum):
			// Never recorded: a damaged header would put a wrong image
			// (another level, date or checksum) in the catalog as good.
			claims := ""
			if u, err := image.ParseHeaderUnchecked(buf[:n]); err == nil {
				claims = fmt.Sprintf(" (it reads as %s:%s level %d of %s part %d)", u.Host, u.Path, u.Level, u.Datestamp, u.Part)
			}
			res.Problems = append(res.Problems, fmt.Sprintf("%s: image NOT RECORDED: %v%s; restore it by hand if it is needed (docs/format/image.md)", where, perr, claims))
		case perr != nil:
			res.Problems = append(res.Problems, fmt.Sprintf("%s: not a tapir image (%v); skipped", where, perr))
		}
		// The payload's length: the file's size on a vtape, else the
		// records up to the filemark.
		var length int64
		if dev.Properties().RandomAccess {
			f, err := dev.OpenFile(int(pos.File))
			if err == nil {
				if fi, err := f.Stat(); err == nil {
					length = fi.Size() - image.HeaderSize
				}
				f.Close()
			}
			if err := dev.SpaceFiles(1); err != nil && !errors.Is(err, taper.ErrEndOfData) {
				res.Problems = append(res.Problems, fmt.Sprintf("%s: %v; the rest of the volume is not read", where, err))
				return files, nil
			}
		} else {
			for {
				k, err := dev.ReadRecord(buf)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					res.Problems = append(res.Problems, fmt.Sprintf("%s: %v; the rest of the volume is not read", where, err))
					return files, nil
				}
				length += int64(k)
			}
		}
		if perr != nil {
			continue
		}
		files++
		k := key{h.Datestamp, h.Host, h.Path, h.Level}
		f := images[k]
		if f == nil {
			f = &found{hdr: h}
			images[k] = f
		}
		fp := foundPart{label: l.Label, set: set, slot: slot, part: h.Part, pos: pos, length: length, blocksize: h.Blocksize}
		// Another copy of a part already found (a write that failed and
		// was tried again): record decides which copy to use.
		dup := false
		for _, p := range f.parts {
			dup = dup || p.part == h.Part
		}
		if dup {
			f.extra = append(f.extra, fp)
			continue
		}
		f.parts = append(f.parts, fp)
		if h.Part == 1 || f.hdr.Part != 1 {
			f.hdr = h
		}
	}
}

// scanHolding adds the complete images of the holding disks that are not
// on a volume.
func scanHolding(o Options, images map[key]*found, res *Result, say func(string, ...any)) error {
	if len(o.Holding) == 0 {
		return nil
	}
	fs, _, err := holding.Scan(o.Holding)
	if err != nil {
		return fmt.Errorf("rebuild: %w", err)
	}
	for _, f := range fs {
		if f.Err != nil || f.Header == nil {
			res.Problems = append(res.Problems, fmt.Sprintf("holding file %s: %v; skipped", f.Path, f.Err))
			continue
		}
		h := f.Header
		k := key{h.Datestamp, h.Host, h.Path, h.Level}
		if cur, ok := images[k]; ok && len(cur.parts) > 0 {
			// Also on a volume: record uses the volume's copy when it is
			// whole, else this one.
			cur.holding = f.Path
			continue
		}
		images[k] = &found{hdr: h, holding: f.Path}
	}
	return nil
}

// slotVolumes lends the volumes found by the scan, by changer and slot.
type slotVolumes struct {
	chs   []taper.Changer // by set
	at    map[string]vol
	drive indexd.DrivePool
}

func (s *slotVolumes) Properties() indexd.SourceProperties {
	if s.chs[0] == nil {
		return indexd.SourceProperties{Drives: 1}
	}
	return indexd.SourceProperties{Drives: 1, Where: s.chs[0].Properties().Where}
}

// missing is the error for a volume the scan did not find.
func (s *slotVolumes) missing(label string) error {
	return fmt.Errorf("volume %s was not found in the changers when the rebuild read them: put it into a slot and run the rebuild again: %w", label, indexd.ErrVolumeMissing)
}

func (s *slotVolumes) Locate(ctx context.Context, label string) (string, error) {
	v, ok := s.at[label]
	if !ok {
		return "", s.missing(label)
	}
	return fmt.Sprintf("slot %d", v.slot), nil
}

// Open loads the slot the rebuild found label in; nobody is asked (ask
// is not used): the rebuild reads what it found.
func (s *slotVolumes) Open(ctx context.Context, label string, ask indexd.Ask) (taper.Device, func(), error) {
	v, ok := s.at[label]
	if !ok {
		return nil, nil, s.missing(label)
	}
	slot := v.slot
	release, err := s.drive.Take(ctx, "volume "+label)
	if err != nil {
		return nil, nil, err
	}
	dev, err := s.chs[v.set].Load(ctx, slot)
	if err != nil {
		release()
		return nil, nil, err
	}
	l, err := taper.ReadLabel(dev)
	if err == nil && l.Label != label {
		err = fmt.Errorf("slot %d holds volume %s now, not %s: put %s back into slot %d and run the rebuild again: %w", slot, l.Label, label, label, slot, indexd.ErrVolumeMissing)
	}
	if err == nil {
		err = dev.Rewind()
	}
	if err != nil {
		release()
		return nil, nil, fmt.Errorf("volume %s: %w", label, err)
	}
	return dev, release, nil
}

// splitSets keeps in f.parts the parts of the first set (the changer's,
// then each vault's) that holds the image whole, and moves those of the
// other sets to f.others, each a copy recordCopies looks at. When no set
// holds it whole, the parts stay together as before (record then says
// what is missing, or uses the holding disk).
func splitSets(f *found) {
	all := append(append([]foundPart{}, f.parts...), f.extra...)
	bySet, sets := groupBySet(all)
	if f.holding != "" && len(sets) > 0 && sets[0] > 0 {
		// Waiting on the holding disk, never flushed, with a vault's copy
		// (tapir vault copies holding images): recorded waiting there,
		// the vaults' parts as copies, so that the next flush still puts
		// it on the configuration's volumes. record falls back to the
		// copy when the holding file cannot be recorded.
		f.parts, f.extra, f.others, f.holdingFirst = nil, nil, all, true
		return
	}
	if len(sets) < 2 {
		return
	}
	for _, set := range sets {
		if _, _, whole := chooseCopies(f.hdr, bySet[set], nil); !whole {
			continue
		}
		f.parts, f.extra, f.others = bySet[set], nil, nil
		for _, o := range sets {
			if o != set {
				f.others = append(f.others, bySet[o]...)
			}
		}
		return
	}
}

// recordCopies records, for an image recorded (f.id), each other set that
// holds it whole as a copy, its payload read and its SHA-256 checked
// first. A copy damaged or not whole is listed in res.Problems and not
// recorded; shorter duplicates of a part in a whole copy (a failed write
// tried again) are recorded as failed files, as record does.
func recordCopies(ctx context.Context, o Options, cat *catalog.Catalog, src indexd.VolumeSource, vols map[string]vol, f *found, what string, res *Result, say func(string, ...any)) error {
	if f.id == 0 || len(f.others) == 0 {
		return nil
	}
	d, err := cat.Dump(ctx, f.id)
	if err != nil {
		return err
	}
	bySet, sets := groupBySet(f.others)
	for _, set := range sets {
		chosen, rest, whole := chooseCopies(f.hdr, bySet[set], nil)
		parts, size := catalogParts(chosen)
		if !whole || size != d.PayloadSize {
			res.Problems = append(res.Problems, fmt.Sprintf("%s: its copy on %s is not whole (%s: %d payload bytes, the image %d): not recorded as a copy; either a vault did not finish it (killed: the next vault writes the image again) or a volume with the rest is not in that changer (load it and rebuild again)",
				what, o.setName(set), partList(bySet[set]), size, d.PayloadSize))
			continue
		}
		r := indexd.NewImageReader(ctx, src, nil, *d, parts)
		sum := sha256.New()
		_, err := io.Copy(sum, r.Stream())
		r.Close()
		if got := hex.EncodeToString(sum.Sum(nil)); err == nil && got != d.SHA256 {
			err = fmt.Errorf("its payload's SHA-256 is %s, the image's %s", got, d.SHA256)
		}
		if err != nil {
			res.Problems = append(res.Problems, fmt.Sprintf("%s: its copy on %s (%s) is damaged: %v; not recorded as a copy", what, o.setName(set), partList(chosen), err))
			continue
		}
		copied := o.Now()
		if v, ok := vols[chosen[0].label]; ok {
			if t, err := time.ParseInLocation("20060102150405", v.label.Datestamp, o.Loc); err == nil {
				copied = t
			}
		}
		if _, err := cat.RecordCopy(ctx, f.id, parts, copied); err != nil {
			return err
		}
		res.Copies++
		say("%s: a copy on %s (%s)", what, o.setName(set), partList(chosen))
		used := map[int]foundPart{}
		for _, p := range chosen {
			used[p.part] = p
		}
		if err := skipUnused(ctx, cat, f.hdr, what, rest, used, "the copy on "+o.setName(set)+" is whole", res, say); err != nil {
			return err
		}
	}
	return nil
}

// groupBySet splits parts by the set of volumes they were found on; sets
// lists the sets in order.
func groupBySet(parts []foundPart) (bySet map[int][]foundPart, sets []int) {
	bySet = map[int][]foundPart{}
	for _, p := range parts {
		if _, ok := bySet[p.set]; !ok {
			sets = append(sets, p.set)
		}
		bySet[p.set] = append(bySet[p.set], p)
	}
	sort.Ints(sets)
	return bySet, sets
}

// catalogParts are the catalog's parts of found parts numbered 1..n in
// order, and the payload bytes they hold.
func catalogParts(fps []foundPart) ([]catalog.Part, int64) {
	var parts []catalog.Part
	var off int64
	for _, p := range fps {
		parts = append(parts, catalog.Part{Volume: p.label, Part: p.part, FileNo: p.pos.File, Record: p.pos.Record, LogicalPos: p.pos.Logical, Offset: off, Length: p.length})
		off += p.length
	}
	return parts, off
}

// chooseCopies picks, for each part number, the longest of its copies on
// the volumes: a copy a failed write left is truncated (or only a header),
// the copy written again is whole. It returns the parts chosen, the copies
// not used, and whether the parts chosen hold the image whole (numbered
// from 1 without a gap, their payloads as long as the header says, when it
// says).
func chooseCopies(h *image.Header, parts, extra []foundPart) (chosen, rest []foundPart, whole bool) {
	best := map[int]int{} // part number -> index in all
	all := append(append([]foundPart{}, parts...), extra...)
	for i, p := range all {
		if j, ok := best[p.part]; !ok || p.length > all[j].length {
			best[p.part] = i
		}
	}
	var sum int64
	for i, p := range all {
		if best[p.part] == i {
			chosen = append(chosen, p)
			sum += p.length
		} else {
			rest = append(rest, p)
		}
	}
	sort.Slice(chosen, func(i, j int) bool { return chosen[i].part < chosen[j].part })
	whole = true
	for i, p := range chosen {
		whole = whole && p.part == i+1
	}
	whole = whole && (h.PayloadSize < 0 || sum == h.PayloadSize)
	return chosen, rest, whole
}

// record reads one image whole and records it: dump, frames, file index,
// listings, parts; it returns the number of index entries. Of several
// copies of a part it uses the whole one: the others, shorter, are what a
// failed write left (the write was tried again), and once the image is
// recorded they are recorded as failed files and listed in res.Skipped.
// A second copy as long as the one used is a problem, as before: nothing
// says which is right.
func record(ctx context.Context, o Options, cat *catalog.Catalog, src indexd.VolumeSource, runID int64, f *found, res *Result, say func(string, ...any)) (int64, error) {
	h := f.hdr
	what := fmt.Sprintf("%s:%s level %d of %s", h.Host, h.Path, h.Level, h.Datestamp)
	splitSets(f)
	var unused []foundPart
	used := map[int]foundPart{}
	wholeAt := ""
	if len(f.parts) > 0 {
		chosen, rest, whole := chooseCopies(h, f.parts, f.extra)
		for _, p := range chosen {
			used[p.part] = p
		}
		switch {
		case whole:
			if f.holding != "" {
				say("holding file %s is also on volume %s; the volume's copy is recorded", f.holding, chosen[0].label)
			}
			f.parts, unused, wholeAt = chosen, rest, "the volumes hold the image whole ("+partList(chosen)+")"
			f.holding = ""
		case f.holding != "":
			unused = append(append([]foundPart{}, f.parts...), f.extra...)
			f.parts, wholeAt = nil, "the holding disk holds the image whole ("+f.holding+")"
			used = map[int]foundPart{}
		default:
			f.parts, unused = chosen, rest
		}
	}
	n, err := recordImage(ctx, o, cat, src, runID, f)
	var p *problem
	if errors.As(err, &p) && f.holdingFirst {
		// The holding file cannot be recorded: the image from its copy.
		say("%s: holding file %s cannot be recorded (%s); its copy on a vault's volumes is recorded", what, f.holding, p.msg)
		res.Problems = append(res.Problems, fmt.Sprintf("%s: holding file %s: %s; the image is recorded from its copy on a vault's volumes", what, f.holding, p.msg))
		f.parts, f.others, f.holding, f.holdingFirst = f.others, nil, "", false
		return record(ctx, o, cat, src, runID, f, res, say)
	}
	if errors.As(err, &p) && len(unused) > 0 {
		return 0, problemf("%s; other copies on the volumes, not used: %s", p.msg, partList(unused))
	}
	if err != nil {
		return 0, err
	}
	if err := skipUnused(ctx, cat, h, what, unused, used, wholeAt, res, say); err != nil {
		return n, err
	}
	return n, nil
}

// skipUnused deals with the copies of parts not used for an image: one
// as long as the part used (used, by number) is a problem — nothing says
// which is right —, a shorter one is what a failed write left, recorded
// as a failed file and listed in res.Skipped (wholeAt says where the
// image is whole).
func skipUnused(ctx context.Context, cat *catalog.Catalog, h *image.Header, what string, unused []foundPart, used map[int]foundPart, wholeAt string, res *Result, say func(string, ...any)) error {
	for _, c := range unused {
		where := fmt.Sprintf("volume %s file %d", c.label, c.pos.File)
		if u, ok := used[c.part]; ok && c.length == u.length {
			res.Problems = append(res.Problems, fmt.Sprintf("%s: part %d of %s is also on volume %s file %d; that copy is used", where, c.part, what, u.label, u.pos.File))
			continue
		}
		why := fmt.Sprintf("a copy of part %d of %s with %d payload bytes, left by a write that failed; %s", c.part, what, c.length, wholeAt)
		if err := cat.RecordFailedFile(ctx, catalog.FailedFile{Volume: c.label, FileNo: c.pos.File, Datestamp: h.Datestamp, Host: h.Host, Path: h.Path, Level: h.Level, Reason: why}); err != nil {
			return err
		}
		line := fmt.Sprintf("%s: skipped, recorded as a failed file: %s", where, why)
		res.Skipped = append(res.Skipped, line)
		say("%s", line)
	}
	return nil
}

// recordImage records the image from its parts on the volumes, or from
// the holding disk when it has none. An encrypted image is recorded from
// its header and ciphertext (its SHA-256 is of the bytes on the volume);
// its frames, file index and listings come from its plaintext when an
// identity opens it, else the dump is recorded without them (f.noIndex).
func recordImage(ctx context.Context, o Options, cat *catalog.Catalog, src indexd.VolumeSource, runID int64, f *found) (int64, error) {
	h := f.hdr
	d := catalog.Dump{Host: h.Host, Path: h.Path, Level: h.Level, Datestamp: h.Datestamp, Comp: string(h.Comp), FrameSize: h.FrameSize}
	encrypted := h.Encryption == image.EncAge
	if encrypted {
		d.Encryption, d.Recipients = image.EncAge, h.Recipients
	}
	if h.Payload == image.PayloadCommand {
		d.Payload = catalog.PayloadCommand
	}
	var parts []catalog.Part
	if f.holding != "" {
		im, err := holding.OpenImage(f.holding, o.Holding)
		if err != nil {
			return 0, problemf("%v", err)
		}
		d.PayloadSize = im.Size
		d.HoldingPath = f.holding
		im.Close()
	} else {
		sort.Slice(f.parts, func(i, j int) bool { return f.parts[i].part < f.parts[j].part })
		for i, p := range f.parts {
			if p.part != i+1 {
				return 0, problemf("part %d is not on any volume read (parts found: %s); load the volume that holds it and rebuild again", i+1, partList(f.parts))
			}
		}
		parts, d.PayloadSize = catalogParts(f.parts)
	}
	if h.PayloadSize >= 0 && h.PayloadSize != d.PayloadSize {
		return 0, problemf("its parts hold %d payload bytes but the header says %d (parts found: %s): a part is missing or truncated", d.PayloadSize, h.PayloadSize, partList(f.parts))
	}
	r := indexd.NewImageReader(ctx, src, o.Holding, d, parts)
	defer r.Close()

	// The payload as framed: the bytes read, or the plaintext an
	// identity opens.
	var plain io.ReaderAt = r
	plainSize := d.PayloadSize
	var key *crypt.Key
	if encrypted {
		hdr, err := crypt.ReadHeader(r, d.PayloadSize)
		if err != nil {
			return 0, problemf("its header says encryption age, but its payload is not an age file: %v", err)
		}
		d.CryptHeader = hdr
		switch {
		case o.Identities == nil || len(o.Identities.List) == 0:
			f.noIndex = "no identity given (rebuild with --identity FILE for its frames and file index)"
		default:
			key, err = crypt.Unwrap(hdr, d.PayloadSize, o.Identities.List)
			switch {
			case errors.Is(err, crypt.ErrWrongKey):
				f.noIndex = fmt.Sprintf("identity file %s is not one of its recipients (the image's: %s; the file's: %s)", o.Identities.File,
					strings.Join(h.Recipients, " "), strings.Join(o.Identities.Fingerprints(), " "))
				f.wrongKey = true
			case err != nil:
				return 0, problemf("its encrypted payload: %v", err)
			default:
				pr := crypt.NewReaderAt(r, key)
				plain, plainSize = pr, pr.Size()
			}
		}
	}
	var frames []image.Frame
	if !encrypted || key != nil {
		var err error
		dr := &damageSeen{r: plain}
		frames, err = frameList(dr, plainSize, h)
		if dr.damaged {
			return 0, problemf("the image is damaged: %v", err)
		}
		if err != nil {
			return 0, problemf("%v", err)
		}
	}

	// One pass over the payload: SHA-256, and the tar stream for the file
	// index and the listings.
	started, _ := time.ParseInLocation("20060102150405", h.Datestamp, o.Loc)
	d.RunID, d.Started = runID, started
	id, err := cat.CreateDump(ctx, &d)
	if err != nil {
		return 0, err
	}
	fail := func(fw *catalog.FileWriter, err error) (int64, error) {
		if fw != nil {
			fw.Abort()
		}
		cat.FailDump(ctx, id, err.Error())
		return 0, err
	}
	sum := sha256.New()
	tee := io.TeeReader(bufio.NewReaderSize(r.Stream(), 1<<20), sum)
	var n, orig int64
	var fw *catalog.FileWriter
	listings := map[string]string{}
	if encrypted && key == nil {
		// Only the ciphertext: its SHA-256. The sizes the header gives.
		if _, err := io.Copy(io.Discard, tee); err != nil {
			return fail(nil, problemf("reading the image: %v", err))
		}
		if h.OriginalSize > 0 {
			orig = h.OriginalSize
		}
	} else {
		fw, err = cat.NewFileWriter(ctx, id, max(h.FrameSize, 1))
		if err != nil {
			return 0, err
		}
		var payload io.Reader = tee
		if key != nil {
			cr, err := crypt.NewChunkReader(tee, key)
			if err != nil {
				return fail(fw, problemf("reading the image: %v", err))
			}
			payload = cr
		}
		tr, err := image.NewStreamReader(payload, h.Comp)
		if err != nil {
			return fail(fw, problemf("%v", err))
		}
		if d.IsCommand() {
			// A command's output: no entries, only its size.
			orig, err = io.Copy(io.Discard, tr)
		} else {
			orig, err = tarscan.Scan(tr, func(e tarscan.Entry) error {
				if e.HasDumpdir {
					listings[e.Path] = e.Dumpdir
				}
				if e.Path == "" {
					return nil
				}
				n++
				return fw.Add(ctx, e.FileRecord)
			})
		}
		if err == nil {
			// Through the decompressor to its end first (it may read ahead in
			// its own goroutine), then what is left of the payload (through
			// the decryption: every chunk is authenticated, the last one too).
			if _, err = io.Copy(io.Discard, tr); err == nil {
				if _, err = io.Copy(io.Discard, payload); err == nil {
					_, err = io.Copy(io.Discard, tee) // normally nothing
				}
			}
		}
		tr.Close()
		if err != nil {
			if errors.Is(err, crypt.ErrDamaged) {
				// The SHA-256 (of the ciphertext) says more when it differs.
				io.Copy(io.Discard, tee)
				if got := hex.EncodeToString(sum.Sum(nil)); h.SHA256 != "" && got != h.SHA256 {
					return fail(fw, problemf("its payload's SHA-256 is %s but its header says %s: the image is damaged (%v)", got, h.SHA256, err))
				}
			}
			return fail(fw, problemf("reading the image: %v", err))
		}
	}
	got := hex.EncodeToString(sum.Sum(nil))
	if h.SHA256 != "" && got != h.SHA256 {
		return fail(fw, problemf("its payload's SHA-256 is %s but its header says %s: the image is damaged", got, h.SHA256))
	}
	if len(frames) > 0 {
		last := frames[len(frames)-1]
		if end := last.TarOffset + last.TarSize; end != orig && end < orig {
			return fail(fw, problemf("its frames hold %d tar bytes but the tar stream has %d", end, orig))
		}
		orig = last.TarOffset + last.TarSize
	}
	if fw != nil {
		if err := fw.Commit(ctx); err != nil {
			return fail(fw, err)
		}
	}
	if err := cat.SetDumpHolding(ctx, id, orig, d.PayloadSize, got, n, d.HoldingPath, frames, started); err != nil {
		return 0, err
	}
	if err := cat.SetListings(ctx, id, listings); err != nil {
		return 0, err
	}
	if len(parts) > 0 {
		if err := cat.CommitTaped(ctx, id, parts, started); err != nil {
			return 0, err
		}
	}
	f.id = id
	return n, nil
}

func partList(ps []foundPart) string {
	if len(ps) == 0 {
		return "none"
	}
	var s []string
	for _, p := range ps {
		s = append(s, fmt.Sprintf("part %d on %s file %d", p.part, p.label, p.pos.File))
	}
	return strings.Join(s, ", ")
}

// frameList finds the frames of a (framed, plaintext) payload of size
// bytes: the zstd seek table, or by reading the gzip members, or
// frame-size pieces of an uncompressed one.
func frameList(r io.ReaderAt, size int64, h *image.Header) ([]image.Frame, error) {
	var frames []image.Frame
	switch h.Comp {
	case image.CompZstd:
		fs, err := image.ReadSeekTable(r, size)
		if err != nil {
			return nil, err
		}
		frames = fs
	case image.CompGzip:
		cr := &countReader{r: bufio.NewReaderSize(io.NewSectionReader(r, 0, size), 1<<20)}
		zr, err := gzip.NewReader(cr)
		if err != nil {
			return nil, fmt.Errorf("gzip payload: %w", err)
		}
		var start, tarOff int64
		for i := 0; ; i++ {
			zr.Multistream(false)
			k, err := io.Copy(io.Discard, zr)
			if err != nil {
				return nil, fmt.Errorf("gzip member %d at payload offset %d: %w", i, start, err)
			}
			frames = append(frames, image.Frame{Index: i, TarOffset: tarOff, TarSize: k, Offset: start, Size: cr.n - start})
			tarOff += k
			start = cr.n
			if err := zr.Reset(cr); err == io.EOF {
				break
			} else if err != nil {
				return nil, fmt.Errorf("gzip member %d at payload offset %d: %w", i+1, start, err)
			}
		}
	case image.CompNone:
		fs := h.FrameSize
		if fs <= 0 {
			return nil, errors.New("the header gives no frame size")
		}
		for i, off := 0, int64(0); off < size; i++ {
			k := min(fs, size-off)
			frames = append(frames, image.Frame{Index: i, TarOffset: off, TarSize: k, Offset: off, Size: k})
			off += k
		}
	default:
		return nil, fmt.Errorf("unknown compression %q", h.Comp)
	}
	return frames, nil
}

// countReader counts the bytes read through it; it is an io.ByteReader so
// that the gzip reader does not read ahead past a member.
type countReader struct {
	r *bufio.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	c.n += int64(k)
	return k, err
}

func (c *countReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}
