// Command vaultbench times tapir vault copying one image from its vtape
// onto a copy volume (read, header check, write with labels and headers,
// SHA-256 against the catalog, the copy recorded) against the floor of
// copying the same bytes: dd if=VTAPEFILE of=COPY bs=256k conv=fsync.
// (A baseline that also hashed with sha256sum would measure coreutils'
// SHA-256, several times slower here than Go's, not the copy.)
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/tapir-backup/tapir/internal/testsite"
)

func main() {
	tree := flag.String("tree", "", "directory to dump (required)")
	work := flag.String("work", "", "work directory (required)")
	bin := flag.String("tapir", "", "the tapir binary (required)")
	runs := flag.Int("runs", 3, "timed runs of each side")
	flag.Parse()
	if *tree == "" || *bin == "" || *work == "" {
		fmt.Fprintln(os.Stderr, "usage: vaultbench -tree DIR -tapir BIN -work DIR [-runs 3]")
		os.Exit(2)
	}
	if err := run(*tree, *work, *bin, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "vaultbench:", err)
		os.Exit(1)
	}
}

func run(tree, work, bin string, runs int) error {
	ctx := context.Background()
	site, err := testsite.New(filepath.Join(work, "site"), testsite.Options{Slots: 2, Capacity: 64 << 30, Blocksize: 256 << 10})
	if err != nil {
		return err
	}
	start := time.Now()
	ids, err := site.Run(ctx, "20250601010000", []testsite.DLE{{Host: "bench", Path: "/data", Root: tree, FrameSize: 1 << 20}}, testsite.RunOptions{})
	if err != nil {
		site.Close()
		return err
	}
	d, err := site.Catalog.Dump(ctx, ids[0])
	site.Close()
	if err != nil {
		return err
	}
	fmt.Printf("vaultbench: image of %.1f MiB dumped onto a vtape in %.1f s\n", float64(d.PayloadSize)/(1<<20), time.Since(start).Seconds())
	vt, _ := filepath.Glob(filepath.Join(site.Vtapes, "slot1", "00001.*"))
	if len(vt) != 1 {
		return fmt.Errorf("the vtape file of the image is not in %s", filepath.Join(site.Vtapes, "slot1"))
	}
	cfg := filepath.Join(work, "tapir.toml")
	if err := site.WriteConfig(cfg, testsite.DLE{Host: "bench", Path: "/data"}); err != nil {
		return err
	}
	offsite := filepath.Join(work, "offsite")
	f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	fmt.Fprintf(f, "\n[vault]\nlabelstr = \"^bench-O-[0-9]{3}$\"\nautolabel = \"bench-O-%%%%%%\"\n[vault.changer]\ntype = \"disk\"\npath = %q\nslots = 2\ntapetype = \"site\"\n", offsite)
	f.Close()
	// Each run starts from the catalog as the night left it (no copy).
	pristine := site.CatalogDB + ".pristine"
	if err := copyFile(site.CatalogDB, pristine); err != nil {
		return err
	}
	exec.Command("sh", "-c", fmt.Sprintf("cat '%s' > /dev/null", vt[0])).Run() // warm the page cache for both
	tapir := func() (float64, error) {
		os.RemoveAll(offsite)
		if err := os.Mkdir(offsite, 0o750); err != nil {
			return 0, err
		}
		for _, ext := range []string{"-wal", "-shm"} {
			os.Remove(site.CatalogDB + ext)
		}
		if err := copyFile(pristine, site.CatalogDB); err != nil {
			return 0, err
		}
		t0 := time.Now()
		out, err := exec.Command(bin, "vault", "-c", cfg).CombinedOutput()
		el := time.Since(t0).Seconds()
		if err != nil || !strings.Contains(string(out), "1 image(s) copied") {
			return 0, fmt.Errorf("tapir vault: %v\n%s", err, out)
		}
		return el, nil
	}
	baseline := func() (float64, error) {
		dst := filepath.Join(work, "copy")
		os.Remove(dst)
		t0 := time.Now()
		sh := fmt.Sprintf("dd if='%s' of='%s' bs=256k conv=fsync status=none", vt[0], dst)
		if out, err := exec.Command("sh", "-c", sh).CombinedOutput(); err != nil {
			return 0, fmt.Errorf("baseline: %v\n%s", err, out)
		}
		return time.Since(t0).Seconds(), nil
	}
	var tt, bt []float64
	for i := 0; i < runs; i++ {
		var el, el2 float64
		if i%2 == 0 {
			if el, err = tapir(); err == nil {
				el2, err = baseline()
			}
		} else {
			if el2, err = baseline(); err == nil {
				el, err = tapir()
			}
		}
		if err != nil {
			return err
		}
		tt, bt = append(tt, el), append(bt, el2)
		fmt.Printf("   run %d  tapir vault %7.3f s   dd conv=fsync %7.3f s\n", i+1, el, el2)
	}
	tm, bm := median(tt), median(bt)
	fmt.Printf("vaultbench: tapir_median=%.3f baseline_median=%.3f ratio=%.3f tapir_mib_s=%.1f\n", tm, bm, tm/bm, float64(d.PayloadSize)/(1<<20)/tm)
	return nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
