package taper

import (
	"math/rand/v2"
	"testing"
	"time"
)

// The drive model's idle time is never more than the waits for the
// source, is 0 when the source never waits, and is what is left of a wait
// once the buffer ran dry: checked over random histories.
func TestDriveModelProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for h := range 500 {
		speed := float64(1+rng.IntN(400)) * (1 << 20)
		buffer := int64(1+rng.IntN(256)) << 20
		m := driveModel{speed: speed, buffer: float64(buffer)}
		vols := []*Volume{{Label: "A"}, {Label: "B"}}
		now := time.Unix(0, 0)
		var idle, waits time.Duration
		for range 200 {
			waited := time.Duration(rng.IntN(int(50 * time.Millisecond)))
			if rng.IntN(3) == 0 {
				waited = 0
			}
			block := time.Duration(rng.IntN(int(5 * time.Millisecond))) // time in write(2)
			now = now.Add(waited + block)
			v := vols[0]
			if rng.IntN(50) == 0 {
				v = vols[1]
			}
			d := m.wrote(v, 1+rng.IntN(1<<20), waited, now)
			if d < 0 || d > waited {
				t.Fatalf("history %d: idle %v for a wait of %v", h, d, waited)
			}
			idle += d
			waits += waited
		}
		if idle > waits {
			t.Fatalf("history %d: idle %v > waits %v", h, idle, waits)
		}
	}
}

// A drive whose buffer holds what it needs for the wait is not starved;
// a wait longer than the buffer lasts is starved by the difference.
func TestDriveModelBuffer(t *testing.T) {
	const mib = 1 << 20
	m := driveModel{speed: 100 * mib, buffer: 64 * mib}
	v := &Volume{Label: "A"}
	now := time.Unix(0, 0)
	m.wrote(v, 64*mib, 0, now) // a full buffer: 0.64 s of streaming
	now = now.Add(500 * time.Millisecond)
	if d := m.wrote(v, mib, 500*time.Millisecond, now); d != 0 {
		t.Errorf("a 0.5 s wait with 0.64 s buffered: idle %v", d)
	}
	// 15 MiB left after the wait plus 1 MiB: 0.16 s; a 1 s wait starves
	// the drive 0.84 s.
	now = now.Add(time.Second)
	if d := m.wrote(v, mib, time.Second, now); d < 830*time.Millisecond || d > 850*time.Millisecond {
		t.Errorf("a 1 s wait with 0.16 s buffered: idle %v, want 0.84 s", d)
	}
	// A write that blocked (the drive is slower than speed) is no wait
	// for the source: no idle time, however long it took.
	now = now.Add(10 * time.Second)
	if d := m.wrote(v, mib, 0, now); d != 0 {
		t.Errorf("a blocked write: idle %v", d)
	}
	// A new volume starts with an empty buffer and no idle time.
	now = now.Add(time.Minute)
	if d := m.wrote(&Volume{Label: "B"}, mib, time.Minute, now); d != 0 {
		t.Errorf("first record of a new volume: idle %v", d)
	}
	// Without a speed the model says nothing.
	if d := (&driveModel{}).wrote(v, mib, time.Second, now); d != 0 {
		t.Errorf("no speed: idle %v", d)
	}
}
