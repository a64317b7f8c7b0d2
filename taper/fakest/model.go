package fakest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/benmcclelland/mtio"
)

// Status bits of MTIOCGET (GMT_* in linux/mtio.h).
const (
	gmtEOF     = 0x80000000
	gmtBOT     = 0x40000000
	gmtEOT     = 0x20000000
	gmtEOD     = 0x08000000
	gmtWrProt  = 0x04000000
	gmtOnline  = 0x01000000
	gmtDrOpen  = 0x00040000
	gmtImRepEn = 0x00010000
)

const (
	mtISSCSI2    = 0x72      // mt_type st reports for SCSI-2 and later drives
	densityLTO6  = 0x5a      // density code the model reports
	maxBlock     = 1<<24 - 1 // READ BLOCK LIMITS maximum of a typical LTO drive
	stOptionMask = 0xf0000000
)

// Defaults for cartridges made from Options.
const (
	DefaultCapacity = 64 << 20
	defaultName     = "TAPE01"
)

// Device names of the two st device files the model presents.
const (
	NST0 = "nst0" // no rewind on close
	ST0  = "st0"  // rewinds on close
)

// eofState mirrors st's st_partstat.eof; the order matters (st compares).
type eofState int

const (
	stNoEOF eofState = iota
	stFMHit
	stFM
	stEOMOK
	stEOMError
	stEOD1
	stEOD2
	stEOD
)

type rwState int

const (
	rwIdle rwState = iota
	rwReading
	rwWriting
)

// discardKeeps is the largest record Options.Discard keeps.
const discardKeeps = 64 << 10

// Options configure a Drive.
type Options struct {
	// Capacity of each cartridge in bytes of record data (filemarks cost
	// nothing). Default DefaultCapacity.
	Capacity int64
	// EarlyWarning is the distance before Capacity where early warning
	// starts. Default DefaultEarlyWarning(Capacity).
	EarlyWarning int64
	// Cartridges are created on the shelf with the capacity above; the
	// first is in the drive, loaded, unless Empty. Default one, "TAPE01".
	Cartridges []string
	// Empty starts with no cartridge in the drive.
	Empty bool
	// Discard keeps only the size of each record, not its bytes (reads
	// return zeros): for benchmarks that write more than fits in memory.
	// The records of file 0 (the label) and records of at most 64 KiB
	// (an image's header) are kept, so that a label reads back.
	Discard bool
	// Rate is the drive's streaming speed in bytes per second of records
	// written (an LTO-9 drive: 400e6); 0 swallows records as fast as they
	// come. A write returns when the drive would have taken the record,
	// so that a benchmark compares writers against a drive's speed rather
	// than against the CPU the fake itself uses. For benchmarks only:
	// tests do not wait on time.
	Rate int64
	// Logger receives operator actions and ctl commands; nil discards.
	Logger *slog.Logger
}

// DefaultEarlyWarning is the early-warning distance of a cartridge of the
// given capacity: 1/16 of it, at least 64 KiB, at most half of it.
func DefaultEarlyWarning(capacity int64) int64 {
	return min(max(capacity/16, 64<<10), capacity/2)
}

// Object is one thing on a tape: a record or a filemark.
type Object struct {
	Filemark bool
	Size     int    // record length
	Data     []byte // the record; nil when the drive discards data
}

// Cartridge is one tape. Its methods are safe for concurrent use with the
// drive.
type Cartridge struct {
	d              *Drive
	name           string
	objects        []Object
	used           int64
	capacity       int64
	earlyWarning   int64
	writeProtected bool
}

// Drive is the model of one st drive with its shelf of cartridges, which
// it may share with other drives (NewDrives: the drives of a library). All
// methods are safe for concurrent use.
type Drive struct {
	mu    *sync.Mutex // shared by the drives of a shelf
	cond  *sync.Cond
	log   *slog.Logger
	opts  Options
	shelf *shelf
	index int // in shelf.drives

	cart     *Cartridge // in the drive (threaded or ejected into the mouth), nil if empty
	threaded bool       // cart is loaded and ready

	// st state of the drive (one open at a time, so one copy).
	pos          int   // index of the next object on cart
	file, block  int64 // st's drv_file, drv_block; -1 when st does not know
	eof          eofState
	rw           rwState
	blockSize    int64
	scsi2logical bool

	cur        *Handle // the open handle, nil when none
	ready      bool    // snapshot at open/MTLOAD/MTOFFL, like st's STp->ready
	posUnknown bool    // the cartridge changed behind an open handle
	writeProt  bool    // st's write_prot: opened read-only or cartridge protected
	rewAtClose bool

	stalled        bool
	stalledWriters int
	shutdown       bool
	faults         map[int]syscall.Errno
	noLocate       bool
	noPos          bool
	opFaults       map[int16]map[int]syscall.Errno // op -> call number -> errno
	ops            map[int16]int
	trace          []string
	opens          []int         // access mode (O_ACCMODE bits) of each open(2), for Opens
	writes         int           // write(2) calls that reached the drive
	busyUntil      time.Time     // Options.Rate: when the drive has taken the records written so far
	paced          bool          // Options.Rate: a record was written since the last operation
	starved        time.Duration // Options.Rate: time the buffer was empty between two records

	mount *mountState // set while mounted through FUSE
}

// shelf is the cartridges of one or more drives. A cartridge is in at most
// one of its drives at a time.
type shelf struct {
	carts  []*Cartridge
	drives []*Drive
}

// Handle is one open of the drive, like a file descriptor on /dev/nst0.
// Its methods return syscall.Errno values as st would. A Handle is meant
// for one goroutine at a time, like a file descriptor.
type Handle struct {
	d       *Drive
	dev     string
	owner   int // thread group that opened it through FUSE; 0 in memory
	rdonly  bool
	flushed bool // its opener closed it; the release (last close) may follow
	closed  bool
}

// New returns a drive with its cartridges, not mounted.
func New(opts Options) *Drive {
	return NewDrives(1, opts)[0]
}

// NewDrives returns n drives that share one shelf of cartridges, as the
// drives of a tape library do: a cartridge written in one drive and moved
// (Remove, then Insert into another drive, or the ctl files) reads the
// same in the other. The cartridges are made once; the first is in drive
// 0, loaded, unless Empty; the other drives start empty. The drives share
// one lock, so that a cartridge is never in two drives.
func NewDrives(n int, opts Options) []*Drive {
	if n < 1 {
		panic("fakest.NewDrives: want at least one drive")
	}
	if opts.Capacity <= 0 {
		opts.Capacity = DefaultCapacity
	}
	if opts.EarlyWarning <= 0 || opts.EarlyWarning >= opts.Capacity {
		opts.EarlyWarning = DefaultEarlyWarning(opts.Capacity)
	}
	if len(opts.Cartridges) == 0 {
		opts.Cartridges = []string{defaultName}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mu, sh := new(sync.Mutex), &shelf{}
	for i := range n {
		d := &Drive{mu: mu, shelf: sh, index: i, log: log, opts: opts, file: -1, block: -1, faults: map[int]syscall.Errno{}, ops: map[int16]int{}}
		if n > 1 {
			d.log = log.With("drive", i)
		}
		d.cond = sync.NewCond(mu)
		sh.drives = append(sh.drives, d)
	}
	d := sh.drives[0]
	for _, name := range opts.Cartridges {
		if _, err := d.AddCartridge(name, opts.Capacity, opts.EarlyWarning); err != nil {
			panic("fakest.New: " + err.Error())
		}
	}
	if !opts.Empty {
		if err := d.Insert(opts.Cartridges[0]); err != nil {
			panic("fakest.New: " + err.Error())
		}
	}
	return sh.drives
}

// AddCartridge puts a new blank cartridge on the shelf.
func (d *Drive) AddCartridge(name string, capacity, earlyWarning int64) (*Cartridge, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if name == "" {
		return nil, errors.New("fakest: cartridge name is empty")
	}
	if capacity <= 0 || earlyWarning < 0 || earlyWarning >= capacity {
		return nil, fmt.Errorf("fakest: cartridge %s: capacity %d and early warning %d: want 0 <= early warning < capacity", name, capacity, earlyWarning)
	}
	if d.findLocked(name) != nil {
		return nil, fmt.Errorf("fakest: cartridge %s exists already", name)
	}
	c := &Cartridge{d: d, name: name, capacity: capacity, earlyWarning: earlyWarning}
	d.shelf.carts = append(d.shelf.carts, c)
	return c, nil
}

func (d *Drive) findLocked(name string) *Cartridge {
	for _, c := range d.shelf.carts {
		if c.name == name {
			return c
		}
	}
	return nil
}

// Cartridge returns the cartridge called name, nil if there is none.
func (d *Drive) Cartridge(name string) *Cartridge {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.findLocked(name)
}

// Current returns the cartridge in the drive (loaded or ejected), nil if
// the drive is empty.
func (d *Drive) Current() *Cartridge {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cart
}

// Loaded reports the cartridge in the drive and whether it is loaded
// (threaded and ready) rather than ejected into the drive's mouth.
func (d *Drive) Loaded() (name string, loaded bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cart == nil {
		return "", false
	}
	return d.cart.name, d.threaded
}

// changedLocked records an operator or robot action: an open handle loses
// its position, as st does after a UNIT ATTENTION.
func (d *Drive) changedLocked() {
	if d.cur != nil {
		d.posUnknown = true
	}
}

// Insert puts a cartridge from the shelf into the empty drive, which loads
// it at the beginning (what an operator or a robot does).
func (d *Drive) Insert(name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.findLocked(name)
	switch {
	case c == nil:
		return fmt.Errorf("fakest: insert %s: no such cartridge", name)
	case d.cart == c:
		return fmt.Errorf("fakest: insert %s: it is in the drive already", name)
	case d.cart != nil:
		return fmt.Errorf("fakest: insert %s: the drive holds %s; eject and remove it first", name, d.cart.name)
	}
	for _, o := range d.shelf.drives {
		if o.cart == c {
			return fmt.Errorf("fakest: insert %s: it is in drive %d of the library; eject and remove it there first", name, o.index)
		}
	}
	d.cart, d.threaded = c, true
	d.pos, d.file, d.block, d.eof, d.rw = 0, 0, 0, stNoEOF, rwIdle
	d.changedLocked()
	d.log.Info("fakest: cartridge inserted", "cartridge", name)
	return nil
}

// Eject is the drive's eject button: it rewinds and unloads the cartridge,
// which stays in the drive's mouth until Remove.
func (d *Drive) Eject() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cart == nil {
		return errors.New("fakest: eject: the drive is empty")
	}
	if d.threaded {
		d.threaded = false
		d.pos, d.file, d.block, d.eof, d.rw = 0, -1, -1, stNoEOF, rwIdle
		d.changedLocked()
		d.log.Info("fakest: cartridge ejected by the button", "cartridge", d.cart.name)
	}
	return nil
}

// Remove takes the ejected cartridge out of the drive and returns its
// name. A loaded cartridge must be ejected first (MTOFFL or Eject), as
// with a real drive.
func (d *Drive) Remove() (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.cart == nil:
		return "", errors.New("fakest: remove: the drive is empty")
	case d.threaded:
		return "", fmt.Errorf("fakest: remove: %s is loaded; eject it first (mt offline)", d.cart.name)
	}
	name := d.cart.name
	d.cart = nil
	d.changedLocked()
	d.log.Info("fakest: cartridge removed", "cartridge", name)
	return name, nil
}

// waitLocked waits on d.cond until done() or the timeout.
func (d *Drive) waitLocked(timeout time.Duration, done func() bool) {
	expired := false
	t := time.AfterFunc(timeout, func() {
		d.mu.Lock()
		expired = true
		d.cond.Broadcast()
		d.mu.Unlock()
	})
	defer t.Stop()
	for !done() && !expired && !d.shutdown {
		d.cond.Wait()
	}
}

// Stall makes writes block (without holding the drive) until Resume, like
// a drive that stops accepting data.
func (d *Drive) Stall() {
	d.mu.Lock()
	d.stalled = true
	d.mu.Unlock()
}

// Resume releases writes blocked by Stall.
func (d *Drive) Resume() {
	d.mu.Lock()
	d.stalled = false
	d.cond.Broadcast()
	d.mu.Unlock()
}

// StalledWriters is the number of writes blocked by Stall right now.
func (d *Drive) StalledWriters() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stalledWriters
}

// WaitStalled waits until at least one write is blocked by Stall, or
// until ctx ends (a test passes its t.Context()).
func (d *Drive) WaitStalled(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		d.mu.Lock()
		d.cond.Broadcast()
		d.mu.Unlock()
	})
	defer stop()
	d.mu.Lock()
	defer d.mu.Unlock()
	for d.stalledWriters == 0 {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("fakest: no write blocked: %w", err)
		}
		d.cond.Wait()
	}
	return nil
}

// InjectError makes every read or write at logical object number at fail
// with errno (EIO when 0) until ClearErrors, as a bad spot on the tape.
func (d *Drive) InjectError(at int64, errno syscall.Errno) {
	if errno == 0 {
		errno = syscall.EIO
	}
	d.mu.Lock()
	d.faults[int(at)] = errno
	d.mu.Unlock()
}

// ClearErrors removes the errors set by InjectError.
func (d *Drive) ClearErrors() {
	d.mu.Lock()
	clear(d.faults)
	d.mu.Unlock()
}

// SetLocate sets whether the drive answers MTIOCPOS and MTSEEK (a drive
// that cannot fails both with EIO). It can by default.
func (d *Drive) SetLocate(ok bool) {
	d.mu.Lock()
	d.noLocate = !ok
	d.mu.Unlock()
}

// FailOp makes the nth MTIOCTOP call with operation op from now on (1
// is the next one) fail once with errno (EIO when 0), as a drive that
// fails to locate or to space does. A failed MTSEEK leaves the tape
// where the locate stopped, halfway to its target; any failed operation
// leaves st not knowing the file and block numbers.
func (d *Drive) FailOp(op int16, nth int, errno syscall.Errno) {
	if errno == 0 {
		errno = syscall.EIO
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.opFaults == nil {
		d.opFaults = map[int16]map[int]syscall.Errno{}
	}
	if d.opFaults[op] == nil {
		d.opFaults[op] = map[int]syscall.Errno{}
	}
	d.opFaults[op][d.ops[op]+nth] = errno
}

// SetPosition sets whether the drive answers MTIOCPOS (EIO when not)
// while MTSEEK keeps working or failing as set by SetLocate and FailOp.
// It answers by default.
func (d *Drive) SetPosition(ok bool) {
	d.mu.Lock()
	d.noPos = !ok
	d.mu.Unlock()
}

// Trace returns the MTIOCTOP calls the drive received since the last
// ResetTrace (or since New), in order, as "MTSEEK 12", with " EIO" (the
// errno) appended to those that failed.
func (d *Drive) Trace() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.trace)
}

// ResetTrace empties the trace and the list of opens.
func (d *Drive) ResetTrace() {
	d.mu.Lock()
	d.trace = nil
	d.opens = nil
	d.mu.Unlock()
}

// Opens returns the access mode (flags & O_ACCMODE: syscall.O_RDONLY,
// O_WRONLY or O_RDWR) of every open(2) of nst0 or st0 the drive received
// since the last ResetTrace (or since New), in order, those it refused
// included: a test asserts that a reader never opened it for writing.
func (d *Drive) Opens() []int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.opens)
}

// OpName is the name of an MTIOCTOP operation, as in mtio.h.
func OpName(op int16) string {
	if n, ok := opNames[op]; ok {
		return n
	}
	return fmt.Sprintf("MTOP(%d)", op)
}

var opNames = map[int16]string{
	mtio.MTRESET: "MTRESET", mtio.MTFSF: "MTFSF", mtio.MTBSF: "MTBSF", mtio.MTFSR: "MTFSR",
	mtio.MTBSR: "MTBSR", mtio.MTWEOF: "MTWEOF", mtio.MTREW: "MTREW", mtio.MTOFFL: "MTOFFL",
	mtio.MTNOP: "MTNOP", mtio.MTRETEN: "MTRETEN", mtio.MTBSFM: "MTBSFM", mtio.MTFSFM: "MTFSFM",
	mtio.MTEOM: "MTEOM", mtio.MTERASE: "MTERASE", mtio.MTSETBLK: "MTSETBLK",
	mtio.MTSETDENSITY: "MTSETDENSITY", mtio.MTSEEK: "MTSEEK", mtio.MTTELL: "MTTELL",
	mtio.MTSETDRVBUFFER: "MTSETDRVBUFFER", mtio.MTLOCK: "MTLOCK", mtio.MTUNLOCK: "MTUNLOCK",
	mtio.MTLOAD: "MTLOAD", mtio.MTUNLOAD: "MTUNLOAD", mtio.MTCOMPRESSION: "MTCOMPRESSION",
	mtio.MTSETPART: "MTSETPART", mtio.MTMKPART: "MTMKPART", mtio.MTWSM: "MTWSM",
}

// OpCount returns how many MTIOCTOP calls with operation op the drive has
// received (MTRESET included, so a test can check it never came).
func (d *Drive) OpCount(op int16) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ops[op]
}

// WriteCount returns how many write(2) calls reached the drive, failed
// ones included.
func (d *Drive) WriteCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.writes
}

// Open opens the drive in memory: dev is NST0 or ST0, flags the open(2)
// flags that matter to st (O_RDONLY/O_RDWR/O_WRONLY, O_NONBLOCK). Errors
// are syscall.Errno: EBUSY when open already, ENOMEDIUM without a loaded
// cartridge (unless O_NONBLOCK), EROFS for a write-protected cartridge
// opened for writing (unless O_NONBLOCK).
func (d *Drive) Open(dev string, flags int) (*Handle, error) {
	h, e := d.open(dev, flags, 0)
	if e != 0 {
		return nil, e
	}
	return h, nil
}

func (d *Drive) open(dev string, flags int, owner int) (*Handle, syscall.Errno) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if dev != NST0 && dev != ST0 {
		return nil, syscall.ENXIO
	}
	d.opens = append(d.opens, flags&syscall.O_ACCMODE)
	if d.shutdown {
		return nil, syscall.ENXIO
	}
	if d.cur != nil && d.cur.flushed {
		// Closed by its opener, its release on the way (FUSE sends it
		// after close(2) returns): wait for it a little.
		d.waitLocked(5*time.Second, func() bool { return d.cur == nil || !d.cur.flushed })
	}
	if d.cur != nil {
		return nil, syscall.EBUSY
	}
	nonblock := flags&syscall.O_NONBLOCK != 0
	acc := flags & syscall.O_ACCMODE
	loaded := d.cart != nil && d.threaded
	if !loaded && !nonblock {
		return nil, syscall.ENOMEDIUM
	}
	if loaded && d.cart.writeProtected && acc != syscall.O_RDONLY && !nonblock {
		return nil, syscall.EROFS
	}
	h := &Handle{d: d, dev: dev, owner: owner, rdonly: acc == syscall.O_RDONLY}
	d.cur = h
	d.ready = loaded
	d.posUnknown = false
	d.writeProt = acc == syscall.O_RDONLY || loaded && d.cart.writeProtected
	d.rewAtClose = dev == ST0
	d.rw = rwIdle
	if !loaded {
		d.blockSize = 0
		d.file, d.block = -1, -1
	}
	return h, 0
}

// handleLocked checks that h is the open handle.
func (d *Drive) handleLocked(h *Handle) syscall.Errno {
	if h.closed || d.cur != h {
		return syscall.EBADF
	}
	h.flushed = false // still in use through another descriptor
	return 0
}

// rwCheckLocked is st's rw_checks.
func (d *Drive) rwCheckLocked() syscall.Errno {
	if !d.ready {
		return syscall.ENOMEDIUM
	}
	if d.posUnknown {
		return syscall.EIO
	}
	return 0
}

func (d *Drive) truncateLocked(at int) {
	c := d.cart
	if at >= len(c.objects) {
		return
	}
	for _, o := range c.objects[at:] {
		c.used -= int64(o.Size)
	}
	clear(c.objects[at:])
	c.objects = c.objects[:at]
}

// Write writes one record, as write(2) on the open device.
func (h *Handle) Write(p []byte) (int, error) {
	n, e := h.d.write(h, p)
	if e != 0 {
		return n, e
	}
	return n, nil
}

func (d *Drive) write(h *Handle, p []byte) (int, syscall.Errno) {
	n, e := d.writeRecord(h, p)
	if n > 0 && d.opts.Rate > 0 {
		d.pace(n)
	}
	return n, e
}

// rateBuffer is the drive's buffer with Options.Rate: writes return at
// once while it has room, and it drains at Rate (LTO drives have 1 GiB or
// more; this one is smaller). It also absorbs late wake-ups of the writer.
const rateBuffer = 64 << 20

// Starved is, with Options.Rate, the time the drive's buffer was empty
// between two records of a stream (no operation between them): the time a
// real drive would have stopped and repositioned for want of data.
func (d *Drive) Starved() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.starved
}

// pace holds a write of n bytes until a drive streaming at Options.Rate
// has room for it in its buffer. busyUntil is when the buffer will be
// empty; a writer that pauses lets it empty and does not bank speed it
// did not use.
func (d *Drive) pace(n int) {
	d.mu.Lock()
	now := time.Now()
	if d.busyUntil.Before(now) {
		if d.paced {
			d.starved += now.Sub(d.busyUntil) // the buffer ran dry between two records
		}
		d.busyUntil = now
	}
	d.paced = true
	d.busyUntil = d.busyUntil.Add(time.Duration(int64(n) * int64(time.Second) / d.opts.Rate))
	until := d.busyUntil.Add(-time.Duration(rateBuffer * int64(time.Second) / d.opts.Rate))
	d.mu.Unlock()
	time.Sleep(time.Until(until))
}

func (d *Drive) writeRecord(h *Handle, p []byte) (int, syscall.Errno) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.writes++
	for d.stalled && !d.shutdown {
		d.stalledWriters++
		d.cond.Broadcast() // for WaitStalled
		d.cond.Wait()
		d.stalledWriters--
	}
	if d.shutdown {
		return 0, syscall.EIO
	}
	if e := d.handleLocked(h); e != 0 {
		return 0, e
	}
	if e := d.rwCheckLocked(); e != 0 {
		return 0, e
	}
	if len(p) == 0 {
		return 0, 0
	}
	if d.blockSize != 0 || len(p) > maxBlock {
		return 0, syscall.EINVAL
	}
	if d.writeProt {
		return 0, syscall.EACCES
	}
	switch d.eof {
	case stEOMOK:
		d.eof = stEOD1 // the next write is let through
		return 0, syscall.ENOSPC
	case stEOMError:
		return 0, syscall.EIO
	}
	// st marks the drive as writing before it tries (st_write), so a
	// write that fails still leaves a filemark to be written at close or
	// before motion, unless something clears it (any MTIOCTOP but MTNOP).
	d.rw = rwWriting
	if e, bad := d.faults[d.pos]; bad {
		d.block = -1
		return 0, e
	}
	c := d.cart
	d.truncateLocked(d.pos)
	if c.used+int64(len(p)) > c.capacity { // VOLUME OVERFLOW: nothing written
		d.eof = stEOMOK
		return 0, syscall.ENOSPC
	}
	o := Object{Size: len(p)}
	if !d.opts.Discard || d.file == 0 || len(p) <= discardKeeps {
		o.Data = slices.Clone(p)
	}
	c.objects = append(c.objects, o)
	c.used += int64(len(p))
	d.pos++
	if d.block >= 0 {
		d.block++
	}
	switch {
	case c.used > c.capacity-c.earlyWarning, d.eof == stEOD1:
		d.eof = stEOMOK
	default:
		d.eof = stNoEOF
	}
	return len(p), 0
}

// Read reads one record into p, as read(2) on the open device: 0 bytes at
// a filemark, ENOMEM (having moved past the record) when p is too small.
func (h *Handle) Read(p []byte) (int, error) {
	n, e := h.d.read(h, p)
	if e != 0 {
		return n, e
	}
	return n, nil
}

func (d *Drive) read(h *Handle, p []byte) (int, syscall.Errno) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.handleLocked(h); e != 0 {
		return 0, e
	}
	if e := d.rwCheckLocked(); e != 0 {
		return 0, e
	}
	if d.blockSize != 0 {
		return 0, syscall.EINVAL
	}
	if len(p) == 0 {
		return 0, 0
	}
	if d.eof >= stEOD1 {
		if d.eof < stEOD {
			d.eof++
			return 0, 0
		}
		return 0, syscall.EIO
	}
	d.rw = rwReading
	c := d.cart
	if d.pos >= len(c.objects) { // blank tape
		d.block = -1
		if d.eof == stFM { // the second 0-byte read: end of data
			d.eof = stEOD
			return 0, 0
		}
		return 0, syscall.EIO
	}
	if e, bad := d.faults[d.pos]; bad {
		d.block = -1
		return 0, e
	}
	o := c.objects[d.pos]
	d.pos++
	if o.Filemark {
		d.eof = stFM
		d.block = 0
		if d.file >= 0 {
			d.file++
		}
		return 0, 0
	}
	if d.block >= 0 {
		d.block++
	}
	if len(p) < o.Size {
		return 0, syscall.ENOMEM
	}
	if d.eof == stFM {
		d.eof = stNoEOF
	}
	if o.Data == nil {
		clear(p[:o.Size])
		return o.Size, 0
	}
	return copy(p, o.Data), 0
}

// Op performs an MTIOCTOP operation (MTFSF, MTREW, MTSEEK, ...).
func (h *Handle) Op(op int16, count int32) error {
	if e := h.d.op(h, op, count); e != 0 {
		return e
	}
	return nil
}

func (d *Drive) op(h *Handle, op int16, count int32) syscall.Errno {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ops[op]++
	d.paced = false // a filemark, a rewind, a seek: the stream of records ends
	entry := fmt.Sprintf("%s %d", OpName(op), count)
	e := d.opLocked(h, op, count)
	if e != 0 {
		entry += " " + errnoName(e)
	}
	d.trace = append(d.trace, entry)
	return e
}

func errnoName(e syscall.Errno) string {
	switch e {
	case syscall.EIO:
		return "EIO"
	case syscall.ENOMEDIUM:
		return "ENOMEDIUM"
	case syscall.EINVAL:
		return "EINVAL"
	case syscall.EACCES:
		return "EACCES"
	case syscall.ENOSYS:
		return "ENOSYS"
	}
	return e.Error()
}

// injectedLocked applies a fault set by FailOp to this call of op.
func (d *Drive) injectedLocked(op int16, count int32) syscall.Errno {
	e, bad := d.opFaults[op][d.ops[op]]
	if !bad {
		return 0
	}
	delete(d.opFaults[op], d.ops[op])
	if op == mtio.MTSEEK && d.cart != nil {
		// The locate stopped on its way.
		target := min(int(count), len(d.cart.objects))
		d.pos += (target - d.pos) / 2
	}
	d.file, d.block = -1, -1
	d.eof = stNoEOF
	d.rw = rwIdle
	return e
}

func (d *Drive) opLocked(h *Handle, op int16, count int32) syscall.Errno {
	if e := d.handleLocked(h); e != 0 {
		return e
	}
	if count < 0 && op != mtio.MTMKPART {
		return syscall.EINVAL
	}
	switch op {
	case mtio.MTSETDRVBUFFER:
		switch uint32(count) & stOptionMask {
		case mtio.MTSTBOOLEANS:
			d.scsi2logical = count&mtio.MTSTSCSI2LOGICAL != 0
		case mtio.MTSTSETBOOLEANS:
			if count&mtio.MTSTSCSI2LOGICAL != 0 {
				d.scsi2logical = true
			}
		}
		return 0
	case mtio.MTLOAD:
		return d.loadLocked(h)
	case mtio.MTOFFL, mtio.MTUNLOAD:
		if d.rw == rwWriting && d.ready && !d.posUnknown {
			d.weofLocked(1)
		}
		return d.unloadLocked()
	case mtio.MTLOCK, mtio.MTUNLOCK:
		return 0
	}
	if d.posUnknown {
		switch op {
		case mtio.MTREW, mtio.MTRETEN, mtio.MTERASE, mtio.MTSEEK, mtio.MTEOM:
			d.posUnknown = false
			d.ready = d.cart != nil && d.threaded
			if !d.ready {
				return syscall.ENOMEDIUM
			}
			d.writeProt = h.rdonly || d.cart.writeProtected
			d.rewindLocked()
		default:
			return syscall.EIO
		}
	}
	if !d.ready {
		return syscall.ENOMEDIUM
	}
	if e := d.injectedLocked(op, count); e != 0 {
		return e
	}
	// st writes a filemark before moving away from data just written.
	if d.rw == rwWriting {
		switch op {
		case mtio.MTREW, mtio.MTSEEK, mtio.MTBSF, mtio.MTBSFM:
			d.weofLocked(1)
			if op == mtio.MTBSF || op == mtio.MTBSFM {
				count++
			}
		}
	}
	switch op {
	case mtio.MTNOP, mtio.MTSETBLK, mtio.MTSETDENSITY, mtio.MTWSM, mtio.MTSETPART:
	default:
		d.rw = rwIdle
	}
	switch op {
	case mtio.MTNOP, mtio.MTCOMPRESSION, mtio.MTSETDENSITY:
		return 0
	case mtio.MTREW, mtio.MTRETEN:
		d.rewindLocked()
		return 0
	case mtio.MTWEOF:
		if d.writeProt {
			return syscall.EACCES
		}
		d.weofLocked(int(count))
		return 0
	case mtio.MTFSF:
		return d.fsfLocked(int(count))
	case mtio.MTBSF:
		return d.bsfLocked(int(count))
	case mtio.MTFSFM:
		if e := d.fsfLocked(int(count)); e != 0 {
			return e
		}
		return d.bsfLocked(1)
	case mtio.MTBSFM:
		if e := d.bsfLocked(int(count)); e != 0 {
			return e
		}
		return d.fsfLocked(1)
	case mtio.MTFSR:
		return d.fsrLocked(int(count))
	case mtio.MTBSR:
		return d.bsrLocked(int(count))
	case mtio.MTEOM:
		d.fsfLocked(1 << 23)
		return 0
	case mtio.MTERASE:
		if d.writeProt {
			return syscall.EACCES
		}
		d.truncateLocked(d.pos)
		d.eof = stNoEOF
		return 0
	case mtio.MTSEEK:
		return d.seekLocked(int(count))
	case mtio.MTSETBLK:
		d.blockSize = int64(count) & mtio.MTSTBLKSIZEMASK
		return 0
	}
	return syscall.ENOSYS // MTRESET and everything st does not do
}

func (d *Drive) rewindLocked() {
	d.pos, d.file, d.block, d.eof = 0, 0, 0, stNoEOF
}

func (d *Drive) weofLocked(n int) {
	c := d.cart
	d.truncateLocked(d.pos)
	for range n {
		c.objects = append(c.objects, Object{Filemark: true})
		d.pos++
	}
	if d.file >= 0 {
		d.file += int64(n)
	}
	d.block = 0
	d.eof = stNoEOF
	d.rw = rwIdle
}

func (d *Drive) fsfLocked(n int) syscall.Errno {
	objs := d.cart.objects
	found, p := 0, d.pos
	for found < n && p < len(objs) {
		if objs[p].Filemark {
			found++
		}
		p++
	}
	d.pos = p
	if d.file >= 0 {
		d.file += int64(found)
	}
	if found == n {
		d.block = 0
		d.eof = stFM
		return 0
	}
	d.block = -1 // ran into blank tape
	d.eof = stEOD
	return syscall.EIO
}

func (d *Drive) bsfLocked(n int) syscall.Errno {
	objs := d.cart.objects
	found, p := 0, d.pos
	for found < n && p > 0 {
		p--
		if objs[p].Filemark {
			found++
		}
	}
	d.eof = stNoEOF
	if d.file >= 0 {
		d.file -= int64(found)
	}
	if found == n { // before the filemark: at the end of the file
		d.pos = p
		d.block = -1
		return 0
	}
	d.pos, d.block = 0, 0 // hit the beginning
	return syscall.EIO
}

func (d *Drive) fsrLocked(n int) syscall.Errno {
	objs := d.cart.objects
	for moved := 0; moved < n; moved++ {
		switch {
		case d.pos >= len(objs):
			d.block = -1
			d.eof = stEOD
			return syscall.EIO
		case objs[d.pos].Filemark:
			d.pos++
			if d.file >= 0 {
				d.file++
			}
			d.block = 0
			d.eof = stFM
			return syscall.EIO
		}
		d.pos++
		if d.block >= 0 {
			d.block++
		}
	}
	d.eof = stNoEOF
	return 0
}

func (d *Drive) bsrLocked(n int) syscall.Errno {
	objs := d.cart.objects
	d.eof = stNoEOF
	for moved := 0; moved < n; moved++ {
		switch {
		case d.pos == 0:
			return syscall.EIO
		case objs[d.pos-1].Filemark: // stop on the beginning side of it
			d.pos--
			if d.file >= 0 {
				d.file--
			}
			d.block = -1
			return syscall.EIO
		}
		d.pos--
		if d.block > 0 {
			d.block--
		}
	}
	return 0
}

func (d *Drive) seekLocked(n int) syscall.Errno {
	if d.noLocate {
		return syscall.EIO
	}
	d.file, d.block = -1, -1
	d.eof = stNoEOF
	if n > len(d.cart.objects) {
		d.pos = len(d.cart.objects)
		return syscall.EIO
	}
	d.pos = n
	if n == 0 {
		d.file, d.block = 0, 0
	}
	return 0
}

func (d *Drive) loadLocked(h *Handle) syscall.Errno {
	if d.cart == nil {
		return syscall.EIO // LOAD with an empty drive: NOT READY
	}
	if !d.threaded {
		d.threaded = true
		d.pos, d.file, d.block = 0, 0, 0
	}
	d.rewindLocked()
	d.rw = rwIdle
	d.ready = true
	d.posUnknown = false
	d.writeProt = h.rdonly || d.cart.writeProtected
	d.rewAtClose = h.dev == ST0
	return 0
}

func (d *Drive) unloadLocked() syscall.Errno {
	d.ready = false
	d.posUnknown = false
	d.rewAtClose = false
	d.rw = rwIdle
	d.eof = stNoEOF
	d.file, d.block = -1, -1
	if d.cart == nil || !d.threaded {
		return syscall.EIO
	}
	d.threaded = false
	d.pos = 0
	return 0
}

// Status returns what MTIOCGET reports.
func (h *Handle) Status() (mtio.MtGet, error) {
	g, e := h.d.status(h)
	if e != 0 {
		return g, e
	}
	return g, nil
}

func (d *Drive) status(h *Handle) (mtio.MtGet, syscall.Errno) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.handleLocked(h); e != 0 {
		return mtio.MtGet{}, e
	}
	g := mtio.MtGet{Type: mtISSCSI2, FileNo: int32(d.file), BlkNo: int32(d.block)}
	if d.posUnknown {
		g.FileNo, g.BlkNo = -1, -1
	}
	var gs int64 = gmtImRepEn
	if d.ready {
		g.DsReg = d.blockSize&mtio.MTSTBLKSIZEMASK | densityLTO6<<mtio.MTSTDENSITYSHIFT
		gs |= gmtOnline
		if d.cart != nil && d.cart.writeProtected && !d.posUnknown {
			gs |= gmtWrProt
		}
		if g.BlkNo == 0 {
			if g.FileNo == 0 {
				gs |= gmtBOT
			} else {
				gs |= gmtEOF
			}
		}
		switch {
		case d.eof == stEOMOK || d.eof == stEOMError:
			gs |= gmtEOT
		case d.eof > stEOMOK:
			gs |= gmtEOD
		}
	} else {
		gs |= gmtDrOpen
	}
	g.GStat = gs
	return g, 0
}

// Pos returns what MTIOCPOS reports: the logical object number, where
// every record and every filemark counts one.
func (h *Handle) Pos() (int64, error) {
	p, e := h.d.position(h)
	if e != 0 {
		return p, e
	}
	return p, nil
}

func (d *Drive) position(h *Handle) (int64, syscall.Errno) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.handleLocked(h); e != 0 {
		return 0, e
	}
	if !d.ready || d.posUnknown || d.noLocate || d.noPos {
		return 0, syscall.EIO
	}
	return int64(d.pos), 0
}

// Close closes the handle as close(2) does on st: a filemark after
// writing, then a rewind on st0. Closing twice is EBADF.
func (h *Handle) Close() error {
	if e := h.d.closeHandle(h); e != 0 {
		return e
	}
	return nil
}

func (d *Drive) closeHandle(h *Handle) syscall.Errno {
	d.mu.Lock()
	defer d.mu.Unlock()
	if h.closed {
		return syscall.EBADF
	}
	d.flushLocked(h)
	d.releaseLocked(h)
	return 0
}

// flushLocked is st_flush, run by close(2): a filemark after writing. The
// rewind of st0 waits for the release (the last close), because a process
// may close one of several descriptors of the same open file (dd does: it
// dup2()s its input onto stdin and closes the original).
func (d *Drive) flushLocked(h *Handle) {
	if h.closed || d.cur != h {
		return
	}
	if d.ready && !d.posUnknown && d.rw == rwWriting {
		d.weofLocked(1)
		d.eof = stFM
	}
	h.flushed = true
}

// releaseLocked is st_release: the last close of the open file.
func (d *Drive) releaseLocked(h *Handle) {
	if h.closed {
		return
	}
	h.closed = true
	if d.cur != h {
		return
	}
	if d.ready && !d.posUnknown {
		if d.rw == rwWriting {
			d.weofLocked(1)
			d.eof = stFM
		}
		if d.rewAtClose {
			d.rewindLocked()
		}
	}
	d.rw = rwIdle
	d.cur = nil
	d.cond.Broadcast()
}

// Name returns the cartridge's name (its barcode).
func (c *Cartridge) Name() string { return c.name }

// Objects returns what is on the cartridge, in order. The records share
// memory with the cartridge: do not modify them.
func (c *Cartridge) Objects() []Object {
	c.d.mu.Lock()
	defer c.d.mu.Unlock()
	return slices.Clone(c.objects)
}

// Records returns the records of tape file n (0 is the first), nil if the
// cartridge has no such file. The last file may lack its filemark. With
// Options.Discard the records are nil: use Objects for their sizes.
func (c *Cartridge) Records(n int) [][]byte {
	c.d.mu.Lock()
	defer c.d.mu.Unlock()
	file := 0
	var out [][]byte
	for _, o := range c.objects {
		if o.Filemark {
			if file == n {
				if out == nil {
					out = [][]byte{}
				}
				return out
			}
			file++
			continue
		}
		if file == n {
			out = append(out, o.Data)
		}
	}
	return out
}

// Used returns the record bytes on the cartridge.
func (c *Cartridge) Used() int64 {
	c.d.mu.Lock()
	defer c.d.mu.Unlock()
	return c.used
}

// SetCapacity changes the capacity and the early-warning distance.
func (c *Cartridge) SetCapacity(capacity, earlyWarning int64) error {
	if capacity <= 0 || earlyWarning < 0 || earlyWarning >= capacity {
		return fmt.Errorf("fakest: cartridge %s: capacity %d and early warning %d: want 0 <= early warning < capacity", c.name, capacity, earlyWarning)
	}
	c.d.mu.Lock()
	c.capacity, c.earlyWarning = capacity, earlyWarning
	c.d.mu.Unlock()
	return nil
}

// SetWriteProtected moves the cartridge's write-protect tab. Like a real
// tab, it takes effect when the cartridge is next opened or loaded.
func (c *Cartridge) SetWriteProtected(on bool) {
	c.d.mu.Lock()
	c.writeProtected = on
	c.d.mu.Unlock()
}
