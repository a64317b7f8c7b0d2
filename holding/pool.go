package holding

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultChunksize is the largest holding file when a disk names none.
const DefaultChunksize = 1 << 30

// Disk is one configured holding disk.
type Disk struct {
	Path      string
	Use       int64 // bytes tapir may fill there; 0 = whatever is free
	Chunksize int64 // largest file an image is cut into; 0 = DefaultChunksize
}

// Kind tells the pool whether space is for a full or an incremental: in
// degraded mode only a share of the holding disks may hold fulls.
type Kind int

const (
	Incremental Kind = iota
	Full
)

func (k Kind) String() string {
	if k == Full {
		return "full"
	}
	return "incremental"
}

// ErrNoSpace is matched by the errors of a reservation that can never be
// satisfied (the image is larger than the holding disks, or than the share
// that degraded mode leaves to fulls) and by ErrHoldingFull.
var ErrNoSpace = errors.New("not enough holding space")

// ErrHoldingFull is returned to a writer that needed more space while every
// other writer was waiting too and nothing was draining the holding disks:
// the pool picks it as the victim so that the others can go on. Its image
// must be dumped again some other way (straight to a volume).
var ErrHoldingFull = fmt.Errorf("%w: every dump waits for holding space and nothing is being taped", ErrNoSpace)

// FullLimit is how many bytes of total holding space fulls may occupy in
// degraded mode: the (100 - reserve)% that the reserve leaves them,
// computed exactly (Amanda's integer division reserved nothing for any
// reserve below 100). reserve is clamped to 0..100.
func FullLimit(total int64, reserve int) int64 {
	if total <= 0 {
		return 0
	}
	reserve = min(max(reserve, 0), 100)
	hi, lo := bits.Mul64(uint64(total), uint64(100-reserve))
	q, _ := bits.Div64(hi, lo, 100)
	return int64(q)
}

// PoolOptions configure a Pool.
type PoolOptions struct {
	// Reserve is the percentage of the holding space kept for incrementals
	// in degraded mode (0..100; Amanda's default 100 keeps fulls out).
	Reserve int
	// FreeSpace returns the bytes available to tapir on the filesystem of
	// dir; nil uses statfs. Tests inject it.
	FreeSpace func(dir string) (int64, error)
	// Draining tells whether space is about to be released (images waiting
	// for or being written by the taper). nil means never: then a writer that
	// needs more space while every other writer waits is failed at once.
	Draining func() bool
}

// Pool accounts the space of all holding disks of a run. Every byte a
// dumper writes is reserved first, so that concurrent dumps never overfill
// a disk; space is released when an image leaves the holding disk (taped or
// removed). It is safe for concurrent use.
type Pool struct {
	opt   PoolOptions
	disks []*disk

	mu       sync.Mutex
	degraded bool
	full     int64 // bytes reserved or held by fulls (degraded-mode accounting)
	fullKept int64 // of those, the bytes of finished fulls sitting on the disks
	changed  chan struct{}
	onWait   func(*Space) // tests: called (locked) when a Grow decides to wait
	seq      int64
	writers  map[*Space]bool // spaces in use by writers
	waiting  map[*Space]bool // of those, the ones waiting in Grow
	victims  map[*Space]bool // told to give up
}

type disk struct {
	Disk
	capacity int64 // bytes tapir may hold there in all
	used     int64 // reserved by spaces, plus files already there at start
}

// NewPool measures the holding disks: a disk with Use set holds at most
// Use bytes; without, at most what it holds now plus what is free. The
// bytes of images already on a disk (leftovers of earlier runs) count as
// used until Release tells the pool they are gone. Each directory must
// exist (CheckDisk): a missing one is an error, never created.
func NewPool(disks []Disk, opt PoolOptions) (*Pool, error) {
	if opt.FreeSpace == nil {
		opt.FreeSpace = FreeSpace
	}
	p := &Pool{opt: opt, changed: make(chan struct{}), writers: map[*Space]bool{}, waiting: map[*Space]bool{}, victims: map[*Space]bool{}}
	for _, d := range disks {
		if d.Chunksize <= 0 {
			d.Chunksize = DefaultChunksize
		}
		if d.Chunksize < 1<<20 {
			return nil, fmt.Errorf("holding disk %s: chunksize %d is below 1 MiB", d.Path, d.Chunksize)
		}
		if err := CheckDisk(d.Path); err != nil {
			return nil, err
		}
		used, err := du(d.Path)
		if err != nil {
			return nil, fmt.Errorf("holding disk %s: measure what is on it: %w", d.Path, err)
		}
		capacity := d.Use
		if capacity <= 0 {
			free, err := opt.FreeSpace(d.Path)
			if err != nil {
				return nil, fmt.Errorf("holding disk %s: free space: %w", d.Path, err)
			}
			capacity = used + free
		}
		p.disks = append(p.disks, &disk{Disk: d, capacity: capacity, used: used})
	}
	return p, nil
}

// ErrNoDisk is matched by the error of CheckDisk (and NewPool) for a
// holding disk whose directory does not exist.
var ErrNoDisk = errors.New("does not exist")

// CheckDisk tells whether the holding disk at path can be used: its
// directory exists. tapir never creates it, so that an unmounted disk is
// noticed instead of filling the filesystem under its mount point; the
// run directories inside it are created as needed.
func CheckDisk(path string) error {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("holding disk %s %w: mount it, or create it with mkdir if it is new", path, ErrNoDisk)
	case err != nil:
		return fmt.Errorf("holding disk %s: %w", path, err)
	case !fi.IsDir():
		return fmt.Errorf("holding disk %s is not a directory; point [[holding]] path at a directory", path)
	}
	return nil
}

// FreeSpace returns the bytes an unprivileged writer may still use on the
// filesystem holding dir.
func FreeSpace(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// du sums the sizes of the regular files below dir.
func du(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.Type().IsRegular() {
			if fi, err := e.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n, err
}

// SetDegraded switches degraded-mode accounting on or off: while on, fulls
// may hold at most FullLimit(Total, Reserve) bytes.
func (p *Pool) SetDegraded(on bool) {
	p.mu.Lock()
	p.degraded = on
	p.mu.Unlock()
	p.Poke()
}

// Total is the capacity of all disks together.
func (p *Pool) Total() int64 {
	var n int64
	for _, d := range p.disks {
		n += d.capacity
	}
	return n
}

// Free is what is neither used nor reserved now.
func (p *Pool) Free() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.freeLocked()
}

func (p *Pool) freeLocked() int64 {
	var n int64
	for _, d := range p.disks {
		n += max(d.capacity-d.used, 0)
	}
	return n
}

// Used is what is used or reserved now.
func (p *Pool) Used() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var n int64
	for _, d := range p.disks {
		n += d.used
	}
	return n
}

// limitLocked is how much more a reservation of kind k may take now.
func (p *Pool) limitLocked(k Kind) int64 {
	free := p.freeLocked()
	if p.degraded && k == Full {
		free = min(free, FullLimit(p.Total(), p.opt.Reserve)-p.full)
	}
	return max(free, 0)
}

// Fits reports whether n bytes of kind k could ever be held: with the
// holding disks empty of everything else. An image that does not fit must
// go straight to a volume (or, in degraded mode, be demoted or skipped).
func (p *Pool) Fits(n int64, k Kind) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	limit := p.Total()
	if p.degraded && k == Full {
		limit = FullLimit(limit, p.opt.Reserve)
	}
	return n <= limit
}

// Changed returns a channel that is closed the next time space is released
// or the pool's state changes (Poke).
func (p *Pool) Changed() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.changed
}

// Poke wakes everyone waiting on Changed: call it when Draining's answer
// may have changed.
func (p *Pool) Poke() {
	p.mu.Lock()
	p.pokeLocked()
	p.mu.Unlock()
}

func (p *Pool) pokeLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// Space is a reservation on the holding disks: so many bytes on each disk,
// of which a writer has filled some.
type Space struct {
	p       *Pool
	kind    Kind
	seq     int64
	alloc   []int64 // per disk, reserved
	granted []int64 // per disk, handed to chunk files
	filled  []int64 // per disk, written
	closed  bool
	written int64
}

// TryReserve reserves n bytes for an image of kind k if they are free now,
// preferring the disk with the most room (an image then mostly stays on
// one disk) and spreading over the others when no single disk has room.
func (p *Pool) TryReserve(n int64, k Kind) (*Space, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n < 0 || n > p.limitLocked(k) {
		return nil, false
	}
	p.seq++
	s := &Space{p: p, kind: k, seq: p.seq, alloc: make([]int64, len(p.disks)), granted: make([]int64, len(p.disks)), filled: make([]int64, len(p.disks))}
	p.writers[s] = true
	p.allocLocked(s, n)
	return s, true
}

// allocLocked spreads n bytes (which must be free) over the disks.
func (p *Pool) allocLocked(s *Space, n int64) {
	order := make([]int, len(p.disks))
	for i := range order {
		order[i] = i
	}
	room := func(i int) int64 { return max(p.disks[i].capacity-p.disks[i].used, 0) }
	sort.SliceStable(order, func(a, b int) bool { return room(order[a]) > room(order[b]) })
	for _, i := range order {
		if n == 0 {
			break
		}
		take := min(n, room(i))
		s.alloc[i] += take
		p.disks[i].used += take
		n -= take
	}
	p.recountFullLocked()
}

func (p *Pool) recountFullLocked() {
	var n int64
	for s := range p.writers {
		if s.kind == Full {
			n += sumOf(s.alloc)
		}
	}
	p.full = n + p.fullKept
}

func sumOf(xs []int64) int64 {
	var n int64
	for _, x := range xs {
		n += x
	}
	return n
}

// Reserved is the total reservation of s.
func (s *Space) Reserved() int64 { return sumOf(s.alloc) }

// Written is how many bytes have been placed in s.
func (s *Space) Written() int64 { return s.written }

// Grow adds n bytes to the reservation, waiting for space to be released
// while the pool says something is draining. It fails with ErrNoSpace when
// the holding disks can never hold that much, with ErrHoldingFull when s is
// chosen to give up so that others can finish, and with ctx's error when
// cancelled.
func (s *Space) Grow(ctx context.Context, n int64) error {
	p := s.p
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	p.mu.Lock()
	for {
		if p.victims[s] {
			delete(p.victims, s)
			delete(p.waiting, s)
			p.mu.Unlock()
			return ErrHoldingFull
		}
		limit := p.Total()
		if p.degraded && s.kind == Full {
			limit = FullLimit(limit, p.opt.Reserve)
		}
		if sumOf(s.alloc)+n > limit {
			delete(p.waiting, s)
			p.mu.Unlock()
			return fmt.Errorf("%w: the image needs more than the %d bytes the holding disks can give %ss", ErrNoSpace, limit, s.kind)
		}
		if n <= p.limitLocked(s.kind) {
			p.allocLocked(s, n)
			delete(p.waiting, s)
			p.mu.Unlock()
			return nil
		}
		p.waiting[s] = true
		if p.onWait != nil {
			p.onWait(s)
		}
		p.chooseVictimLocked()
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			p.mu.Lock()
			delete(p.waiting, s)
			p.mu.Unlock()
			return ctx.Err()
		case <-ch:
		case <-tick.C:
		}
		p.mu.Lock()
	}
}

// chooseVictimLocked breaks the deadlock of writers that all wait for space
// that only they could release: when every writer waits and nothing
// drains, the one that has written least gives up.
func (p *Pool) chooseVictimLocked() {
	if len(p.waiting) == 0 || len(p.waiting) < len(p.writers) || len(p.victims) > 0 {
		return
	}
	if p.opt.Draining != nil && p.opt.Draining() {
		return
	}
	var v *Space
	for s := range p.waiting {
		if v == nil || s.written < v.written || (s.written == v.written && s.seq > v.seq) {
			v = s
		}
	}
	p.victims[v] = true
	p.pokeLocked()
}

// take hands up to want bytes of the reservation to a chunk file: on disk
// `on` when on >= 0, else on the disk with the most reserved room left. It
// returns the disk and the bytes granted (0 when none are left there).
func (s *Space) take(on int, want int64) (int, int64) {
	p := s.p
	p.mu.Lock()
	defer p.mu.Unlock()
	best, room := -1, int64(0)
	for i := range s.alloc {
		if on >= 0 && i != on {
			continue
		}
		if r := s.alloc[i] - s.granted[i]; r > room {
			best, room = i, r
		}
	}
	if best < 0 {
		return on, 0
	}
	g := min(want, room)
	s.granted[best] += g
	return best, g
}

// fill records that n bytes were written on disk i.
func (s *Space) fill(i int, n int64) {
	s.p.mu.Lock()
	s.filled[i] += n
	s.written += n
	s.p.mu.Unlock()
}

// diskPath returns the directory of disk i.
func (s *Space) diskPath(i int) string { return s.p.disks[i].Path }

// chunksize returns the chunk size of disk i.
func (s *Space) chunksize(i int) int64 { return s.p.disks[i].Chunksize }

// Shrink gives back what was reserved but not written, keeping the written
// bytes accounted as used (the image stays on the holding disk). It ends
// the writer: s no longer counts in the deadlock check.
func (s *Space) Shrink() {
	p := s.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	for i := range s.alloc {
		p.disks[i].used -= s.alloc[i] - s.filled[i]
		s.alloc[i], s.granted[i] = s.filled[i], s.filled[i]
	}
	if s.kind == Full {
		p.fullKept += sumOf(s.filled)
	}
	delete(p.writers, s)
	delete(p.waiting, s)
	delete(p.victims, s)
	p.recountFullLocked()
	p.pokeLocked()
}

// Free gives everything back: the image left the holding disk (it was
// taped, or the partial file was removed). It may follow Shrink.
func (s *Space) Free() {
	p := s.p
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range s.alloc {
		p.disks[i].used -= s.alloc[i]
	}
	if s.closed && s.kind == Full {
		p.fullKept -= sumOf(s.alloc)
	}
	for i := range s.alloc {
		s.alloc[i], s.granted[i], s.filled[i] = 0, 0, 0
	}
	s.closed = true
	delete(p.writers, s)
	delete(p.waiting, s)
	delete(p.victims, s)
	p.recountFullLocked()
	p.pokeLocked()
}

// Release tells the pool that n bytes on the holding disk at dir were
// deleted (a leftover image of an earlier run was taped or removed), of
// kind k.
func (p *Pool) Release(dir string, n int64, k Kind) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, d := range p.disks {
		if within(dir, d.Path) {
			d.used = max(d.used-n, 0)
			break
		}
	}
	if k == Full {
		p.fullKept = max(p.fullKept-n, 0)
	}
	p.recountFullLocked()
	p.pokeLocked()
}

// AccountFull tells the pool that n bytes already on the disks at start
// belong to fulls (leftovers), so that degraded mode counts them.
func (p *Pool) AccountFull(n int64) {
	p.mu.Lock()
	p.fullKept += n
	p.recountFullLocked()
	p.mu.Unlock()
}

func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !filepath.IsAbs(rel) && (len(rel) < 3 || rel[:3] != "../")
}

// DiskOf returns the directory of disks that path lies in, "" when none:
// whether a holding file is on this machine's disks (or on one that is
// missing) is asked of it, never of the path's spelling.
func DiskOf(path string, disks []string) string {
	for _, d := range disks {
		if path != "" && within(path, d) {
			return d
		}
	}
	return ""
}

// Disks returns the configured disks with their capacity and use, for
// reports and `tapir admin holding`.
func (p *Pool) Disks() []DiskUsage {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]DiskUsage, len(p.disks))
	for i, d := range p.disks {
		out[i] = DiskUsage{Path: d.Path, Capacity: d.capacity, Used: d.used}
	}
	return out
}

// DiskUsage is one disk's capacity and use.
type DiskUsage struct {
	Path           string
	Capacity, Used int64
	// Missing says the disk's directory does not exist (CheckDisk), for
	// listings of every configured disk; Capacity and Used are then 0.
	Missing bool
}

// FullRoom is how many more bytes fulls may take: in degraded mode their
// share (FullLimit) minus what fulls already hold or have reserved, free
// space aside; outside degraded mode the whole capacity.
func (p *Pool) FullRoom() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.degraded {
		return p.Total()
	}
	return max(FullLimit(p.Total(), p.opt.Reserve)-p.full, 0)
}

// Writers is the number of reservations still being written.
func (p *Pool) Writers() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.writers)
}
