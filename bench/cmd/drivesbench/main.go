// Command drivesbench measures what several drives give: a flush of DLE
// images from the holding disk onto a library of FUSE st drives that each
// stream at a fixed rate (a slow LTO), with one drive and with two
// ([changer] tapers), in one invocation, alternating. The images are put
// on the holding disk first by a night that has no volume (not measured),
// through a real `tapir client` agent.
//
// It prints one line per flush and a summary line:
//
//	drivesbench: one_mibs=... two_mibs=... ratio=... starved_one_s=... starved_two_s=... peak_rss_kib=...
//
// Root only (the FUSE drive mounts without fusermount). DRIVESBENCH_LOG=1
// logs each flush to stderr.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/tapir-backup/tapir/bench/gen"
	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/report"
	"github.com/tapir-backup/tapir/server"
	"github.com/tapir-backup/tapir/taper/fakest"
)

func main() {
	work := flag.String("work", "", "an empty directory (the tree, the sites, the mount points)")
	bin := flag.String("tapir", "tapir", "the tapir binary, for the client agent")
	size := flag.String("size", "256MiB", "payload of each DLE (incompressible)")
	dles := flag.Int("dles", 4, "DLEs")
	runs := flag.Int("runs", 3, "flushes of each")
	rate := flag.Int64("rate", 150<<20, "streaming speed of each FUSE drive in bytes/s")
	flag.Parse()
	if err := run(*work, *bin, *size, *dles, *runs, *rate); err != nil {
		fmt.Fprintln(os.Stderr, "drivesbench:", err)
		os.Exit(1)
	}
}

type result struct {
	mibs    float64       // bytes / the time the busiest drive had volumes loaded
	wall    float64       // bytes / the whole flush (with its check of every image first)
	starved time.Duration // what tapir reported
	real    time.Duration // what the fake drives measured: their buffer empty mid-file
}

func run(work, bin, sizeStr string, dles, runs int, rate int64) error {
	if work == "" {
		return errors.New("-work is required")
	}
	size, err := gen.ParseSize(sizeStr)
	if err != nil {
		return err
	}
	tree := filepath.Join(work, "tree")
	if err := makeTree(tree, dles, size); err != nil {
		return err
	}
	tlsDir := filepath.Join(work, "tls")
	addr, stop, err := gen.StartAgent(bin, tlsDir, filepath.Join(work, "agent-state"))
	if err != nil {
		return err
	}
	defer stop()
	var one, two []result
	for i := 1; i <= runs; i++ {
		order := []int{1, 2}
		if i%2 == 0 {
			order = []int{2, 1}
		}
		for _, tapers := range order {
			res, err := flushOnce(filepath.Join(work, fmt.Sprintf("run%d-tapers%d", i, tapers)), tree, tlsDir, addr, tapers, dles, size, rate)
			if err != nil {
				return fmt.Errorf("run %d, %d drive(s): %w", i, tapers, err)
			}
			fmt.Printf("   run %d, %d drive(s): %.1f MiB/s while taping (%.1f MiB/s over the whole flush), starved %.2f s reported, %.2f s measured by the drives\n",
				i, tapers, res.mibs, res.wall, res.starved.Seconds(), res.real.Seconds())
			if tapers == 1 {
				one = append(one, res)
			} else {
				two = append(two, res)
			}
		}
	}
	rss, err := gen.PeakRSS()
	if err != nil {
		return err
	}
	m1, m2 := median(one, func(r result) float64 { return r.mibs }), median(two, func(r result) float64 { return r.mibs })
	w1, w2 := median(one, func(r result) float64 { return r.wall }), median(two, func(r result) float64 { return r.wall })
	fmt.Printf("drivesbench: one_mibs=%.1f two_mibs=%.1f ratio=%.2f one_wall_mibs=%.1f two_wall_mibs=%.1f wall_ratio=%.2f starved_one_s=%.2f starved_two_s=%.2f real_one_s=%.2f real_two_s=%.2f peak_rss_kib=%d\n",
		m1, m2, m2/m1, w1, w2, w2/w1,
		median(one, func(r result) float64 { return r.starved.Seconds() }), median(two, func(r result) float64 { return r.starved.Seconds() }),
		median(one, func(r result) float64 { return r.real.Seconds() }), median(two, func(r result) float64 { return r.real.Seconds() }), rss)
	return nil
}

// makeTree writes one directory per DLE holding one file of random bytes.
func makeTree(tree string, dles int, size int64) error {
	if _, err := os.Stat(tree); err == nil {
		return nil
	}
	rng := rand.NewChaCha8([32]byte{1})
	for i := range dles {
		dir := filepath.Join(tree, fmt.Sprintf("dle%d", i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		f, err := os.Create(filepath.Join(dir, "data"))
		if err != nil {
			return err
		}
		_, err = io.CopyN(f, rng, size)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// flushOnce makes a site, dumps every DLE to its holding disk with no
// volume, then times the flush onto tapers FUSE drives of a robot.
func flushOnce(dir, tree, tlsDir, addr string, tapers, dles int, size, rate int64) (result, error) {
	for _, d := range []string{"vtapes", "holding", "lib"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o750); err != nil {
			return result{}, err
		}
	}
	common := fmt.Sprintf(`org = "bench"
statedir = %q
inparallel = 4
maxdumps = 4
tapecycle = 1
runtapes = 4
reserve = 0
autolabel = "bench-%%%%%%"
[tls]
ca = %q
cert = %q
key = %q
[[holding]]
path = %q
[host.localhost]
address = %q
[dumptype.raw]
compress = "none"
strategy = "noinc"
`, filepath.Join(dir, "state"), filepath.Join(tlsDir, "ca.crt"), filepath.Join(tlsDir, "backup.crt"), filepath.Join(tlsDir, "backup.key"),
		filepath.Join(dir, "holding"), addr)
	for i := range dles {
		common += fmt.Sprintf("[[dle]]\nhost = \"localhost\"\npath = %q\ndumptype = \"raw\"\n", filepath.Join(tree, fmt.Sprintf("dle%d", i)))
	}
	// The night: a disk changer whose one slot is foreign, so no volume
	// is usable and every image stays on the holding disk.
	if err := os.MkdirAll(filepath.Join(dir, "vtapes", "slot1"), 0o750); err != nil {
		return result{}, err
	}
	if err := os.WriteFile(filepath.Join(dir, "vtapes", "slot1", "00000.LABEL"), []byte("not a tapir volume"), 0o640); err != nil {
		return result{}, err
	}
	night := common + fmt.Sprintf("[changer]\ntype = \"disk\"\npath = %q\nslots = 1\n", filepath.Join(dir, "vtapes"))
	cfg, err := load(filepath.Join(dir, "night.toml"), night)
	if err != nil {
		return result{}, err
	}
	quiet := slog.New(slog.DiscardHandler)
	rep, err := server.Dump(context.Background(), cfg, server.Deps{Log: quiet})
	if rep == nil {
		return result{}, fmt.Errorf("the night to fill the holding disk: %w", err)
	}
	for _, d := range rep.DLEs {
		if d.Status != report.StatusHolding {
			return result{}, fmt.Errorf("the night to fill the holding disk: %s is %s (%s), not on the holding disk", d.Path, d.Status, d.Reason)
		}
	}

	// The library: two FUSE drives and dles+2 blank cartridges.
	var barcodes []string
	for i := range dles + 2 {
		barcodes = append(barcodes, fmt.Sprintf("B%05d", i+1))
	}
	lib, err := fakest.NewLibraryDrives(filepath.Join(dir, "lib"), 2, barcodes, "")
	if err != nil {
		return result{}, err
	}
	var devs, ctls []string
	drives := fakest.NewDrives(2, fakest.Options{Capacity: 4 * size * int64(dles), Discard: true, Rate: rate, Cartridges: barcodes, Empty: true})
	for d, drive := range drives {
		mnt := filepath.Join(dir, fmt.Sprintf("mnt%d", d))
		os.MkdirAll(mnt, 0o755)
		if err := drive.Mount(mnt); err != nil {
			return result{}, fmt.Errorf("no FUSE tape drive here (%v); drivesbench needs root and /dev/fuse", err)
		}
		defer drive.Unmount()
		devs = append(devs, fmt.Sprintf("%q", drive.Path(fakest.NST0)))
		ctls = append(ctls, drive.Path(fakest.CtlFile))
	}
	for k, v := range lib.EnvDrives(ctls...) {
		os.Setenv(k, v)
	}
	robot := common + fmt.Sprintf(`[changer]
type = "robot"
changer_device = "/dev/sg-bench"
mtx = %q
drives = [%s]
tapers = %d
tapetype = "lto"
drive_options = []
[tapetype.lto]
length = %d
blocksize = "256 KiB"
speed = %d
`, lib.MTX, strings.Join(devs, ", "), tapers, 2*size*int64(dles), rate)
	cfg, err = load(filepath.Join(dir, "flush.toml"), robot)
	if err != nil {
		return result{}, err
	}
	var text strings.Builder
	flog := quiet
	if os.Getenv("DRIVESBENCH_LOG") != "" {
		flog = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	start := time.Now()
	rep, err = server.Flush(context.Background(), cfg, server.FlushOptions{}, server.Deps{Log: flog, Out: &text})
	elapsed := time.Since(start)
	if err != nil {
		return result{}, fmt.Errorf("flush: %w\n%s", err, text.String())
	}
	var bytes int64
	var starved, busiest time.Duration
	byDrive := map[string]time.Duration{}
	for _, v := range rep.Volumes {
		bytes += v.Bytes
		starved += v.Starved
		byDrive[v.Drive] += v.Time
		busiest = max(busiest, byDrive[v.Drive])
	}
	if bytes < size*int64(dles) {
		return result{}, fmt.Errorf("flush wrote %d bytes, want at least %d", bytes, size*int64(dles))
	}
	var real time.Duration
	for _, d := range drives {
		real += d.Starved()
	}
	os.RemoveAll(filepath.Join(dir, "holding"))
	mib := float64(bytes) / (1 << 20)
	return result{mibs: mib / busiest.Seconds(), wall: mib / elapsed.Seconds(), starved: starved, real: real}, nil
}

func load(path, text string) (*config.Config, error) {
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return nil, err
	}
	return config.Load(path)
}

func median(rs []result, f func(result) float64) float64 {
	var xs []float64
	for _, r := range rs {
		xs = append(xs, f(r))
	}
	sort.Float64s(xs)
	if len(xs) == 0 {
		return 0
	}
	if len(xs)%2 == 1 {
		return xs[len(xs)/2]
	}
	return (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
}
