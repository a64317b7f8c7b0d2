package indexd_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/index/indexd"
)

// tapedImages lays images out as a taper writes them: volumes one after
// the other (labels in no particular order), each image in the next tape
// file of the current volume, a spanning image ending its volume and
// going on at file 1 of the next one; some images stay on the holding
// disk (no parts). Each part holds 100 payload bytes.
func tapedImages(r *rand.Rand) [][]catalog.Part {
	nvol := 1 + r.IntN(6)
	labels := make([]string, nvol)
	for i, k := range r.Perm(nvol) {
		labels[i] = fmt.Sprintf("V-%03d", k) // written i-th, label order random
	}
	cur, file := 0, int64(1)
	var images [][]catalog.Part
	for range r.IntN(14) {
		if r.IntN(5) == 0 {
			images = append(images, nil) // on the holding disk
			continue
		}
		if cur+1 < nvol && file > 1 && r.IntN(4) == 0 {
			cur, file = cur+1, 1 // the next run starts a volume
		}
		nparts := 1
		if r.IntN(3) == 0 {
			nparts += 1 + r.IntN(3)
		}
		var parts []catalog.Part
		for k := range nparts {
			if k > 0 {
				if cur+1 >= nvol {
					break // no volume left: this part ends the image
				}
				cur, file = cur+1, 1
			}
			parts = append(parts, catalog.Part{Volume: labels[cur], Part: k + 1, FileNo: file, Record: file * 10, LogicalPos: -1, Offset: int64(k) * 100, Length: 100})
			file++
		}
		images = append(images, parts)
	}
	r.Shuffle(len(images), func(i, j int) { images[i], images[j] = images[j], images[i] })
	return images
}

// someFrames picks frames of 25 payload bytes of an image of n parts:
// none, a few, or all.
func someFrames(r *rand.Rand, nparts int) []image.Frame {
	var out []image.Frame
	all := r.IntN(3) == 0
	for i := range nparts * 4 {
		if all || r.IntN(4) == 0 {
			out = append(out, image.Frame{Index: i, Offset: int64(i) * 25, Size: 25})
		}
	}
	return out
}

// TestTapeOrder checks TapeOrder, Needed and PartsFor on random taped
// layouts (a fixed seed per round): PartsFor keeps exactly the parts a
// frame touches, in order; TapeOrder puts the holding disk first, then
// goes forward only within each visit of a volume, a spanning image's
// parts in their order; Needed names the volumes in the order they are
// visited.
func TestTapeOrder(t *testing.T) {
	for seed := range uint64(5000) {
		checkTapeOrder(t, seed, false)
	}
}

// TestTapeOrderVisitsEachVolumeOnce: in a layout a taper writes, one
// visit per volume is always possible (a volume continues on at most one
// next volume, through the spanning image that ends it), and TapeOrder
// must find it.
func TestTapeOrderVisitsEachVolumeOnce(t *testing.T) {
	for seed := range uint64(5000) {
		checkTapeOrder(t, seed, true)
	}
}

// checkTapeOrder checks one random layout; once also fails a volume
// visited twice.
func checkTapeOrder(t *testing.T, seed uint64, once bool) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 14))
	images := tapedImages(r)
	reads := make([][]catalog.Part, len(images))
	for i, parts := range images {
		frames := someFrames(r, len(parts))
		reads[i] = indexd.PartsFor(parts, frames)
		var want []catalog.Part
		for _, pt := range parts {
			if slices.ContainsFunc(frames, func(f image.Frame) bool { return f.Offset < pt.Offset+pt.Length && pt.Offset < f.Offset+f.Size }) {
				want = append(want, pt)
			}
		}
		if !slices.Equal(reads[i], want) {
			t.Fatalf("seed %d: PartsFor(%v, %v) = %v, want %v", seed, parts, frames, reads[i], want)
		}
	}
	order := indexd.TapeOrder(reads)
	if got := slices.Sorted(slices.Values(order)); !slices.Equal(got, rangeOf(len(reads))) {
		t.Fatalf("seed %d: TapeOrder returned %v, not a permutation of %d images", seed, order, len(reads))
	}
	sorted := make([][]catalog.Part, len(order))
	for k, i := range order {
		sorted[k] = reads[i]
	}
	fail := func(format string, a ...any) {
		t.Helper()
		t.Fatalf("seed %d: %s\nimages (reads) %v\norder %v", seed, fmt.Sprintf(format, a...), reads, order)
	}
	// The holding disk first.
	for k := 1; k < len(sorted); k++ {
		if len(sorted[k-1]) > 0 && len(sorted[k]) == 0 {
			fail("image %d, on the holding disk, comes after one on a volume", order[k])
		}
	}
	// Forward only within a visit of a volume; a spanning image's parts in
	// their order; with once, one visit per volume.
	var visits []string
	seen := map[string]bool{}
	last := catalog.Part{}
	for k, parts := range sorted {
		for j, pt := range parts {
			if j > 0 && pt.Part <= parts[j-1].Part {
				fail("image %d reads part %d after part %d", order[k], pt.Part, parts[j-1].Part)
			}
			if len(visits) == 0 || visits[len(visits)-1] != pt.Volume {
				if once && seen[pt.Volume] {
					fail("volume %s is visited again after %v", pt.Volume, visits)
				}
				seen[pt.Volume] = true
				visits = append(visits, pt.Volume)
			} else if pt.FileNo < last.FileNo || (pt.FileNo == last.FileNo && pt.Record < last.Record) {
				fail("on volume %s, file %d is read after file %d", pt.Volume, pt.FileNo, last.FileNo)
			}
			last = pt
		}
	}
	if needed := indexd.Needed(sorted); !slices.Equal(needed, visits) {
		fail("Needed = %v, want the volumes in the order visited: %v", needed, visits)
	}
}

// TestNeededCountsAReload: a volume read again after another is loaded
// again, and Needed says so.
func TestNeededCountsAReload(t *testing.T) {
	p := func(vol string, file int64) []catalog.Part {
		return []catalog.Part{{Volume: vol, Part: 1, FileNo: file}}
	}
	got := indexd.Needed([][]catalog.Part{nil, p("A", 1), p("A", 2), p("B", 1), p("A", 3)})
	if !slices.Equal(got, []string{"A", "B", "A"}) {
		t.Errorf("Needed = %v, want [A B A]", got)
	}
}

func rangeOf(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}
