package gen

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

const (
	KiB = 1 << 10
	MiB = 1 << 20
	GiB = 1 << 30
)

// Options say what tree Generate makes.
type Options struct {
	Size int64  // bytes of file data in total
	Seed uint64 // same seed and options, same tree
	// Largest, when > 0, replaces the default few large files (50–200 MiB,
	// about 40% of Size) by exactly one file of this size; small files fill
	// the rest of Size, if any.
	Largest int64
	// Files, when > 0, makes an estimate tree instead: exactly Files files
	// of Size/Files bytes each (0: empty files), 100 per directory, in
	// directories nested three deep with a fan-out of 10.
	Files int
}

// Stats counts what Generate made.
type Stats struct {
	Files, Dirs      int // Dirs: the directories made to hold files
	Bytes, TextBytes int64
}

type generator struct {
	rng    *rand.Rand    // shapes, names and text
	random *rand.ChaCha8 // incompressible content
	clock  int64         // log timestamp, Unix milliseconds
	buf    []byte
	line   []byte
	st     Stats
}

// Generate makes the tree described by o under dir, which is created if
// needed and should be empty. Half of the bytes are log-like text, half
// random, balanced chunk by chunk (a small file is one chunk, a large file
// alternates 1 MiB chunks).
func Generate(dir string, o Options) (Stats, error) {
	var seed [32]byte
	for i := range 8 {
		seed[i] = byte(o.Seed >> (8 * i))
	}
	g := &generator{
		rng:    rand.New(rand.NewPCG(o.Seed, 0x7a91e5)),
		random: rand.NewChaCha8(seed),
		clock:  time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli(),
		buf:    make([]byte, MiB),
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Stats{}, err
	}
	var err error
	if o.Files > 0 {
		err = g.flat(dir, o)
	} else {
		err = g.mixed(dir, o)
	}
	return g.st, err
}

// flat makes the estimate tree.
func (g *generator) flat(dir string, o Options) error {
	each := o.Size / int64(o.Files)
	for i := range o.Files {
		d := i / 100
		sub := filepath.Join(dir, fmt.Sprintf("t%d/m%d/l%d", d/100, d/10%10, d%10))
		if i%100 == 0 {
			if err := g.mkdir(sub); err != nil {
				return err
			}
		}
		if err := g.file(filepath.Join(sub, fmt.Sprintf("f%03d", i%100)), each); err != nil {
			return err
		}
	}
	return nil
}

// mixed makes the dump tree: large files under big/, then small files of
// 1–64 KiB in nested directories of 20–200 files each.
func (g *generator) mixed(dir string, o Options) error {
	var large []int64
	if o.Largest > 0 {
		large = append(large, o.Largest)
	} else {
		for rem := o.Size * 2 / 5; rem >= 50*MiB; {
			s := 50*MiB + g.rng.Int64N(min(200*MiB, rem)-50*MiB+1)
			large = append(large, s)
			rem -= s
		}
	}
	small := o.Size
	if len(large) > 0 {
		if err := g.mkdir(filepath.Join(dir, "big")); err != nil {
			return err
		}
	}
	for i, s := range large {
		if err := g.file(filepath.Join(dir, "big", fmt.Sprintf("large%02d.bin", i)), s); err != nil {
			return err
		}
		small -= s
	}

	type node struct {
		path  string
		depth int
	}
	dirs := []node{{dir, 0}}
	var cur string
	left := 0
	for n := 0; small > 0; n++ {
		if left == 0 {
			var p node
			for p = dirs[g.rng.IntN(len(dirs))]; p.depth >= 5; p = dirs[g.rng.IntN(len(dirs))] {
			}
			cur = filepath.Join(p.path, fmt.Sprintf("d%04d", len(dirs)))
			if err := g.mkdir(cur); err != nil {
				return err
			}
			dirs = append(dirs, node{cur, p.depth + 1})
			left = 20 + g.rng.IntN(181)
		}
		s := min(small, KiB+g.rng.Int64N(63*KiB+1))
		ext := ".dat"
		if g.textNext() {
			ext = ".log"
		}
		if err := g.file(filepath.Join(cur, fmt.Sprintf("f%06d%s", n, ext)), s); err != nil {
			return err
		}
		small -= s
		left--
	}
	return nil
}

func (g *generator) mkdir(p string) error {
	g.st.Dirs++
	return os.MkdirAll(p, 0o755)
}

func (g *generator) textNext() bool { return g.st.TextBytes*2 <= g.st.Bytes }

// file writes size bytes to a new file at p, in chunks of at most 1 MiB,
// each one text or random so that the two stay balanced.
func (g *generator) file(p string, size int64) error {
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	g.st.Files++
	for size > 0 {
		b := g.buf[:min(size, int64(len(g.buf)))]
		if g.textNext() {
			g.fillText(b)
			g.st.TextBytes += int64(len(b))
		} else {
			g.random.Read(b)
		}
		g.st.Bytes += int64(len(b))
		size -= int64(len(b))
		if _, err := f.Write(b); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

var (
	words    = strings.Fields("the a of to in and request response connection client server session user cache disk block file read write open close retry timeout backup tape volume label frame index catalog error warning ok done started finished queued host path size bytes took ms ns seconds checksum mismatch accepted refused handshake certificate token expired renewed ignored skipped because while after before during with from into over")
	services = strings.Fields("sshd cron kernel systemd nginx postgres tapir-client tapir-server smbd dhclient")
	levels   = strings.Fields("DEBUG INFO INFO INFO NOTICE WARN ERROR")
)

// fillText fills p with log lines; the last one is cut at the end of p.
func (g *generator) fillText(p []byte) {
	for n := 0; n < len(p); {
		n += copy(p[n:], g.logLine())
	}
}

func (g *generator) logLine() []byte {
	r := g.rng
	g.clock += r.Int64N(2000)
	b := time.UnixMilli(g.clock).UTC().AppendFormat(g.line[:0], "2006-01-02T15:04:05.000Z")
	b = append(b, " host"...)
	b = strconv.AppendInt(b, int64(r.IntN(40)), 10)
	b = append(b, ' ')
	b = append(b, services[r.IntN(len(services))]...)
	b = append(b, '[')
	b = strconv.AppendInt(b, int64(100+r.IntN(30000)), 10)
	b = append(b, "]: "...)
	b = append(b, levels[r.IntN(len(levels))]...)
	for range 4 + r.IntN(12) {
		b = append(b, ' ')
		b = append(b, words[r.IntN(r.IntN(len(words))+1)]...)
	}
	b = append(b, " id="...)
	b = strconv.AppendUint(b, r.Uint64()>>40, 16)
	b = append(b, '\n')
	g.line = b
	return b
}

// ParseSize reads a byte count such as 1GiB, 256MiB, 100M, 64k or 4096.
// All units are powers of 1024.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B"), "I")
	mult := int64(1)
	if t != "" {
		if i := strings.IndexByte("KMGT", t[len(t)-1]); i >= 0 {
			mult = int64(1) << (10 * (i + 1))
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.ParseFloat(t, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad size %q (want e.g. 1GiB, 256MiB, 4096)", s)
	}
	return int64(n * float64(mult)), nil
}
