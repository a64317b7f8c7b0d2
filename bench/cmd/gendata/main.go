package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/tapir-backup/tapir/bench/gen"
)

func main() {
	size := flag.String("size", "1GiB", "bytes of file data in total (1GiB, 256MiB, ...)")
	largest := flag.String("largest", "0", "if not 0: exactly one large file of this size instead of the default few")
	files := flag.Int("files", 0, "if > 0: an estimate tree of exactly this many files of size/files bytes")
	seed := flag.Uint64("seed", 1, "seed")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: gendata [-size N] [-largest N] [-files N] [-seed N] DIR")
		os.Exit(2)
	}
	o := gen.Options{Seed: *seed, Files: *files}
	var err error
	if o.Size, err = gen.ParseSize(*size); err == nil {
		o.Largest, err = gen.ParseSize(*largest)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gendata:", err)
		os.Exit(2)
	}
	start := time.Now()
	st, err := gen.Generate(flag.Arg(0), o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gendata:", err)
		os.Exit(1)
	}
	fmt.Printf("gendata: %d files, %d dirs, %d bytes (%.1f%% text) in %.1fs\n",
		st.Files, st.Dirs, st.Bytes, 100*float64(st.TextBytes)/float64(max(st.Bytes, 1)), time.Since(start).Seconds())
}
