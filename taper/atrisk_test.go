package taper

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"testing"
)

// chainModel is a site's volumes and dumps as ChooseVolume and AtRisk see
// them, for random histories.
type chainModel struct {
	t                  *testing.T
	slots              []VolumeState // index = slot-1; Label "" and Blank for a blank one
	dumps              []mdump
	tapecycle, runtape int
	perVolume          int // images a volume holds
	night              int
	labelled           int
	everFull           map[int]bool
	stuck, failed      int
}

type mdump struct {
	dle, level, night int
	vols              []string
}

var modelLabels = regexp.MustCompile(`^M-\d{3}$`)

func modelLabel(n int) string { return fmt.Sprintf("M-%03d", n) }

// chains returns each DLE's newest chain: newest full and later dumps.
func (m *chainModel) chains() map[int][]mdump {
	out := map[int][]mdump{}
	for _, d := range m.dumps {
		if d.level == 0 {
			out[d.dle] = []mdump{d} // dumps are appended in time order
		} else if len(out[d.dle]) > 0 {
			out[d.dle] = append(out[d.dle], d)
		}
	}
	return out
}

func (m *chainModel) states(missing map[int]bool) []VolumeState {
	pins := map[string][]string{}
	for dle, ch := range m.chains() {
		for _, d := range ch {
			for _, l := range d.vols {
				pins[l] = append(pins[l], fmt.Sprintf("dle%d", dle))
			}
		}
	}
	var out []VolumeState
	for i, s := range m.slots {
		s.Pinned = pins[s.Label]
		if missing[i+1] {
			if s.Label == "" {
				continue
			}
			s.Slot = 0
		}
		out = append(out, s)
	}
	return out
}

func (m *chainModel) nextLabel() string { return modelLabel(m.labelled + 1) }

// runNight plays one night: the look-ahead, the levels, the volumes.
func (m *chainModel) runNight(r *rand.Rand, dles, cycle int, fail bool, missing map[int]bool) {
	m.night++
	risk := AtRisk(m.states(missing), m.tapecycle, modelLabels, modelLabel, m.runtape, m.runtape)
	promote := map[int]bool{}
	for dle, ch := range m.chains() {
		for _, d := range ch {
			for _, l := range d.vols {
				if slices.Contains(risk, l) {
					promote[dle] = true
				}
			}
		}
	}
	if fail {
		m.failed++
	}
	var tonight []mdump
	ch := m.chains()
	for dle := range dles {
		if fail && dle%2 == 0 {
			continue // this client was down tonight
		}
		level := 1
		c := ch[dle]
		if promote[dle] || len(c) == 0 || m.night-c[0].night >= cycle || r.IntN(20) == 0 {
			level = 0
		}
		tonight = append(tonight, mdump{dle: dle, level: level, night: m.night})
	}
	var cur string
	used, written := 0, 0
	for _, d := range tonight {
		if cur == "" || used >= m.perVolume {
			if written == m.runtape {
				return // runtapes reached: the rest stays on holding
			}
			st := m.states(missing)
			for i := range st {
				for _, w := range m.thisNight(tonight) {
					if st[i].Label == w {
						st[i].Reuse = false
					}
				}
			}
			c, err := ChooseVolume(st, m.tapecycle, modelLabels, m.nextLabel())
			if err != nil {
				if errors.Is(err, ErrChainsProtected) {
					m.stuck++
				} else if !errors.Is(err, ErrNoVolume) {
					m.t.Fatal(err)
				}
				return
			}
			m.overwrite(c)
			cur, used = c.Label, 0
			written++
		}
		d.vols = []string{cur}
		m.dumps = append(m.dumps, d)
		if d.level == 0 {
			m.everFull[d.dle] = true
		}
		used++
	}
}

func (m *chainModel) thisNight(tonight []mdump) []string {
	var out []string
	for _, d := range m.dumps {
		if d.night == m.night {
			out = append(out, d.vols...)
		}
	}
	return out
}

// overwrite writes volume c from its start, after checking the promise:
// no image of a newest chain is on it.
func (m *chainModel) overwrite(c Choice) {
	if !c.Relabel {
		for dle, ch := range m.chains() {
			for _, d := range ch {
				if slices.Contains(d.vols, c.Label) {
					m.t.Fatalf("night %d: %s chosen for overwriting holds the newest chain of dle%d (night %d level %d)", m.night, c.Label, dle, d.night, d.level)
				}
			}
		}
	}
	kept := m.dumps[:0]
	for _, d := range m.dumps {
		if !slices.Contains(d.vols, c.Label) {
			kept = append(kept, d)
		}
	}
	m.dumps = kept
	if c.Relabel {
		m.labelled++
	}
	m.slots[c.Slot-1] = VolumeState{Slot: c.Slot, Label: c.Label, Reuse: true, Written: fmt.Sprintf("2025%02d%02d010000", 1+m.night/28%12, 1+m.night%28)}
}

// TestChainsPropertyRandomHistories: over thousands of random sites and
// histories (slots, tapecycle, runtapes, dumpcycle, forced fulls, failed
// nights, volumes missing from the changer), no volume holding a newest
// chain is ever chosen for overwriting, so every DLE that ever had a full
// keeps a complete chain; and where the changer has tapecycle + 2 ×
// runtapes - 1 slots (the newest tapecycle volumes, rounded up to a whole
// night's, and a night's worth to write), or one night's more when clients
// miss nights (never two in a row), the look-ahead keeps the rotation
// going: no night is ever refused a volume for the chains on it.
func TestChainsPropertyRandomHistories(t *testing.T) {
	histories := 2000
	if testing.Short() {
		histories = 300
	}
	for h := range histories {
		r := rand.New(rand.NewPCG(uint64(h), 11))
		tapecycle := 1 + r.IntN(5)
		runtapes := 1 + r.IntN(2)
		slots := max(tapecycle+runtapes+r.IntN(5)-2, 1)
		dles := 1 + r.IntN(6)
		cycle := 1 + r.IntN(10)
		faults := r.IntN(3) == 0  // nights some clients miss, never two in a row
		missing := r.IntN(4) == 0 // volumes missing from the changer
		m := &chainModel{t: t, tapecycle: tapecycle, runtape: runtapes, perVolume: 1 + r.IntN(dles+2), everFull: map[int]bool{}}
		for i := range slots {
			m.slots = append(m.slots, VolumeState{Slot: i + 1, Blank: true})
		}
		lastFailed := false
		for range 60 {
			fail := faults && !lastFailed && r.IntN(6) == 0
			lastFailed = fail
			out := map[int]bool{}
			if missing && r.IntN(8) == 0 {
				out[1+r.IntN(slots)] = true
			}
			m.runNight(r, dles, cycle, fail, out)
			ch := m.chains()
			for dle := range m.everFull {
				if len(ch[dle]) == 0 {
					t.Fatalf("history %d night %d: dle%d had a full and has no chain left", h, m.night, dle)
				}
			}
		}
		fits := m.perVolume*runtapes >= dles // a night fits on its volumes
		need := tapecycle + 2*runtapes - 1   // the newest tapecycle volumes, rounded up to a night's, and a night's to write
		if faults {
			need++ // and a spare night's, for a client that misses its promoted full
		}
		if slots >= need && fits && !missing && m.stuck > 0 {
			t.Errorf("history %d (slots %d tapecycle %d runtapes %d dles %d dumpcycle %d, %d images a volume): %d nights refused a volume for the chains on it",
				h, slots, tapecycle, runtapes, dles, cycle, m.perVolume, m.stuck)
		}
	}
}
