package server

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/index/catalog"
)

// Retention counts copies, and only whole ones: over random histories
// of nights (images on the first set, some copied onto the vault set,
// volumes of either set overwritten whenever chainPins lets them), no
// overwrite ever loses an image of a newest chain: each chain is the
// same after as before, and none of its images is on the overwritten
// volume any more (it lives on its copy). A volume is offered for reuse
// only when every chain it holds is complete on the other set, or not
// needed.
//
// With two vaults (three sets), the same holds: a chain complete on any
// other set frees a volume.
func TestVaultRetentionProperty(t *testing.T) {
	t.Run("one vault", func(t *testing.T) { vaultRetentionProperty(t, "Offsite") })
	t.Run("two vaults", func(t *testing.T) { vaultRetentionProperty(t, "Offsite", "dr") })
}

func vaultRetentionProperty(t *testing.T, vaultSets ...string) {
	type set struct {
		re     *regexp.Regexp
		labels []string
	}
	for seed := uint64(1); seed <= 25; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, seed*7919))
			ctx := t.Context()
			cat, err := catalog.Open(filepath.Join(t.TempDir(), "catalog.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer cat.Close()
			t0 := time.Date(2026, 1, 1, 1, 0, 0, 0, time.UTC)
			sets := []set{{re: regexp.MustCompile(`^test-[0-9]{3}$`)}}
			for _, name := range vaultSets {
				sets = append(sets, set{re: regexp.MustCompile(`^test-` + name + `-[0-9]{3}$`)})
			}
			var all []string
			for k := range sets {
				for i := 1; i <= 4; i++ {
					l := fmt.Sprintf("test-%03d", i)
					if k > 0 {
						l = fmt.Sprintf("test-%s-%03d", vaultSets[k-1], i)
					}
					sets[k].labels = append(sets[k].labels, l)
					all = append(all, l)
				}
			}
			mains := sets[0].labels
			for _, l := range all {
				if _, err := cat.AddVolume(ctx, catalog.Volume{Label: l, Slot: 1, Blocksize: 65536, Created: t0}); err != nil {
					t.Fatal(err)
				}
				if _, err := cat.StartVolumeWrite(ctx, l, 1, 65536, t0.Format("20060102150405")); err != nil {
					t.Fatal(err)
				}
			}
			dles := []string{"/a", "/b", "/c"}
			overwrites := 0
			for night := 0; night < 30; night++ {
				ds := t0.AddDate(0, 0, night+1).Format("20060102150405")
				run, err := cat.BeginRun(ctx, ds, "test", t0)
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range dles {
					if rng.IntN(3) == 0 {
						continue // not dumped tonight
					}
					level := rng.IntN(3)
					if night == 0 || rng.IntN(4) == 0 {
						level = 0
					}
					id, err := cat.CreateDump(ctx, &catalog.Dump{RunID: run, Host: "h", Path: p, Level: level, FrameSize: 1 << 20, Started: t0})
					if err != nil {
						t.Fatal(err)
					}
					payload := int64(1000 + rng.IntN(1000))
					frames := []image.Frame{{Index: 0, TarOffset: 0, TarSize: payload * 2, Offset: 0, Size: payload}}
					if err := cat.SetDumpHolding(ctx, id, payload*2, payload, strings.Repeat("ab", 32), 0, fmt.Sprintf("/hold/%d", id), frames, t0); err != nil {
						t.Fatal(err)
					}
					// One or two parts on the first set, a copy on the vault
					// set half of the time.
					if err := cat.CommitTaped(ctx, id, randomParts(rng, mains, payload), t0); err != nil {
						t.Fatal(err)
					}
					for _, v := range sets[1:] {
						if rng.IntN(2) == 0 {
							if _, err := cat.RecordCopy(ctx, id, randomParts(rng, v.labels, payload), t0); err != nil {
								t.Fatal(err)
							}
						}
					}
				}
				// Overwrite what each set's rule lets go.
				for _, set := range sets {
					pins, err := chainPins(ctx, cat, set.re)
					if err != nil {
						t.Fatal(err)
					}
					l := set.labels[rng.IntN(len(set.labels))]
					for k := range pins {
						if !set.re.MatchString(k) {
							t.Fatalf("chainPins of set %s pins %s, of the other set", set.re, k)
						}
					}
					if len(pins[l]) > 0 {
						continue
					}
					before := chainIDs(t, cat)
					if _, err := cat.StartVolumeWrite(ctx, l, 1, 65536, ds); err != nil {
						t.Fatal(err)
					}
					overwrites++
					after := chainIDs(t, cat)
					for dle, ids := range before {
						if !slices.Equal(ids, after[dle]) {
							t.Fatalf("night %d: overwriting %s, which no chain pinned, changed the newest chain of %s from %v to %v", night, l, dle, ids, after[dle])
						}
						for _, id := range ids {
							parts, err := cat.Parts(ctx, id)
							if err != nil {
								t.Fatal(err)
							}
							var end int64
							for _, p := range parts {
								if p.Volume == l || p.Offset != end {
									t.Fatalf("night %d: after overwriting %s, image %d of the chain of %s has parts %+v", night, l, id, dle, parts)
								}
								end += p.Length
							}
							d, _ := cat.Dump(ctx, id)
							if end != d.PayloadSize {
								t.Fatalf("night %d: after overwriting %s, image %d covers %d of %d bytes", night, l, id, end, d.PayloadSize)
							}
						}
					}
				}
			}
			if overwrites == 0 {
				t.Errorf("no volume was ever overwritten: the history tests nothing")
			}
		})
	}
}

// randomParts puts a payload on one or two volumes of labels.
func randomParts(rng *rand.Rand, labels []string, payload int64) []catalog.Part {
	a := labels[rng.IntN(len(labels))]
	if rng.IntN(3) > 0 {
		return []catalog.Part{{Volume: a, Part: 1, FileNo: 1, LogicalPos: -1, Length: payload}}
	}
	b := labels[rng.IntN(len(labels))]
	if b == a {
		return []catalog.Part{{Volume: a, Part: 1, FileNo: 1, LogicalPos: -1, Length: payload}}
	}
	h := payload / 2
	return []catalog.Part{{Volume: a, Part: 1, FileNo: 1, LogicalPos: -1, Length: h},
		{Volume: b, Part: 2, FileNo: 1, LogicalPos: -1, Offset: h, Length: payload - h}}
}

func chainIDs(t *testing.T, cat *catalog.Catalog) map[string][]int64 {
	t.Helper()
	chains, err := cat.Chains(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]int64{}
	for _, c := range chains {
		for _, d := range c.Dumps {
			out[c.Path] = append(out[c.Path], d.ID)
		}
	}
	return out
}
