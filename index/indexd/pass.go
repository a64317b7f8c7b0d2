package indexd

import (
	"cmp"
	"context"
	"slices"

	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/taper"
)

// Pass lends volumes to the reads of one restore or verify, in tape
// order: it keeps the volume it opened last, and the position the reads
// left it at, so that the next image on the same volume is reached by
// locating forward, without a rewind or a second label read. Opening
// another volume gives the held one back first. It is a VolumeSource, to
// be handed to ImageReader: Open of the held volume returns the held
// drive as it is, and the release it returns does nothing (Close gives
// the drive back). Not safe for concurrent use.
type Pass struct {
	Source VolumeSource
	// Ask is used when Open is given none (VolumeSource.Open).
	Ask Ask
	// Opened is told each volume the pass loads, in order (may be nil).
	Opened func(label string)

	label   string
	dev     taper.Device
	release func()
}

var _ VolumeSource = (*Pass)(nil)

// Properties are the source's.
func (p *Pass) Properties() SourceProperties { return p.Source.Properties() }

// Locate asks the source.
func (p *Pass) Locate(ctx context.Context, label string) (string, error) {
	if label == p.label && p.dev != nil {
		return p.Source.Properties().Where, nil
	}
	return p.Source.Locate(ctx, label)
}

// Open returns the held drive when it holds label, where the last read
// left it; otherwise it gives the held drive back and opens label from
// the source (at the beginning of the volume, its label checked).
func (p *Pass) Open(ctx context.Context, label string, ask Ask) (taper.Device, func(), error) {
	if p.dev != nil && p.label == label {
		return p.dev, func() {}, nil
	}
	p.Close()
	if ask == nil {
		ask = p.Ask
	}
	dev, release, err := p.Source.Open(ctx, label, ask)
	if err != nil {
		return nil, nil, err
	}
	p.label, p.dev, p.release = label, dev, release
	if p.Opened != nil {
		p.Opened(label)
	}
	return dev, func() {}, nil
}

// Close gives the held drive back. The pass may be used again.
func (p *Pass) Close() {
	if p.release != nil {
		p.release()
	}
	p.label, p.dev, p.release = "", nil, nil
}

// PartsFor returns the parts of an image that hold any of frames (parts
// in payload order, as the catalog lists them): a restore of a few files
// needs only the volumes those frames are on.
func PartsFor(parts []catalog.Part, frames []image.Frame) []catalog.Part {
	var out []catalog.Part
	for _, pt := range parts {
		for _, f := range frames {
			if f.Offset < pt.Offset+pt.Length && f.Offset+f.Size > pt.Offset {
				out = append(out, pt)
				break
			}
		}
	}
	return out
}

// Needed lists the volumes that reads of images (each given by the parts
// it reads, in order) load, in the order they are read: a volume read
// again after another counts again, as it must be loaded again.
func Needed(reads [][]catalog.Part) []string {
	var out []string
	for _, parts := range reads {
		for _, pt := range parts {
			if len(out) == 0 || out[len(out)-1] != pt.Volume {
				out = append(out, pt.Volume)
			}
		}
	}
	return out
}

// TapeOrder returns the order in which to read images (given by the
// parts each reads, in payload order) so that every volume is read in one
// forward pass: the images on no volume first (holding disk), then by the
// volume of the first part read, then by its tape file and record. The
// volumes come in an order that keeps every image spanning several of
// them in its own order (its later parts are on volumes written after),
// otherwise by label.
func TapeOrder(reads [][]catalog.Part) []int {
	// Rank the volumes: a topological order of "part k's volume comes
	// before part k+1's", ties (and any cycle) broken by label.
	after := map[string]map[string]bool{}
	indeg := map[string]int{}
	for _, parts := range reads {
		for k, pt := range parts {
			if _, ok := indeg[pt.Volume]; !ok {
				indeg[pt.Volume] = 0
			}
			if k == 0 || parts[k-1].Volume == pt.Volume {
				continue
			}
			prev := parts[k-1].Volume
			if after[prev] == nil {
				after[prev] = map[string]bool{}
			}
			if !after[prev][pt.Volume] {
				after[prev][pt.Volume] = true
				indeg[pt.Volume]++
			}
		}
	}
	rank := map[string]int{}
	prev := ""
	for len(rank) < len(indeg) {
		// Go on where a spanning image continues, so that its volumes
		// are read one after the other; otherwise the smallest label.
		next := ""
		for v := range after[prev] {
			if _, done := rank[v]; !done && indeg[v] <= 0 && (next == "" || v < next) {
				next = v
			}
		}
		for v, d := range indeg {
			if _, done := rank[v]; done || d > 0 || after[prev][next] {
				continue
			}
			if next == "" || v < next {
				next = v
			}
		}
		if next == "" { // a cycle: take the smallest label left
			for v := range indeg {
				if _, done := rank[v]; !done && (next == "" || v < next) {
					next = v
				}
			}
		}
		rank[next] = len(rank)
		prev = next
		for v := range after[next] {
			indeg[v]--
		}
	}
	order := make([]int, len(reads))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		pa, pb := reads[a], reads[b]
		if len(pa) == 0 || len(pb) == 0 {
			return cmp.Compare(min(len(pa), 1), min(len(pb), 1))
		}
		x, y := pa[0], pb[0]
		return cmp.Or(cmp.Compare(rank[x.Volume], rank[y.Volume]), cmp.Compare(x.FileNo, y.FileNo), cmp.Compare(x.Record, y.Record))
	})
	return order
}
