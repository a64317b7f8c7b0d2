package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/holding"
	"github.com/tapir-backup/tapir/index"
	"github.com/tapir-backup/tapir/report"
	"github.com/tapir-backup/tapir/taper"
)

// taping puts the run's holding images onto one volume.
type taping struct {
	cat       *index.Catalog
	cfg       *config.Config
	datestamp string
	clock     Clock
	log       *slog.Logger
	rep       *report.Run
}

func (t *taping) run(ctx context.Context, jobs []*job) {
	var todo []*job
	for _, j := range jobs {
		if j.holding != "" {
			todo = append(todo, j)
		}
	}
	leave := func(reason string) {
		t.rep.Notes = append(t.rep.Notes, "Nothing was taped: "+reason+". The images stay on the holding disk.")
		for _, j := range todo {
			j.res.Status = report.StatusHolding
			j.res.Reason = "on the holding disk, not on a volume: " + reason
		}
	}
	if len(todo) == 0 {
		return
	}
	if t.cfg.Changer.Type != "disk" {
		leave(fmt.Sprintf("changer type %q is not supported by this version (use type = \"disk\")", t.cfg.Changer.Type))
		return
	}
	tt := t.cfg.Tapetype()
	ch, err := taper.NewDiskChanger(t.cfg.Changer.Path, t.cfg.Changer.Slots, int64(tt.Length), int64(tt.Blocksize), t.log)
	if err != nil {
		leave(err.Error())
		return
	}
	states, next, err := t.volumeStates(ch)
	if err != nil {
		leave(err.Error())
		return
	}
	choice, err := taper.ChooseVolume(states, t.cfg.Tapecycle, t.cfg.LabelRegexp(), next)
	if err != nil {
		leave("no usable volume: " + err.Error())
		return
	}
	dev, err := t.prepare(ch, choice)
	if err != nil {
		leave(err.Error())
		return
	}
	vol := report.Volume{Label: choice.Label, Slot: choice.Slot, New: choice.Relabel}
	for _, j := range todo {
		if err := ctx.Err(); err != nil {
			j.res.Status = report.StatusHolding
			j.res.Reason = "run cancelled before taping; the image stays on the holding disk"
			continue
		}
		n, err := t.tapeOne(dev, choice.Label, j)
		if err != nil {
			j.res.Status = report.StatusHolding
			j.res.Reason = err.Error()
			t.log.Error("taping failed", "host", j.dle.Host, "path", j.dle.Path, "err", err)
			if errors.Is(err, taper.ErrVolumeFull) || errors.Is(err, taper.ErrEarlyWarning) {
				break
			}
			continue
		}
		vol.Files++
		vol.Bytes += n
	}
	for _, j := range todo {
		if j.res.Status == "" { // never reached after a full volume
			j.res.Status = report.StatusHolding
			j.res.Reason = fmt.Sprintf("volume %s filled up before this image; it stays on the holding disk", choice.Label)
		}
	}
	if err := dev.Close(); err != nil {
		t.rep.Notes = append(t.rep.Notes, fmt.Sprintf("closing %s: %v", dev.Name(), err))
	}
	if t.cfg.Eject {
		if err := ch.Eject(); err != nil {
			t.rep.Notes = append(t.rep.Notes, fmt.Sprintf("eject failed: %v", err))
		}
	}
	t.rep.Volumes = append(t.rep.Volumes, vol)

	// What the next run will want, for the report.
	if states, next, err := t.volumeStates(ch); err == nil {
		if c, err := taper.ChooseVolume(states, t.cfg.Tapecycle, t.cfg.LabelRegexp(), next); err == nil {
			if c.Relabel {
				t.rep.NextVolume = fmt.Sprintf("a new volume, labelled %s in slot %d", c.Label, c.Slot)
			} else {
				t.rep.NextVolume = fmt.Sprintf("volume %s in slot %d", c.Label, c.Slot)
			}
		} else {
			t.rep.NextVolume = "no usable volume: " + err.Error()
		}
	}
}

// volumeStates merges the changer's inventory with the catalog's memory of
// each volume, and finds the next free autolabel.
func (t *taping) volumeStates(ch taper.Changer) ([]taper.VolumeState, string, error) {
	inv, err := ch.Inventory()
	if err != nil {
		return nil, "", err
	}
	vols, err := t.cat.Volumes()
	if err != nil {
		return nil, "", err
	}
	known := map[string]index.Volume{}
	for _, v := range vols {
		known[v.Label] = v
	}
	used := map[string]bool{}
	var states []taper.VolumeState
	re := t.cfg.LabelRegexp()
	for _, s := range inv {
		st := taper.VolumeState{Slot: s.Slot, Blank: s.Blank, Foreign: s.Foreign, Reuse: true}
		if s.Label != nil {
			st.Label = s.Label.Label
			used[st.Label] = true
			switch {
			case s.Label.Org != t.cfg.Org:
				st.Foreign = fmt.Sprintf("labelled %s by configuration %q", s.Label.Label, s.Label.Org)
			case !re.MatchString(s.Label.Label):
				st.Foreign = fmt.Sprintf("label %s does not match labelstr %s", s.Label.Label, re)
			}
			if v, ok := known[st.Label]; ok {
				st.Written, st.Reuse = v.Written, v.Reuse
			} else if s.Label.Datestamp != "X" {
				st.Written = s.Label.Datestamp
			}
		}
		states = append(states, st)
	}
	for l := range known {
		used[l] = true
	}
	for n := 1; n < 1_000_000; n++ {
		l := t.cfg.AutolabelFor(n)
		if !used[l] {
			return states, l, nil
		}
	}
	return nil, "", errors.New("autolabel template exhausted")
}

// prepare loads the chosen volume and (re)writes its label with this run's
// datestamp. The catalog forgets what lived on the volume before the media
// is touched, so that a crash in between never leaves the catalog pointing
// at overwritten data.
func (t *taping) prepare(ch taper.Changer, c taper.Choice) (taper.Device, error) {
	dev, err := ch.Load(c.Slot)
	if err != nil {
		return nil, err
	}
	tt := t.cfg.Tapetype()
	if c.Relabel {
		if _, err := t.cat.AddVolume(index.Volume{Label: c.Label, Slot: c.Slot, Blocksize: int64(tt.Blocksize), Created: t.clock.Now(), Reuse: true}); err != nil {
			dev.Close()
			return nil, err
		}
		t.log.Info("labelling new volume", "label", c.Label, "slot", c.Slot)
	}
	dropped, err := t.cat.StartVolumeWrite(c.Label, c.Slot, int64(tt.Blocksize), t.datestamp)
	if err != nil {
		dev.Close()
		return nil, err
	}
	if len(dropped) > 0 {
		var names []string
		for _, d := range dropped {
			names = append(names, fmt.Sprintf("%s:%s lev %d of %s", d.Host, d.Path, d.Level, d.Datestamp))
		}
		t.rep.Notes = append(t.rep.Notes, fmt.Sprintf("Volume %s was overwritten; these images were on it and left the catalog: %s.", c.Label, strings.Join(names, ", ")))
	}
	l := taper.Label{Datestamp: t.datestamp, Label: c.Label, Org: t.cfg.Org, Blocksize: int64(tt.Blocksize), Created: t.clock.Now()}
	if err := taper.WriteLabel(dev, l); err != nil {
		dev.Close()
		return nil, err
	}
	t.log.Info("writing volume", "label", c.Label, "slot", c.Slot, "device", dev.Name())
	return dev, nil
}

// tapeOne writes one holding image as the next file of the volume, checks
// the SHA-256 of what it read against the header, commits the part and
// only then deletes the holding file. It returns the bytes written.
func (t *taping) tapeOne(dev taper.Device, label string, j *job) (int64, error) {
	start := t.clock.Now()
	h, f, err := holding.Open(j.holding)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if n, ok := dev.(taper.FileNamer); ok {
		if err := n.BeginFile(h.Name()); err != nil {
			return 0, err
		}
	}
	pos, err := dev.Tell()
	if err != nil {
		return 0, err
	}
	bs := int(t.cfg.Tapetype().Blocksize)
	th := *h
	th.Part, th.Parts, th.Blocksize = 1, 1, int64(bs)
	hb, err := th.Marshal()
	if err != nil {
		return 0, err
	}
	if err := dev.WriteRecord(hb); err != nil {
		return 0, fmt.Errorf("write header of %s to %s: %w", h.Name(), dev.Name(), err)
	}
	sum := sha256.New()
	buf := make([]byte, bs)
	var n int64
	for {
		k, rerr := io.ReadFull(f, buf)
		if k > 0 {
			sum.Write(buf[:k])
			if err := dev.WriteRecord(buf[:k]); err != nil && !errors.Is(err, taper.ErrEarlyWarning) {
				return 0, fmt.Errorf("write %s to %s at file %d: %w (this image spans volumes, which this version cannot do; it stays on the holding disk)", h.Name(), dev.Name(), pos.File, err)
			}
			n += int64(k)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return 0, fmt.Errorf("read holding file %s: %w", j.holding, rerr)
		}
	}
	if err := dev.WriteFilemark(); err != nil {
		return 0, fmt.Errorf("write filemark after %s on %s: %w", h.Name(), dev.Name(), err)
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != h.SHA256 || n != h.PayloadSize {
		return 0, fmt.Errorf("holding file %s is corrupt (SHA-256 %s, %d bytes; header says %s, %d bytes): not recorded as taped, kept for inspection", j.holding, got, n, h.SHA256, h.PayloadSize)
	}
	part := index.Part{DumpID: j.dumpID, Volume: label, Part: 1, FileNo: pos.File, Record: pos.Record, LogicalPos: pos.Logical, Offset: 0, Length: n}
	if err := t.cat.CommitTaped(j.dumpID, []index.Part{part}, t.clock.Now()); err != nil {
		return 0, err
	}
	if err := holding.Remove(j.holding); err != nil {
		t.rep.Notes = append(t.rep.Notes, err.Error())
	}
	j.holding = ""
	j.res.TapeTime = t.clock.Now().Sub(start)
	j.res.Volume, j.res.FileNo = label, pos.File
	j.res.Status = report.StatusOK
	if len(j.res.Strange) > 0 {
		j.res.Status = report.StatusStrange
	}
	t.log.Info("taped", "host", j.dle.Host, "path", j.dle.Path, "volume", label, "file", pos.File, "bytes", n)
	return n, nil
}
