package config

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Effective writes the configuration with every default filled in, as TOML
// that Load accepts again and that yields the same Config.
//
// It is written by hand rather than with toml.Encoder: the encoder would
// write keys that Load rejects because they have no meaning in context
// (compress_level with compress = "none", the robot's keys for a disk
// changer, password_file without username), and would let a path that is
// not valid UTF-8 through; TestEffectiveRoundTrip holds both to account.
func (c *Config) Effective(w io.Writer) error {
	e := &tomlWriter{w: bufio.NewWriter(w)}
	e.comment("tapir effective configuration: every default filled in, every path absolute")
	if c.File != "" {
		e.comment("loaded from " + c.File)
	}
	e.str("org", c.Org)
	e.strs("mailto", c.Mailto)
	e.str("statedir", c.StateDir)
	if m := MaskDSN(c.Catalog); m != c.Catalog {
		e.comment("the catalog DSN's password is shown as xxxxx")
		e.str("catalog", m)
	} else {
		e.str("catalog", c.Catalog)
	}
	e.str("reportdir", c.ReportDir)
	e.int("dumpcycle", c.Dumpcycle)
	e.int("runspercycle", c.Runspercycle)
	e.int("tapecycle", c.Tapecycle)
	e.int("runtapes", c.Runtapes)
	e.int("inparallel", c.Inparallel)
	e.int("maxdumps", c.Maxdumps)
	e.size("netusage", c.Netusage)
	e.int("retries", c.Retries)
	e.int("resume_attempts", c.ResumeAttempts)
	e.str("resume_window", c.ResumeWindow.String())
	e.size("bumpsize", c.Bumpsize)
	e.float("bumppercent", c.Bumppercent)
	e.int("bumpdays", c.Bumpdays)
	e.float("bumpmult", c.Bumpmult)
	e.int("maxpromoteday", c.Maxpromoteday)
	e.float("comp_ratio", c.CompRatio)
	e.float("futile_percent", c.FutilePercent)
	e.str("dtimeout", c.Dtimeout.String())
	e.str("etimeout", c.Etimeout.String())
	e.str("schedule", c.Schedule)
	e.str("timezone", c.Timezone)
	e.bool("autoflush", c.Autoflush)
	e.bool("eject", c.Eject)
	e.bool("tape_whole_images", c.TapeWholeImages)
	e.int("reserve", c.Reserve)
	e.str("labelstr", c.Labelstr)
	e.str("autolabel", c.Autolabel)
	e.strs("autolabel_media", c.AutolabelMedia)

	e.table("[tls]")
	e.str("ca", c.TLS.CA)
	e.str("cert", c.TLS.Cert)
	e.str("key", c.TLS.Key)

	e.table("[mail]")
	e.str("server", c.Mail.Server)
	if c.Mail.From != "" {
		e.str("from", c.Mail.From)
	}
	e.str("starttls", c.Mail.StartTLS)
	if c.Mail.CA != "" {
		e.str("ca", c.Mail.CA)
	}
	if c.Mail.Username != "" {
		e.str("username", c.Mail.Username)
		e.str("password_file", c.Mail.PasswordFile)
	}
	e.str("timeout", c.Mail.Timeout.String())
	e.str("send_on", c.Mail.SendOn)
	e.bool("attach_json", c.Mail.AttachJSON)

	e.table("[server]")
	e.str("index_listen", c.Server.IndexListen)
	e.str("metrics_listen", c.Server.MetricsListen)
	e.str("name", c.Server.Name)
	e.str("advertise", c.Server.Advertise)

	e.changer("[changer]", c.Changer)

	// One vault is written as [vault], several as [[vault]] tables (each
	// followed by its [vault.changer]).
	head := "[vault]"
	if len(c.Vaults) > 1 {
		head = "[[vault]]"
	}
	for _, v := range c.Vaults {
		e.table(head)
		e.str("name", v.Name)
		e.str("labelstr", v.Labelstr)
		e.str("autolabel", v.Autolabel)
		e.int("tapecycle", v.Tapecycle)
		e.int("runtapes", v.Runtapes)
		e.bool("fulls_only", v.FullsOnly)
		e.int("since_days", v.SinceDays)
		e.bool("after_night", v.AfterNight)
		e.changer("[vault.changer]", v.Changer)
	}

	for _, name := range sortedNames(c.Tapetypes) {
		t := c.Tapetypes[name]
		e.table("[tapetype." + quoteKey(name) + "]")
		e.size("length", t.Length)
		e.size("blocksize", t.Blocksize)
		e.size("speed", t.Speed)
		e.size("min_rate", t.MinRate)
	}
	for _, h := range c.Holding {
		e.table("[[holding]]")
		e.str("path", h.Path)
		e.size("use", h.Use)
		e.size("chunksize", h.Chunksize)
	}
	for _, name := range sortedNames(c.Dumptypes) {
		d := c.Dumptypes[name]
		e.table("[dumptype." + quoteKey(name) + "]")
		e.str("compress", d.Compress)
		if d.Compress != CompressNone {
			e.int("compress_level", d.CompressLevel)
		}
		e.size("frame_size", d.FrameSize)
		e.strs("exclude", d.Exclude)
		e.strs("exclude_list", d.ExcludeList)
		e.str("strategy", d.Strategy)
		e.bool("one_filesystem", d.OneFS())
		e.size("bandwidth", d.Bandwidth)
		e.str("priority", d.Priority)
		e.str("holding", d.Holding)
		e.str("encrypt", d.Encrypt)
		if d.Encrypted() {
			e.strs("recipients", d.Recipients)
			e.strs("recipient_files", d.RecipientFiles)
		}
		e.str("snapshot", d.Snapshot)
		if d.SnapshotSize != "" {
			e.str("snapshot_size", d.SnapshotSize)
		}
		for _, kv := range []struct {
			k string
			v []string
		}{{"snapshot_create", d.SnapshotCreate}, {"snapshot_remove", d.SnapshotRemove}, {"command", d.Command},
			{"restore_command", d.RestoreCommand}, {"pre", d.Pre}, {"post", d.Post}} {
			if len(kv.v) > 0 {
				e.strs(kv.k, kv.v)
			}
		}
		e.str("hook_timeout", d.HookTimeout.String())
	}
	for _, name := range sortedNames(c.Hosts) {
		e.table("[host." + quoteKey(name) + "]")
		e.str("address", c.Hosts[name].Address)
	}
	for _, d := range c.DLEs {
		e.table("[[dle]]")
		e.str("host", d.Host)
		e.str("path", d.Path)
		e.str("dumptype", d.Dumptype)
	}
	if e.err != nil {
		return e.err
	}
	return e.w.Flush()
}

type tomlWriter struct {
	w   *bufio.Writer
	err error
}

func (e *tomlWriter) line(s string) {
	if e.err == nil {
		_, e.err = e.w.WriteString(s + "\n")
	}
}

func (e *tomlWriter) comment(s string) {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return '?'
		}
		return r
	}, s)
	e.line("# " + s)
}

func (e *tomlWriter) table(h string) { e.line("\n" + h) }

func (e *tomlWriter) value(k, v string) { e.line(quoteKey(k) + " = " + v) }

func (e *tomlWriter) str(k, v string) {
	if !utf8.ValidString(v) && e.err == nil {
		e.err = fmt.Errorf("configuration value %s = %q is not valid UTF-8 and cannot be written as TOML", k, v)
	}
	e.value(k, quoteString(v))
}

func (e *tomlWriter) strs(k string, vs []string) {
	q := make([]string, len(vs))
	for i, v := range vs {
		if !utf8.ValidString(v) && e.err == nil {
			e.err = fmt.Errorf("configuration value %s = %q is not valid UTF-8 and cannot be written as TOML", k, v)
		}
		q[i] = quoteString(v)
	}
	e.value(k, "["+strings.Join(q, ", ")+"]")
}

func (e *tomlWriter) int(k string, v int)   { e.value(k, fmt.Sprint(v)) }
func (e *tomlWriter) bool(k string, v bool) { e.value(k, fmt.Sprint(v)) }

// float writes a TOML float (always with a decimal point or exponent, so
// that it reads back as a float).
func (e *tomlWriter) float(k string, v float64) {
	s := strconv.FormatFloat(v, 'g', -1, 64)
	if !strings.ContainsAny(s, ".eEn") {
		s += ".0"
	}
	e.value(k, s)
}
func (e *tomlWriter) size(k string, v Size) {
	if s := v.String(); allDigits(s) {
		e.value(k, s)
	} else {
		e.value(k, quoteString(s))
	}
}

// changer writes a changer table under heading h.
func (e *tomlWriter) changer(h string, ch Changer) {
	e.table(h)
	e.str("type", ch.Type)
	e.str("path", ch.Path)
	if ch.Device != "" {
		e.str("device", ch.Device)
	}
	if ch.Changer != "" {
		e.str("changer_device", ch.Changer)
	}
	if ch.Slots != 0 { // a robot without slots: the library's count
		e.int("slots", ch.Slots)
	}
	e.str("tapetype", ch.Tapetype)
	e.int("tapers", ch.Tapers)
	e.str("wait", ch.Wait.String())
	e.str("poll", ch.Poll.String())
	e.str("remind", ch.Remind.String())
	if ch.Type != "disk" {
		e.strs("drive_options", ch.DriveOptions)
	}
	if ch.Type == "robot" {
		e.str("mtx", ch.MTX)
		e.strs("drives", ch.Drives)
		e.int("drive", ch.Drive)
		e.str("state_file", ch.StateFile)
		e.bool("ignore_barcodes", ch.IgnoreBarcodes)
		e.bool("no_eject_to_unload", ch.NoEjectToUnload)
	}
}
