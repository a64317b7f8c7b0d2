package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/internal/testsite"
	"github.com/tapir-backup/tapir/wire"
)

func main() {
	tree := flag.String("tree", "", "directory to dump (required)")
	work := flag.String("work", "", "work directory for the site (default: a temporary one, removed)")
	bin := flag.String("tapir", "", "the tapir binary (required)")
	runs := flag.Int("runs", 3, "timed runs of each side")
	all := flag.Bool("all", false, "time a whole-DLE restore (tapir recover -c CONFIG --all) against dd | zstd -dc | tar -xpf - instead of one file")
	encrypt := flag.Bool("encrypt", false, "encrypt the image to a new age key (client-side encryption): tapir restores with --identity, the baseline pipes through age -d -i KEY")
	shell := flag.Bool("shell", false, "time the recover shell's extract of the whole DLE (add .; extract) against tapir recover --all and dd | zstd -dc | tar -xpf - instead of one file")
	flag.Parse()
	if *tree == "" || *bin == "" {
		fmt.Fprintln(os.Stderr, "usage: restorebench -tree DIR -tapir BIN [-work DIR] [-runs 3]")
		os.Exit(2)
	}
	encryptImage = *encrypt // dumpOnVtape makes the key in the work directory
	f := run
	switch {
	case *all && *shell:
		fmt.Fprintln(os.Stderr, "restorebench: -all and -shell exclude each other")
		os.Exit(2)
	case *all:
		f = runAll
	case *shell:
		f = runShell
	}
	if err := withWork(*work, func(work string) error { return f(*tree, work, *bin, *runs) }); err != nil {
		fmt.Fprintln(os.Stderr, "restorebench:", err)
		os.Exit(1)
	}
}

// withWork calls f with the work directory: work, or a temporary one
// removed afterwards when work is "".
func withWork(work string, f func(work string) error) error {
	if work != "" {
		return f(work)
	}
	d, err := os.MkdirTemp("", "tapir-restorebench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(d)
	return f(d)
}

func run(tree, work, bin string, runs int) error {
	ctx := context.Background()
	site, d, vt, err := dumpOnVtape(ctx, tree, work)
	if err != nil {
		return err
	}
	defer site.Close()
	file, err := pickFile(ctx, site.Catalog, d)
	if err != nil {
		return err
	}
	want, err := os.ReadFile(filepath.Join(tree, file.Path))
	if err != nil {
		return err
	}
	fmt.Printf("restorebench: file %s (%d bytes) at tar offset %d of %d\n", file.Path, file.Size, file.TarOffset, d.OrigSize)

	addr, stop, err := site.StartServer(ctx, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer stop()
	files, err := site.Issue("bench", wire.RoleClient)
	if err != nil {
		return err
	}
	check := func(dir string) error {
		got, err := os.ReadFile(filepath.Join(dir, file.Path))
		if err != nil {
			return err
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("%s: restored content differs", file.Path)
		}
		return nil
	}
	// Warm the page cache for both sides.
	exec.Command("sh", "-c", fmt.Sprintf("cat '%s' > /dev/null", vt[0])).Run()
	var tt, bt []float64
	for i := 0; i < runs; i++ {
		dir, _ := os.MkdirTemp(work, "tapir")
		t0 := time.Now()
		cmd := exec.Command(bin, append([]string{"recover", "--server", addr, "--ca", files.CA, "--cert", files.Cert, "--key", files.Key,
			"--lcd", dir, "-e", "add '" + strings.ReplaceAll(file.Path, "'", `'\''`) + "'; extract"}, identityArgs()...)...)
		out, err := cmd.CombinedOutput()
		el := time.Since(t0).Seconds()
		if err != nil {
			return fmt.Errorf("tapir recover: %v\n%s", err, out)
		}
		if err := check(dir); err != nil {
			return err
		}
		tt = append(tt, el)

		dir2, _ := os.MkdirTemp(work, "tar")
		t0 = time.Now()
		sh := fmt.Sprintf("dd if='%s' bs=32k skip=1 status=none | %s | tar -xf - -C '%s' './%s'", vt[0], decompress(), dir2, file.Path)
		if out, err := exec.Command("sh", "-c", sh).CombinedOutput(); err != nil {
			return fmt.Errorf("baseline: %v\n%s", err, out)
		}
		el2 := time.Since(t0).Seconds()
		if err := check(dir2); err != nil {
			return err
		}
		bt = append(bt, el2)
		fmt.Printf("   run %d  tapir recover %7.3f s   dd | zstd -dc | tar -x %7.3f s\n", i+1, el, el2)
		os.RemoveAll(dir)
		os.RemoveAll(dir2)
	}
	tm, bm := median(tt), median(bt)
	fmt.Printf("restorebench: tapir_median=%.3f baseline_median=%.3f ratio=%.1f\n", tm, bm, bm/tm)
	return nil
}

// pickFile chooses a small regular file in the middle of the image's tar
// stream.
func pickFile(ctx context.Context, cat *catalog.Catalog, d *catalog.Dump) (*catalog.FileRecord, error) {
	v, err := cat.View(ctx, d.Host, d.Path, "")
	if err != nil {
		return nil, err
	}
	var best *catalog.FileRecord
	err = v.Walk(ctx, "", func(r catalog.ViewRecord) error {
		if r.Type != '0' || r.Size == 0 || r.Size > 64<<10 {
			return nil
		}
		if best == nil || abs(r.TarOffset-d.OrigSize/2) < abs(best.TarOffset-d.OrigSize/2) {
			f := r.FileRecord
			best = &f
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if best == nil {
		return nil, fmt.Errorf("the tree has no small file")
	}
	return best, nil
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// dumpOnVtape dumps tree as one level-0 image onto the first vtape of a
// new site under work, and returns the site, the image and the vtape file
// that holds it.
func dumpOnVtape(ctx context.Context, tree, work string) (*testsite.Site, *catalog.Dump, []string, error) {
	site, err := testsite.New(filepath.Join(work, "site"), testsite.Options{Slots: 2, Capacity: 64 << 30, Blocksize: 256 << 10})
	if err != nil {
		return nil, nil, nil, err
	}
	start := time.Now()
	var ids []int64
	if encryptImage {
		var id int64
		id, err = dumpEncrypted(ctx, site, tree, work)
		ids = []int64{id}
	} else {
		ids, err = site.Run(ctx, "20250601010000", []testsite.DLE{{Host: "bench", Path: "/data", Root: tree, FrameSize: 1 << 20}}, testsite.RunOptions{})
	}
	if err != nil {
		site.Close()
		return nil, nil, nil, err
	}
	d, err := site.Catalog.Dump(ctx, ids[0])
	if err != nil {
		site.Close()
		return nil, nil, nil, err
	}
	enc := ""
	if d.Encrypted() {
		enc = " encrypted (age)"
	}
	fmt.Printf("restorebench: image of %.1f MiB%s (%.1f MiB of tar, %d entries) dumped onto a vtape in %.1f s\n",
		float64(d.PayloadSize)/(1<<20), enc, float64(d.OrigSize)/(1<<20), d.Files, time.Since(start).Seconds())
	vt, _ := filepath.Glob(filepath.Join(site.Vtapes, "slot1", "00001.*"))
	if len(vt) != 1 {
		site.Close()
		return nil, nil, nil, fmt.Errorf("the vtape file of the image is not in %s", filepath.Join(site.Vtapes, "slot1"))
	}
	return site, d, vt, nil
}
