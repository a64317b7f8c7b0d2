package server

import (
	"context"
	"log/slog"
	"regexp"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/report"
	"github.com/tapir-backup/tapir/taper"
)

// Collector exports the state of a tapir site to Prometheus, read from the
// catalog, the holding disks and the run status at every scrape, so that
// the figures survive restarts and say what happened, not what started:
// when the last run ended and how, when the last run ended well, the last
// good dump of every DLE, what the last run dumped and taped, the holding
// disks' use, the volumes, and whether a run is going now.
type Collector struct {
	cfg func() *config.Config // the configuration in force (it may be reloaded)
	cat *catalog.Catalog
	log *slog.Logger

	lastRun, lastGood, lastStatus, inProgress            *prometheus.Desc
	runDLEs, runDumped, runTaped, runDuration            *prometheus.Desc
	dleGood, dleGoodLevel, dleFull, dleFailed            *prometheus.Desc
	holdingBytes, volumes, volumesBeforeNew, scrapeError *prometheus.Desc
	volStarved, volRate, dleStarved, dleRate             *prometheus.Desc
	driveStarved, driveRate                              *prometheus.Desc
	srvLastRun, srvLastGood, srvVolumes                  *prometheus.Desc
	vaultLastCopy, vaultNotCopied, dleVaultedFull        *prometheus.Desc
}

// NewCollector returns a Collector over an open catalog.
func NewCollector(cfg func() *config.Config, cat *catalog.Catalog, log *slog.Logger) *Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("tapir_"+name, help, labels, nil)
	}
	return &Collector{cfg: cfg, cat: cat, log: log,
		lastRun:          d("last_run_end_timestamp_seconds", "When the newest finished run (dump or flush) ended."),
		lastGood:         d("last_successful_run_end_timestamp_seconds", "When the newest run whose DLEs all ended safe (status ok or strange) ended."),
		lastStatus:       d("last_run_status", "1 for the status of the newest finished run (ok, strange, degraded, failed), 0 for the others.", "status"),
		inProgress:       d("run_in_progress", "1 while a run of this configuration is going."),
		runDLEs:          d("last_run_dles", "DLEs of the newest finished run, by outcome.", "status"),
		runDumped:        d("last_run_dumped_bytes", "Bytes written by the dumps of the newest finished run (after compression)."),
		runTaped:         d("last_run_taped_bytes", "Bytes the newest finished run wrote to volumes."),
		runDuration:      d("last_run_duration_seconds", "How long the newest finished run took."),
		dleGood:          d("dle_last_good_dump_timestamp_seconds", "When the newest dump of the DLE that is on a volume was made.", "host", "path"),
		dleGoodLevel:     d("dle_last_good_dump_level", "The level of that dump.", "host", "path"),
		dleFull:          d("dle_last_full_timestamp_seconds", "When the newest full of the DLE that is on a volume was made.", "host", "path"),
		dleFailed:        d("dle_failed_in_last_run", "1 when the DLE failed in the newest finished run.", "host", "path"),
		holdingBytes:     d("holding_bytes", "Holding disk space: capacity, used (by images and reservations) and free.", "disk", "kind"),
		volumes:          d("volumes", "Volumes in the catalog: labelled (ours, written or not), written, retired (no reuse).", "state"),
		volumesBeforeNew: d("volumes_usable_before_new", "Volumes that may still be written before tapecycle forces a new one: labelled volumes outside the newest tapecycle written, plus never-written ones."),
		scrapeError:      d("scrape_error", "1 when reading the catalog or the holding disks failed during this scrape (see the server log)."),
		volStarved:       d("last_run_volume_starved_seconds", "Time the drive waited for data in the middle of images while writing the volume in the newest finished run (a shoe-shine indicator; 0 when the holding disk fed it).", "volume"),
		volRate:          d("last_run_volume_rate_bytes_per_second", "Bytes written to the volume in the newest finished run divided by the time spent writing it.", "volume"),
		driveStarved:     d("last_run_drive_starved_seconds", "Time each drive waited for data in the middle of images in the newest finished run, over the volumes it wrote (drive \"the drive\" when the run wrote with one).", "drive"),
		driveRate:        d("last_run_drive_rate_bytes_per_second", "Bytes each drive wrote in the newest finished run divided by the time its volumes were in it.", "drive"),
		dleStarved:       d("dle_tape_starved_seconds_in_last_run", "Time the drive waited for the DLE's image after its first byte in the newest finished run.", "host", "path"),
		dleRate:          d("dle_tape_rate_bytes_per_second_in_last_run", "Bytes of the DLE's image taped in the newest finished run divided by its tape time.", "host", "path"),
		srvLastRun:       d("server_last_run_end_timestamp_seconds", "When the newest finished run of each tapir server sharing the catalog ended.", "server"),
		srvLastGood:      d("server_last_successful_run_end_timestamp_seconds", "When the newest run of each tapir server sharing the catalog whose DLEs all ended safe ended.", "server"),
		srvVolumes:       d("server_volumes", "Volumes each tapir server sharing the catalog owns (its changer holds them).", "server"),
		vaultLastCopy:    d("vault_last_copy_timestamp_seconds", "When the newest copy on the vault's volumes was recorded.", "vault"),
		vaultNotCopied:   d("vault_dles_not_copied", "Configured DLEs whose newest chain (with fulls_only: newest full) is not whole on the vault's volumes.", "vault"),
		dleVaultedFull:   d("dle_last_vaulted_full_timestamp_seconds", "When the newest full of the DLE that is whole on the vault's volumes was made.", "vault", "host", "path"),
	}
}

// Describe sends every metric's description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.lastRun, c.lastGood, c.lastStatus, c.inProgress, c.runDLEs, c.runDumped, c.runTaped,
		c.runDuration, c.dleGood, c.dleGoodLevel, c.dleFull, c.dleFailed, c.holdingBytes, c.volumes, c.volumesBeforeNew, c.scrapeError,
		c.volStarved, c.volRate, c.dleStarved, c.dleRate, c.driveStarved, c.driveRate, c.srvLastRun, c.srvLastGood, c.srvVolumes,
		c.vaultLastCopy, c.vaultNotCopied, c.dleVaultedFull} {
		ch <- d
	}
}

// Collect reads the catalog and the disks and sends the metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx := context.Background() // a scrape has no context: prometheus.Collector.Collect takes none
	cfg := c.cfg()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	failed := 0.0
	fail := func(what string, err error) {
		c.log.Error("metrics: "+what, "err", err)
		failed = 1
	}
	defer func() { gauge(c.scrapeError, failed) }()

	if st, live, err := ReadStatus(cfg); err == nil && live && st != nil {
		gauge(c.inProgress, 1)
	} else {
		gauge(c.inProgress, 0)
	}

	runs, err := c.cat.Runs(ctx)
	if err != nil {
		fail("read runs", err)
	}
	var last *catalog.Run
	var lastGood *catalog.Run
	for i := range runs {
		r := &runs[i]
		if r.Finished.IsZero() || r.Status == "running" {
			continue
		}
		if last == nil || r.Finished.After(last.Finished) {
			last = r
		}
		if (r.Status == report.RunOK || r.Status == report.RunStrange) && (lastGood == nil || r.Finished.After(lastGood.Finished)) {
			lastGood = r
		}
	}
	failedDLE := map[[2]string]bool{}
	if last != nil {
		gauge(c.lastRun, float64(last.Finished.Unix()))
		gauge(c.runDuration, last.Finished.Sub(last.Started).Seconds())
		for _, s := range []string{report.RunOK, report.RunStrange, report.RunDegraded, report.RunFailed} {
			v := 0.0
			if last.Status == s {
				v = 1
			}
			gauge(c.lastStatus, v, s)
		}
		if rep, err := report.ParseJSON([]byte(last.Report)); err == nil {
			byStatus := map[string]float64{}
			var dumped, taped int64
			for _, d := range rep.DLEs {
				byStatus[d.Status]++
				if d.Flushed == "" {
					dumped += d.OutSize
				}
				if d.Status == report.StatusFailed {
					failedDLE[[2]string{d.Host, d.Path}] = true
				}
			}
			// A run may name a DLE twice (a flushed image and tonight's)
			// and, in principle, a volume twice: one series each, summed.
			type tape struct {
				bytes         int64
				time, starved time.Duration
			}
			var volOrder, driveOrder []string
			vols, drives := map[string]*tape{}, map[string]*tape{}
			for _, v := range rep.Volumes {
				name := v.Drive
				if name == "" {
					name = "the drive"
				}
				dx := drives[name]
				if dx == nil {
					dx = &tape{}
					drives[name] = dx
					driveOrder = append(driveOrder, name)
				}
				dx.bytes, dx.time, dx.starved = dx.bytes+v.Bytes, dx.time+v.Time, dx.starved+v.Starved
				taped += v.Bytes
				x := vols[v.Label]
				if x == nil {
					x = &tape{}
					vols[v.Label] = x
					volOrder = append(volOrder, v.Label)
				}
				x.bytes, x.time, x.starved = x.bytes+v.Bytes, x.time+v.Time, x.starved+v.Starved
			}
			for _, l := range volOrder {
				gauge(c.volStarved, vols[l].starved.Seconds(), l)
				gauge(c.volRate, taper.Rate(vols[l].bytes, vols[l].time), l)
			}
			for _, n := range driveOrder {
				gauge(c.driveStarved, drives[n].starved.Seconds(), n)
				gauge(c.driveRate, taper.Rate(drives[n].bytes, drives[n].time), n)
			}
			var dleOrder [][2]string
			dles := map[[2]string]*tape{}
			for _, d := range rep.DLEs {
				if len(d.Parts) == 0 {
					continue
				}
				k := [2]string{d.Host, d.Path}
				x := dles[k]
				if x == nil {
					x = &tape{}
					dles[k] = x
					dleOrder = append(dleOrder, k)
				}
				for _, p := range d.Parts {
					x.bytes += p.Bytes
				}
				x.time, x.starved = x.time+d.TapeTime, x.starved+d.Starved
			}
			for _, k := range dleOrder {
				gauge(c.dleStarved, dles[k].starved.Seconds(), k[0], k[1])
				gauge(c.dleRate, taper.Rate(dles[k].bytes, dles[k].time), k[0], k[1])
			}
			for _, s := range []string{report.StatusOK, report.StatusStrange, report.StatusFailed, report.StatusHolding, report.StatusSkipped, report.StatusDelayed} {
				gauge(c.runDLEs, byStatus[s], s)
			}
			gauge(c.runDumped, float64(dumped))
			gauge(c.runTaped, float64(taped))
		}
	}
	if lastGood != nil {
		gauge(c.lastGood, float64(lastGood.Finished.Unix()))
	}

	for _, d := range cfg.DLEs {
		dumps, err := c.cat.Dumps(ctx, d.Host, d.Path)
		if err != nil {
			fail("read dumps", err)
			break
		}
		var good, full *catalog.Dump
		for i := range dumps { // newest first
			x := &dumps[i]
			if x.Status != catalog.DumpGood {
				continue
			}
			if good == nil {
				good = x
			}
			if full == nil && x.Level == 0 {
				full = x
			}
		}
		if good != nil {
			gauge(c.dleGood, float64(good.Started.Unix()), d.Host, d.Path)
			gauge(c.dleGoodLevel, float64(good.Level), d.Host, d.Path)
		}
		if full != nil {
			gauge(c.dleFull, float64(full.Started.Unix()), d.Host, d.Path)
		}
		v := 0.0
		if failedDLE[[2]string{d.Host, d.Path}] {
			v = 1
		}
		gauge(c.dleFailed, v, d.Host, d.Path)
	}

	if usage, err := HoldingUsage(cfg); err != nil {
		fail("measure the holding disks", err)
	} else {
		for _, u := range usage {
			gauge(c.holdingBytes, float64(u.Capacity), u.Path, "capacity")
			gauge(c.holdingBytes, float64(u.Used), u.Path, "used")
			gauge(c.holdingBytes, float64(max(u.Capacity-u.Used, 0)), u.Path, "free")
		}
	}

	c.collectServers(ctx, gauge, fail)
	c.collectVaults(ctx, cfg, gauge, fail)

	vols, err := c.cat.Volumes(ctx)
	if err != nil {
		fail("read volumes", err)
		return
	}
	var labelled, written, retired float64
	var states []taper.VolumeState
	re := cfg.LabelRegexp()
	for _, v := range vols {
		if !ours(re, v.Label) {
			continue
		}
		labelled++
		if v.Written != "" {
			written++
		}
		if !v.Reuse {
			retired++
		}
		states = append(states, taper.VolumeState{Label: v.Label, Slot: max(v.Slot, 1), Written: v.Written, Reuse: v.Reuse})
	}
	gauge(c.volumes, labelled, "labelled")
	gauge(c.volumes, written, "written")
	gauge(c.volumes, retired, "retired")
	gauge(c.volumesBeforeNew, float64(usableVolumes(states, cfg.Tapecycle)))
}

func ours(re *regexp.Regexp, label string) bool { return re == nil || re.MatchString(label) }

// usableVolumes counts the volumes ChooseVolume may pick now or as the
// rotation goes on without a new one: never-written labelled volumes plus
// written reusable ones outside the newest tapecycle.
func usableVolumes(states []taper.VolumeState, tapecycle int) int {
	n := 0
	var written []taper.VolumeState
	for _, s := range states {
		switch {
		case !s.Reuse:
		case s.Written == "" || s.Written == taper.NeverWritten:
			n++
		default:
			written = append(written, s)
		}
	}
	if len(written) > tapecycle {
		n += len(written) - tapecycle
	}
	return n
}

// collectServers sends what every server sharing the catalog has done, so
// that a scrape of any one of them sees all: when each one's newest run
// ended, and ended well, and how many volumes it owns.
func (c *Collector) collectServers(ctx context.Context, gauge func(*prometheus.Desc, float64, ...string), fail func(string, error)) {
	runs, err := c.cat.AllRuns(ctx)
	if err != nil {
		fail("read the runs of every server", err)
		return
	}
	last, good := map[string]time.Time{}, map[string]time.Time{}
	for _, r := range runs {
		if r.Server == "" || r.Finished.IsZero() || r.Status == "running" {
			continue
		}
		if r.Finished.After(last[r.Server]) {
			last[r.Server] = r.Finished
		}
		if (r.Status == report.RunOK || r.Status == report.RunStrange) && r.Finished.After(good[r.Server]) {
			good[r.Server] = r.Finished
		}
	}
	for s, t := range last {
		gauge(c.srvLastRun, float64(t.Unix()), s)
	}
	for s, t := range good {
		gauge(c.srvLastGood, float64(t.Unix()), s)
	}
	vols, err := c.cat.AllVolumes(ctx)
	if err != nil {
		fail("read the volumes of every server", err)
		return
	}
	owned := map[string]float64{}
	for _, v := range vols {
		if v.Server != "" {
			owned[v.Server]++
		}
	}
	for s, n := range owned {
		gauge(c.srvVolumes, n, s)
	}
}

// collectVaults sends, for each vault, when it last recorded a copy, how
// many configured DLEs are not whole on its volumes (their newest chain,
// or newest full with fulls_only), and per DLE when its newest full whole
// there was made: an alert on these sees a vault that stopped copying,
// not one that merely ran. Each DLE's images and each image's parts are
// read once, whatever the number of vaults.
func (c *Collector) collectVaults(ctx context.Context, cfg *config.Config, gauge func(*prometheus.Desc, float64, ...string), fail func(string, error)) {
	if len(cfg.Vaults) == 0 {
		return
	}
	copies, err := c.cat.AllCopies(ctx)
	if err != nil {
		fail("read the copies", err)
		return
	}
	chains, err := c.cat.Chains(ctx)
	if err != nil {
		fail("read the newest chains", err)
		return
	}
	chainOf := map[[2]string]catalog.Chain{}
	for _, ch := range chains {
		chainOf[[2]string{ch.Host, ch.Path}] = ch
	}
	own := map[int64][]string{} // the labels of each image's own parts, read once
	wholeOn := func(d catalog.Dump, re *regexp.Regexp) (bool, error) {
		for _, k := range copies[d.ID] {
			if allMatch(k.Volumes(), re) {
				return true, nil
			}
		}
		labels, ok := own[d.ID]
		if !ok {
			parts, err := c.cat.Parts(ctx, d.ID)
			if err != nil {
				return false, err
			}
			labels = catalog.PartVolumes(parts)
			own[d.ID] = labels
		}
		return allMatch(labels, re), nil
	}
	notCopied := make([]int, len(cfg.Vaults))
	for _, d := range cfg.DLEs {
		ch, ok := chainOf[[2]string{d.Host, d.Path}]
		if !ok {
			continue // no good full: nothing to copy yet
		}
		dumps, err := c.cat.Dumps(ctx, d.Host, d.Path)
		if err != nil {
			fail("read dumps", err)
			return
		}
		for i := range cfg.Vaults {
			v := &cfg.Vaults[i]
			re := v.LabelRegexp()
			need := ch.Dumps
			if v.FullsOnly {
				need = need[:1]
			}
			for _, x := range need {
				whole, err := wholeOn(x, re)
				if err != nil {
					fail("read the parts of an image", err)
					return
				}
				if !whole {
					notCopied[i]++
					break
				}
			}
			for _, x := range dumps { // newest first
				if x.Status != catalog.DumpGood || x.Level != 0 {
					continue
				}
				whole, err := wholeOn(x, re)
				if err != nil {
					fail("read the parts of an image", err)
					return
				}
				if whole {
					gauge(c.dleVaultedFull, float64(x.Started.Unix()), v.Name, d.Host, d.Path)
					break
				}
			}
		}
	}
	for i := range cfg.Vaults {
		v := &cfg.Vaults[i]
		var last time.Time
		for _, cs := range copies {
			for _, k := range cs {
				if allMatch(k.Volumes(), v.LabelRegexp()) && k.Copied.After(last) {
					last = k.Copied
				}
			}
		}
		if !last.IsZero() {
			gauge(c.vaultLastCopy, float64(last.Unix()), v.Name)
		}
		gauge(c.vaultNotCopied, float64(notCopied[i]), v.Name)
	}
}
