package main

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/tapir-backup/tapir/gnutar"
	"github.com/tapir-backup/tapir/index/catalog"
)

// The generated DLE: a tree of directories (deep: up to 12 levels) holding
// files with realistic names (8–40 characters: words, dates, camera and
// maildir names, library versions), one directory of BigDir entries (a
// mail spool), and a dump cycle of a full then Incrs level-1
// incrementals, Cycles times. Each incremental day a few "hot" directories
// change: most of their files are rewritten and a few new files appear
// (the new ones are gone again at the next full); a level 1 holds what
// changed since the full, so it grows through the cycle. Everything is
// drawn from the seed: the same flags give the same catalog.

const (
	bigDir    = "var/spool/mail/incoming"
	bigSeed   = 0x5eed
	frameSize = 1 << 20
)

type tree struct {
	seed   uint64
	dirs   []dirInfo // dirs[0] is the root ""
	files  int       // base files in all
	incrs  int       // incrementals per cycle
	cycles int
	bigN   int
	hotP   float64 // chance that a directory is hot on a given day
}

type dirInfo struct {
	path   string
	depth  int
	nfiles int
	subs   []int // child directory indexes, sorted by name
}

// newTree makes the directories and file counts of a tree whose dump
// cycle comes to about rows index rows in all.
func newTree(rows int64, cycles, incrs, bigN int, seed uint64) *tree {
	t := &tree{seed: seed, incrs: incrs, cycles: cycles, bigN: bigN, hotP: 0.02}
	// A level 1 on day k holds what changed on days 1..k: about k*2% of
	// the directories, 80% of their files, plus every directory entry.
	perFull := 1.0
	for k := 1; k <= incrs; k++ {
		perFull += min(1, float64(k)*t.hotP)*0.8 + 1.0/16
	}
	base := max(int64(float64(rows)/(float64(cycles)*perFull))-int64(bigN), 1000)
	rng := rand.New(rand.NewPCG(seed, 1))
	t.dirs = []dirInfo{{path: ""}}
	names := map[string]bool{}
	for t.files < int(base) {
		// The parent: a recent directory most of the time, so that the
		// tree gets deep, else any.
		var p int
		if rng.IntN(3) > 0 {
			p = max(0, len(t.dirs)-1-rng.IntN(50))
		} else {
			p = rng.IntN(len(t.dirs))
		}
		if t.dirs[p].depth >= 12 {
			p = rng.IntN(min(len(t.dirs), 200))
		}
		name := dirName(rng)
		path := name
		if t.dirs[p].path != "" {
			path = t.dirs[p].path + "/" + name
		}
		if names[path] || path == bigDir {
			continue
		}
		names[path] = true
		n := 1 + rng.IntN(16) + rng.IntN(16)
		if rng.IntN(10) == 0 {
			n += rng.IntN(200)
		}
		t.dirs = append(t.dirs, dirInfo{path: path, depth: t.dirs[p].depth + 1, nfiles: n})
		t.dirs[p].subs = append(t.dirs[p].subs, len(t.dirs)-1)
		t.files += n
	}
	// The spool directory and its parents.
	parent := 0
	for _, part := range strings.Split(bigDir, "/") {
		path := part
		if t.dirs[parent].path != "" {
			path = t.dirs[parent].path + "/" + part
		}
		found := -1
		for _, s := range t.dirs[parent].subs {
			if t.dirs[s].path == path {
				found = s
			}
		}
		if found < 0 {
			t.dirs = append(t.dirs, dirInfo{path: path, depth: t.dirs[parent].depth + 1})
			found = len(t.dirs) - 1
			t.dirs[parent].subs = append(t.dirs[parent].subs, found)
		}
		parent = found
	}
	t.dirs[parent].nfiles = bigN
	t.files += bigN
	for i := range t.dirs {
		subs := t.dirs[i].subs
		sort.Slice(subs, func(a, b int) bool { return t.dirs[subs[a]].path < t.dirs[subs[b]].path })
	}
	return t
}

var words = strings.Fields(`report invoice config index main util helper server client backup archive
data image photo thumbnail cache session module package library readme license changelog makefile
notes draft final budget schedule contract letter summary analysis results export import template
settings profile account customer order product release build test vendor assets styles scripts
fonts icons docs manual guide overview chapter section figure table appendix minutes agenda memo`)

var exts = strings.Fields(`txt pdf doc docx xlsx csv json yaml yml xml html css js go py c h conf log md png jpg gz tar zip sql ini sh`)

func dirName(rng *rand.Rand) string {
	switch rng.IntN(6) {
	case 0:
		return fmt.Sprintf("%d", 2015+rng.IntN(11))
	case 1:
		return words[rng.IntN(len(words))] + "s"
	case 2:
		return words[rng.IntN(len(words))] + "-" + words[rng.IntN(len(words))]
	default:
		return words[rng.IntN(len(words))] + fmt.Sprint(rng.IntN(100))
	}
}

func fileName(rng *rand.Rand) string {
	w := func() string { return words[rng.IntN(len(words))] }
	e := func() string { return exts[rng.IntN(len(exts))] }
	switch rng.IntN(8) {
	case 0:
		return fmt.Sprintf("IMG_%04d%02d%02d_%06d.jpg", 2015+rng.IntN(11), 1+rng.IntN(12), 1+rng.IntN(28), rng.IntN(1000000))
	case 1:
		return fmt.Sprintf("%s-%04d-%02d-%02d.%s", w(), 2015+rng.IntN(11), 1+rng.IntN(12), 1+rng.IntN(28), e())
	case 2:
		return fmt.Sprintf("lib%s.so.%d.%d", w(), rng.IntN(10), rng.IntN(30))
	case 3:
		return w() + "_" + w() + "." + e()
	case 4:
		return fmt.Sprintf("%s%d.%s", w(), rng.IntN(1000), e())
	default:
		return w() + "." + e()
	}
}

// file is one base file of a directory.
type file struct {
	name string
	size int64
}

// filesOf returns the base files of directory i, sorted by name.
func (t *tree) filesOf(i int) []file {
	d := &t.dirs[i]
	out := make([]file, 0, d.nfiles)
	if d.path == bigDir {
		rng := rand.New(rand.NewPCG(t.seed, bigSeed))
		for j := range d.nfiles {
			out = append(out, file{fmt.Sprintf("%d.M%dP%d.mx%d,S=%d", 1700000000+j*37, rng.IntN(1000000), 1000+rng.IntN(60000), rng.IntN(4), 2000+rng.IntN(80000)), int64(2000 + rng.IntN(80000))})
		}
	} else {
		rng := rand.New(rand.NewPCG(t.seed, uint64(i)+2))
		seen := map[string]bool{}
		for len(out) < d.nfiles {
			n := fileName(rng)
			if seen[n] {
				n = fmt.Sprintf("%s.%d", n, len(out))
				if seen[n] {
					continue
				}
			}
			seen[n] = true
			size := int64(rng.IntN(4096))
			if rng.IntN(4) == 0 {
				size = int64(rng.IntN(1 << 22))
			}
			out = append(out, file{n, size})
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].name < out[b].name })
	return out
}

func mix(a, b, c, d uint64) uint64 {
	x := a*0x9e3779b97f4a7c15 ^ b*0xbf58476d1ce4e5b9 ^ c*0x94d049bb133111eb ^ d*0x2545f4914f6cdd1d
	x ^= x >> 31
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 29
	return x
}

func chance(x uint64, p float64) bool { return float64(x>>11)/float64(1<<53) < p }

// hot reports whether directory i changes on day k (1..incrs) of cycle c.
// The spool directory is hot every day.
func (t *tree) hot(i, c, k int) bool {
	if t.dirs[i].path == bigDir {
		return true
	}
	return chance(mix(t.seed, uint64(i), uint64(c), uint64(k)), t.hotP)
}

// changed reports whether file j of directory i changed on day k of cycle c
// (the directory being hot that day): 80% of a hot directory's files, 1%
// of the spool's.
func (t *tree) changed(i, j, c, k int) bool {
	p := 0.8
	if t.dirs[i].path == bigDir {
		p = 0.01
	}
	return chance(mix(t.seed^0xabc, uint64(i)<<20|uint64(j), uint64(c), uint64(k)), p)
}

// newFiles are the files created in directory i on day k of cycle c.
func (t *tree) newFiles(i, c, k int) []file {
	n := 3
	if t.dirs[i].path == bigDir {
		n = 200
	}
	out := make([]file, n)
	for j := range out {
		out[j] = file{fmt.Sprintf("new-%d-%d-%d.tmp", c, k, j), 1000}
	}
	return out
}

// dump is one image of the cycle: level 0 on day 0, else level 1 on day k.
type dump struct {
	cycle, day int
}

func (d dump) level() int {
	if d.day == 0 {
		return 0
	}
	return 1
}

func (t *tree) dumps() []dump {
	var out []dump
	for c := range t.cycles {
		for k := 0; k <= t.incrs; k++ {
			out = append(out, dump{c, k})
		}
	}
	return out
}

// datestamp is the dump's run date: one a day from 2025-01-01 01:00.
func (t *tree) datestamp(d dump) string {
	day := d.cycle*(t.incrs+1) + d.day
	return time.Date(2025, 1, 1, 1, 0, 0, 0, time.UTC).AddDate(0, 0, day).Format("20060102150405")
}

// image calls add for every index record of a dump in stream order
// (directories depth first, each directory's entry then its files) and
// returns the directory listings of an incremental.
func (t *tree) image(d dump, add func(catalog.FileRecord) error) (map[string]string, error) {
	var listings map[string]string
	if d.day > 0 {
		listings = map[string]string{}
	}
	stamp, _ := time.Parse("20060102150405", t.datestamp(d))
	var off int64
	var walk func(i int) error
	walk = func(i int) error {
		di := &t.dirs[i]
		if di.path != "" {
			if err := add(catalog.FileRecord{Path: di.path, Type: dirType(d), Mode: 0o755, Mtime: stamp, UID: 1000, GID: 1000, TarOffset: off}); err != nil {
				return err
			}
			off += 1024
		}
		base := t.filesOf(i)
		var ents []gnutar.DirEntry
		emit := func(f file) error {
			p := f.name
			if di.path != "" {
				p = di.path + "/" + f.name
			}
			err := add(catalog.FileRecord{Path: p, Type: '0', Size: f.size, Mode: 0o644, Mtime: stamp.Add(-time.Duration(f.size%86400) * time.Second),
				UID: 1000, GID: 1000, TarOffset: off})
			off += 512 + (f.size+511)/512*512
			return err
		}
		for j, f := range base {
			in := d.day == 0
			if !in {
				for k := 1; k <= d.day && !in; k++ {
					in = t.hot(i, d.cycle, k) && t.changed(i, j, d.cycle, k)
				}
			}
			if listings != nil {
				kind := byte(gnutar.KindUnchanged)
				if in {
					kind = gnutar.KindInArchive
				}
				ents = append(ents, gnutar.DirEntry{Kind: kind, Name: f.name})
			}
			if in {
				if err := emit(f); err != nil {
					return err
				}
			}
		}
		if d.day > 0 {
			for k := 1; k <= d.day; k++ {
				if !t.hot(i, d.cycle, k) {
					continue
				}
				for _, f := range t.newFiles(i, d.cycle, k) {
					ents = append(ents, gnutar.DirEntry{Kind: gnutar.KindInArchive, Name: f.name})
					if err := emit(f); err != nil {
						return err
					}
				}
			}
		}
		for _, s := range di.subs {
			name := t.dirs[s].path[strings.LastIndexByte(t.dirs[s].path, '/')+1:]
			ents = append(ents, gnutar.DirEntry{Kind: gnutar.KindDirectory, Name: name})
		}
		if listings != nil {
			gnutar.SortDumpdir(ents)
			listings[di.path] = gnutar.EncodeDumpdir(ents)
		}
		for _, s := range di.subs {
			if err := walk(s); err != nil {
				return err
			}
		}
		return nil
	}
	return listings, walk(0)
}

func dirType(d dump) byte {
	if d.day > 0 {
		return 'D'
	}
	return '5'
}
