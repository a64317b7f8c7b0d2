package config

import (
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// DefaultClientPort is the TCP port of the client agent, used for hosts
// without an address.
const DefaultClientPort = 10080

// Config is a loaded, defaulted and validated configuration. Load and Parse
// fill every default, so a caller never has to; all paths are absolute.
type Config struct {
	File string `toml:"-"` // absolute path of the file loaded
	Dir  string `toml:"-"` // its directory; relative paths below are resolved against it

	Org      string   `toml:"org"`      // default "tapir"; used in the report subject and labels
	Mailto   []string `toml:"mailto"`   // report recipients
	StateDir string   `toml:"statedir"` // default "/var/lib/tapir/<org>"
	// Catalog is where the catalog is: a file (default
	// "<statedir>/catalog.db") or a postgres:// DSN. The file has either
	// catalog = "…" or a [catalog] table (url or path, password_file),
	// read by the finisher (finish.go: catalogTable).
	Catalog      string `toml:"-"`
	ReportDir    string `toml:"reportdir"`    // default "<statedir>/reports"
	Dumpcycle    int    `toml:"dumpcycle"`    // days, default 7
	Runspercycle int    `toml:"runspercycle"` // default = dumpcycle
	Tapecycle    int    `toml:"tapecycle"`    // default 10
	Runtapes     int    `toml:"runtapes"`     // default 1
	Inparallel   int    `toml:"inparallel"`   // default 10, 1..1000
	Maxdumps     int    `toml:"maxdumps"`     // per host, default 1
	Netusage     Size   `toml:"netusage"`     // bytes/s across all streams, 0 = unlimited
	Retries      int    `toml:"retries"`      // a failed dump is tried again this many times, default 1
	// A dump whose stream is cut resumes after its last frame on the
	// holding disk, at most ResumeAttempts times (default 3, 0: never),
	// reconnecting for at most ResumeWindow after each cut (default 30m);
	// past either it fails and is retried from zero (Retries).
	ResumeAttempts int      `toml:"resume_attempts"`
	ResumeWindow   Duration `toml:"resume_window"`

	// The planner (docs/format/planner.md).
	Bumpsize      Size     `toml:"bumpsize"`       // default 10 MiB
	Bumppercent   float64  `toml:"bumppercent"`    // percent of the full, 0 = use bumpsize
	Bumpdays      int      `toml:"bumpdays"`       // default 2
	Bumpmult      float64  `toml:"bumpmult"`       // default 1.5
	Maxpromoteday int      `toml:"maxpromoteday"`  // default 10000
	CompRatio     float64  `toml:"comp_ratio"`     // assumed compressed/tar for DLEs without history, default 0.5
	FutilePercent float64  `toml:"futile_percent"` // an incremental this big (% of the full) is not worth it, default 90
	Dtimeout      Duration `toml:"dtimeout"`       // dump progress timeout, default 30m
	Etimeout      Duration `toml:"etimeout"`       // estimate progress timeout, default 5m
	Schedule      string   `toml:"schedule"`       // cron expression, default "0 1 * * *"
	Timezone      string   `toml:"timezone"`       // default "Local"
	Autoflush     bool     `toml:"autoflush"`      // default false
	Eject         bool     `toml:"eject"`          // default false
	// TapeWholeImages makes the taper start an image only once it is
	// whole on the holding disk (its tape header then carries its size
	// and SHA-256); by default it may start one while it is dumped.
	TapeWholeImages bool   `toml:"tape_whole_images"`
	Reserve         int    `toml:"reserve"`   // percent of holding kept for incrementals, default 100
	Labelstr        string `toml:"labelstr"`  // regexp, default "^<org>-[0-9]{3}$"
	Autolabel       string `toml:"autolabel"` // template, default "<org>-%%%"; "" = never label
	// AutolabelMedia says which volumes besides blank ones autolabel may
	// take: "blank" (default), "other-config" (a tapir label of another
	// configuration, or one labelstr does not match), "non-tapir" (another
	// program's data), "unreadable", or "any".
	AutolabelMedia []string `toml:"autolabel_media"`

	TLS       TLS                 `toml:"tls"`
	Mail      Mail                `toml:"mail"`
	Server    Server              `toml:"server"`
	Changer   Changer             `toml:"changer"`
	Tapetypes map[string]Tapetype `toml:"tapetype"`
	Holding   []Holding           `toml:"holding"`
	Dumptypes map[string]Dumptype `toml:"dumptype"`
	Hosts     map[string]Host     `toml:"host"`
	DLEs      []DLE               `toml:"dle"`
	// Vaults are the offsite copy sets (tapir vault, docs/guide.md
	// "Offsite copies"): one [vault] table, or several [[vault]] tables
	// (each its own name, changer and labels); none without. Parse
	// decodes them itself (a table or an array of tables).
	Vaults []Vault `toml:"-"`

	loc     *time.Location
	labelRe *regexp.Regexp
}

// Vault describes a second set of volumes that `tapir vault` copies
// images onto (Amanda's amvault): its own changer and labels, never the
// labels of [changer].
type Vault struct {
	Name       string  `toml:"name"`      // what `tapir vault --to` names; default "offsite"
	Changer    Changer `toml:"changer"`   // [vault.changer], as [changer]; disk path default "<statedir>/offsite"
	Labelstr   string  `toml:"labelstr"`  // default "^<org>-Offsite-[0-9]{3}$"
	Autolabel  string  `toml:"autolabel"` // default "<org>-Offsite-%%%"; "" = never label
	Tapecycle  int     `toml:"tapecycle"` // copy volumes written before one is reused, default tapecycle
	Runtapes   int     `toml:"runtapes"`  // copy volumes one vault may write, default 10
	FullsOnly  bool    `toml:"fulls_only"`
	SinceDays  int     `toml:"since_days"`  // copy only images of the last N days; 0 = all
	AfterNight bool    `toml:"after_night"` // run the vault after each night (tapir dump, tapir server)

	labelRe *regexp.Regexp
}

// VaultConfig returns the configuration vault writes its copy volumes
// with: this one with the vault's changer, labels, tapecycle and runtapes
// (and no vaults of its own).
func (c *Config) VaultConfig(vault *Vault) *Config {
	v := *c
	v.Changer = vault.Changer
	v.Labelstr, v.labelRe = vault.Labelstr, vault.labelRe
	v.Autolabel = vault.Autolabel
	v.AutolabelMedia = []string{ClaimBlank}
	v.Tapecycle, v.Runtapes = vault.Tapecycle, vault.Runtapes
	v.Vaults = nil
	return &v
}

// VaultNamed returns the vault called name; nil when there is none.
func (c *Config) VaultNamed(name string) *Vault {
	for i := range c.Vaults {
		if c.Vaults[i].Name == name {
			return &c.Vaults[i]
		}
	}
	return nil
}

// VaultNames lists the names of the vaults, in the file's order.
func (c *Config) VaultNames() []string {
	var out []string
	for _, v := range c.Vaults {
		out = append(out, v.Name)
	}
	return out
}

// LabelRegexp is the labelstr of the vault's copy volumes.
func (v *Vault) LabelRegexp() *regexp.Regexp { return v.labelRe }

// TLS names the server's certificate files.
type TLS struct {
	CA   string `toml:"ca"`   // default "<statedir>/tls/ca.crt"
	Cert string `toml:"cert"` // default "<statedir>/tls/server.crt"
	Key  string `toml:"key"`  // default "<statedir>/tls/server.key"
}

// Mail says how the run report is mailed to mailto (docs/format/report.md).
type Mail struct {
	Server       string   `toml:"server"`        // host:port, default "localhost:25"
	From         string   `toml:"from"`          // default "tapir@<this host>"
	StartTLS     string   `toml:"starttls"`      // "auto" (default), "always", "never"
	CA           string   `toml:"ca"`            // PEM file of the mail server's CA; "" = system roots
	Username     string   `toml:"username"`      // AUTH as this user; "" = no AUTH
	PasswordFile string   `toml:"password_file"` // required with username
	Timeout      Duration `toml:"timeout"`       // default 1m
	SendOn       string   `toml:"send_on"`       // "all" (default), "strange", "error", "never"
	AttachJSON   bool     `toml:"attach_json"`   // add the JSON report as a second part
}

// Server holds the settings of `tapir server`, the daemon.
type Server struct {
	IndexListen   string `toml:"index_listen"`   // the index and restore server, default ":10082"; "" = off
	MetricsListen string `toml:"metrics_listen"` // Prometheus metrics over HTTP, default "127.0.0.1:9233"; "" = off
	// Name names this tapir server among those sharing one catalog
	// (docs/guide: "Several servers, one catalog"); default the org.
	Name string `toml:"name"`
	// Advertise is the host:port where the other servers of the catalog
	// reach this server's index server to fetch frames of its volumes;
	// default index_listen with this machine's host name when it listens
	// on every address; "" when index_listen is off.
	Advertise string `toml:"advertise"`
}

// Changer describes how volumes are found.
type Changer struct {
	Type     string `toml:"type"`           // "disk" (default), "single", "robot"
	Path     string `toml:"path"`           // disk: directory holding slot directories; default "<statedir>/vtapes"
	Device   string `toml:"device"`         // single/robot: tape device, e.g. "/dev/nst0"
	Changer  string `toml:"changer_device"` // robot: media changer device, e.g. "/dev/sg3"
	Slots    int    `toml:"slots"`          // disk: number of slots, default 12; robot: the storage slots tapir may use, 0 (not written) = unknown (the library's count is used)
	Tapetype string `toml:"tapetype"`       // name in [tapetype.X]; default "default"
	// Tapers is how many drives a run writes at once, each its own
	// volume: disk, that many vtape drives over the slots; robot, the
	// drives drives[drive] .. drives[drive+tapers-1]; single, 1. Default 1.
	Tapers int `toml:"tapers"`

	// single: how a run waits for a person to insert a volume.
	Wait   Duration `toml:"wait"`   // how long a run waits for the volume it needs, default 0 (degraded at once)
	Poll   Duration `toml:"poll"`   // how often the drive is looked at while waiting, default 10s
	Remind Duration `toml:"remind"` // how often the request is repeated, default 30m

	// single, robot: the st driver options tapir sets at each open
	// (MTSETDRVBUFFER, driver-wide, outliving the process); default
	// ["scsi2logical"], [] = none.
	DriveOptions []string `toml:"drive_options"`

	// robot: the media changer through mtx.
	MTX             string   `toml:"mtx"`                // the mtx program, default "mtx"
	Drives          []string `toml:"drives"`             // the tape device of each drive, by mtx's drive number; default [device]
	Drive           int      `toml:"drive"`              // the first of them tapir uses (tapers from it), default 0
	StateFile       string   `toml:"state_file"`         // labels learned by barcode, default "<statedir>/changer-state.json"
	IgnoreBarcodes  bool     `toml:"ignore_barcodes"`    // no (trustworthy) barcode reader
	NoEjectToUnload bool     `toml:"no_eject_to_unload"` // the library takes the cartridge out of the drive by itself
}

// Tapetype describes a kind of volume.
type Tapetype struct {
	Length    Size `toml:"length"`    // capacity of one volume; built-in "default": 100 GiB
	Blocksize Size `toml:"blocksize"` // default 256 KiB, 32 KiB..1 MiB, multiple of 1 KiB
	// Speed is what the drive writes per second when fed: the taper
	// starts an image that is still being dumped once the holding disk
	// holds enough of it that the drive cannot catch up with the dumper.
	// Default 300 MiB, 1 MiB..100 GiB.
	Speed Size `toml:"speed"`
	// MinRate is the slowest a drive matches its speed to the data
	// without stopping (LTO's speed matching); 0: it does not. A dumper
	// at least this fast is taped from its first bytes; a slower one is
	// buffered on the holding disk first (Speed's rule). 0..Speed.
	MinRate Size `toml:"min_rate"`
}

// Holding is one holding disk.
type Holding struct {
	Path      string `toml:"path"`      // required
	Use       Size   `toml:"use"`       // bytes it may fill; 0 = no limit besides free space
	Chunksize Size   `toml:"chunksize"` // default 1 GiB, >= 1 MiB
}

// Dumptype is a named set of dump options.
type Dumptype struct {
	Compress      string   `toml:"compress"`       // "client-zstd" (default), "client-gzip", "server-zstd", "none"
	CompressLevel int      `toml:"compress_level"` // zstd 1..19 (default 1), gzip 1..9 (default 6), 0 for none
	FrameSize     Size     `toml:"frame_size"`     // default 1 MiB, 64 KiB..64 MiB
	Exclude       []string `toml:"exclude"`        // GNU tar style patterns
	ExcludeList   []string `toml:"exclude_list"`   // files of patterns, paths on the client
	Strategy      string   `toml:"strategy"`       // "standard" (default), "nofull", "noinc", "skip", "incronly"
	OneFilesystem *bool    `toml:"one_filesystem"` // default true; use OneFS
	Bandwidth     Size     `toml:"bandwidth"`      // bytes/s per stream, 0 = unlimited
	Priority      string   `toml:"priority"`       // "low", "medium" (default), "high"
	Holding       string   `toml:"holding"`        // "auto" (default): holding disk, straight to the volume when it does not fit; "never"; "required"
	// Encrypt is "client" (the agent encrypts; the server never sees the
	// plaintext), "server" (the server encrypts what the agent sends) or
	// "none". Default: "client" when recipients are given, else "none".
	Encrypt string `toml:"encrypt"`
	// Recipients are age recipients (age1…); RecipientFiles files of them
	// on the server (one per line, # comments; relative to the config
	// file's directory). Load reads the files.
	Recipients     []string `toml:"recipients"`
	RecipientFiles []string `toml:"recipient_files"`
	// AgeRecipients is what Load made of Recipients and RecipientFiles:
	// every recipient once, in order (empty when Encrypt is "none").
	AgeRecipients []string `toml:"-"`

	// Snapshot makes the source consistent: "none" (default: the live
	// tree), "btrfs", "lvm", "zfs" or "command". The agent makes the
	// snapshot right before the walk, dumps from it and removes it in
	// every case (docs/guide.md, "Consistent sources").
	Snapshot string `toml:"snapshot"`
	// SnapshotSize is the copy-on-write space of an LVM snapshot
	// (lvcreate -L "2G", or -l "20%ORIGIN"); required with lvm.
	SnapshotSize string `toml:"snapshot_size"`
	// SnapshotCreate and SnapshotRemove are the commands (argv, no shell)
	// of snapshot = "command", run on the client.
	SnapshotCreate []string `toml:"snapshot_create"`
	SnapshotRemove []string `toml:"snapshot_remove"`
	// Command makes the DLEs of this dumptype command DLEs: the image is
	// the standard output of this argv on the client (pg_dump -Fc db,
	// mysqldump, zfs send), full only (strategy noinc or skip).
	Command []string `toml:"command"`
	// RestoreCommand is what `tapir recover --whole` pipes a command DLE's
	// image into, on the machine that restores (pg_restore -d db); absent,
	// the image is written to a file.
	RestoreCommand []string `toml:"restore_command"`
	// Pre and Post run on the client around each dump of the DLE (argv,
	// no shell): Pre before the snapshot and the walk (its failure fails
	// the dump), Post after, in every case once Pre ran (its failure makes
	// the dump STRANGE). HookTimeout bounds each (default 5m).
	Pre         []string `toml:"pre"`
	Post        []string `toml:"post"`
	HookTimeout Duration `toml:"hook_timeout"`
}

// Snapshot kinds of Dumptype.Snapshot.
const (
	SnapshotNone    = "none"
	SnapshotBtrfs   = "btrfs"
	SnapshotLVM     = "lvm"
	SnapshotZFS     = "zfs"
	SnapshotCommand = "command"
)

// IsCommand says the DLEs of the dumptype are command DLEs.
func (d Dumptype) IsCommand() bool { return len(d.Command) > 0 }

// Encryption values of Dumptype.Encrypt.
const (
	EncryptNone   = "none"
	EncryptClient = "client"
	EncryptServer = "server"
)

// Encrypted says images of the dumptype are encrypted (by client or server).
func (d Dumptype) Encrypted() bool { return d.Encrypt == EncryptClient || d.Encrypt == EncryptServer }

// Host holds per-client settings.
type Host struct {
	Address string `toml:"address"` // host:port; default "<hostname>:10080"
}

// DLE is one disk-list entry.
type DLE struct {
	Host     string `toml:"host"`     // required; a DNS name (lower-cased by Load) or an IP address
	Path     string `toml:"path"`     // required, absolute and clean, on the client
	Dumptype string `toml:"dumptype"` // default "default"
	Line     int    `toml:"-"`        // line of the [[dle]] in the file, for later error messages
}

// Compression values of Dumptype.Compress.
const (
	CompressClientZstd = "client-zstd"
	CompressClientGzip = "client-gzip"
	CompressServerZstd = "server-zstd"
	CompressNone       = "none"
)

// DefaultSpeed is the drive rate of a tapetype that names none: about an
// LTO-9 writing uncompressible data.
const DefaultSpeed = 300 * MiB

// DefaultTapetype returns the built-in tapetype "default".
func DefaultTapetype() Tapetype {
	return Tapetype{Length: 100 * GiB, Blocksize: 256 * KiB, Speed: DefaultSpeed}
}

// DefaultDumptype returns the built-in dumptype "default".
func DefaultDumptype() Dumptype {
	t := true
	return Dumptype{
		Compress:      CompressClientZstd,
		CompressLevel: 1,
		FrameSize:     MiB,
		Strategy:      "standard",
		OneFilesystem: &t,
		Priority:      "medium",
		Holding:       "auto",
		Encrypt:       EncryptNone,
		Snapshot:      SnapshotNone,
		HookTimeout:   Duration(5 * time.Minute),
	}
}

// OneFS reports whether the dump stays on one filesystem (default true).
func (d Dumptype) OneFS() bool { return d.OneFilesystem == nil || *d.OneFilesystem }

// Tapetype returns the tapetype named by the changer (the built-in default
// when the name is unknown, which Load never allows).
func (c *Config) Tapetype() Tapetype {
	if t, ok := c.Tapetypes[c.Changer.Tapetype]; ok {
		return t
	}
	return DefaultTapetype()
}

// Dumptype returns the dumptype of d ("default" when d names none).
func (c *Config) Dumptype(d DLE) Dumptype {
	name := d.Dumptype
	if name == "" {
		name = "default"
	}
	if t, ok := c.Dumptypes[name]; ok {
		return t
	}
	if t, ok := c.Dumptypes["default"]; ok {
		return t
	}
	return DefaultDumptype()
}

// HostAddress returns the host:port of the client agent on host.
func (c *Config) HostAddress(host string) string {
	if h, ok := c.Hosts[host]; ok && h.Address != "" {
		return h.Address
	}
	if h, ok := c.Hosts[strings.ToLower(host)]; ok && h.Address != "" {
		return h.Address
	}
	return net.JoinHostPort(host, strconv.Itoa(DefaultClientPort))
}

// Location returns the time zone of the schedule and the datestamps. For a
// Config not made by Load or Parse it loads Timezone, falling back to
// time.Local.
func (c *Config) Location() *time.Location {
	if c.loc != nil {
		return c.loc
	}
	if c.Timezone != "" {
		if l, err := time.LoadLocation(c.Timezone); err == nil {
			return l
		}
	}
	return time.Local
}

// LabelRegexp returns the compiled labelstr. For a Config not made by Load
// or Parse with an invalid labelstr it returns a regexp matching nothing.
func (c *Config) LabelRegexp() *regexp.Regexp {
	if c.labelRe != nil {
		return c.labelRe
	}
	if re, err := regexp.Compile(c.Labelstr); err == nil {
		return re
	}
	return regexp.MustCompile(`[^\x00-\x{10FFFF}]`)
}

// What autolabel_media may name.
const (
	ClaimBlank       = "blank"
	ClaimOtherConfig = "other-config"
	ClaimNonTapir    = "non-tapir"
	ClaimUnreadable  = "unreadable"
	ClaimAny         = "any"
)

// Claims reports whether autolabel may take a volume of this kind.
func (c *Config) Claims(kind string) bool {
	for _, k := range c.AutolabelMedia {
		if k == kind || k == ClaimAny {
			return true
		}
	}
	return false
}

// AutolabelFor fills the autolabel template with counter n: every run of %
// becomes n in decimal, zero-padded to the length of the run ("tapir-%%%"
// with 7 gives "tapir-007"). It returns "" when autolabel is disabled.
func (c *Config) AutolabelFor(n int) string {
	return fillTemplate(c.Autolabel, n)
}

func fillTemplate(t string, n int) string {
	var b strings.Builder
	for i := 0; i < len(t); {
		if t[i] != '%' {
			b.WriteByte(t[i])
			i++
			continue
		}
		j := i
		for j < len(t) && t[j] == '%' {
			j++
		}
		s := strconv.Itoa(n)
		if n >= 0 {
			for len(s) < j-i {
				s = "0" + s
			}
		}
		b.WriteString(s)
		i = j
	}
	return b.String()
}
