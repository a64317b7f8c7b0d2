package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// parseErr parses src as cfg.toml and returns the *Error, failing the test
// when there is none or it is of another type.
func parseErr(t *testing.T, src string) *Error {
	t.Helper()
	c, err := Parse("cfg.toml", []byte(src))
	if err == nil {
		t.Fatalf("Parse succeeded, want an error; config: %+v", c)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v is a %T, want *Error", err, err)
	}
	if e.File != "cfg.toml" {
		t.Errorf("Error.File = %q, want cfg.toml", e.File)
	}
	return e
}

func TestErrorLines(t *testing.T) {
	const dle = "[[dle]]\nhost = \"a\"\npath = \"/\"\n"
	tests := []struct {
		name string
		src  string
		want string // the whole Error(), when exact
		line int
		msg  string // substring of Msg
	}{
		{name: "typo top level", src: "org = \"x\"\n\ndumpcyle = 7\n",
			want: `cfg.toml:3: unknown key "dumpcyle"; did you mean "dumpcycle"?`},
		{name: "typo far from anything", src: "org = \"x\"\nfrobnicate = 1\n",
			want: `cfg.toml:2: unknown key "frobnicate"`},
		{name: "wrong case", src: "\nDumpCycle = 7\n",
			want: `cfg.toml:2: unknown key "DumpCycle"; did you mean "dumpcycle"?`},
		{name: "key in the wrong table", src: "org = \"x\"\ncompress = \"none\"\n",
			want: `cfg.toml:2: unknown key "compress"; "compress" belongs in [dumptype.NAME]`},
		{name: "typo in second dle", src: dle + "\n[[dle]]\nhost = \"b\"\npath = \"/\"\nhostt = \"c\"\n",
			want: `cfg.toml:8: unknown key "hostt" in [[dle]]; did you mean "host"?`},
		{name: "typo in second dumptype", src: "[dumptype.x]\ncompres = \"none\"\n[dumptype.y]\ncompress = \"none\"\ncompres = \"none\"\n",
			line: 2, msg: `unknown key "compres" in [dumptype.x]; did you mean "compress"?`},
		{name: "typo in later dumptype only", src: "[dumptype.x]\ncompress = \"none\"\n\n[dumptype.y]\ncompress = \"none\"\ncompres = \"none\"\n",
			want: `cfg.toml:6: unknown key "compres" in [dumptype.y]; did you mean "compress"?`},
		{name: "typo in inline table", src: "org = \"x\"\ntls = { ca = \"a\", crt = \"b\" }\n",
			want: `cfg.toml:2: unknown key "crt" in [tls]; did you mean "cert"?`},
		{name: "unknown quoted key", src: "org = \"x\"\n\"my key\" = 1\n", line: 2, msg: `unknown key "my key"`},
		{name: "unknown dotted key", src: "org = \"x\"\n\na.b.c = 1\n", line: 3, msg: `unknown key "a"`},
		{name: "unknown table", src: "org = \"x\"\n[dumptypes.x]\ncompress = \"none\"\n", line: 2, msg: `unknown key "dumptypes"; did you mean "dumptype"?`},
		{name: "key name in an earlier value", src: "org = \"x\"\nlabelstr = \"dumpcyle\"\n# dumpcyle = 3\ndumpcyle = 7\n",
			line: 4, msg: `unknown key "dumpcyle"`},
		{name: "wrong type", src: "org = \"x\"\n\ndumpcycle = \"seven\"\n",
			want: `cfg.toml:3: dumpcycle: expected an integer, got a string ("seven")`},
		{name: "wrong type bool", src: "eject = \"yes\"\n", line: 1, msg: "eject: expected a boolean"},
		{name: "wrong type in dle", src: dle + "[[dle]]\nhost = \"b\"\npath = 5\n", line: 6, msg: "dle.path: expected a string, got an integer (5)"},
		{name: "wrong type table", src: "org = \"x\"\ntls = 5\n", line: 2, msg: "tls: expected a table"},
		{name: "wrong type array", src: "mailto = \"a@b.c\"\n", line: 1, msg: "mailto: expected an array of strings"},
		{name: "wrong element type", src: "mailto = [\"a@b.c\", 3]\n", line: 1, msg: "mailto: element 2: expected a string"},
		{name: "float size", src: "netusage = 1.5\n", line: 1, msg: "netusage: expected a size"},
		{name: "bad size string", src: "org = \"x\"\n[[holding]]\npath = \"/h\"\nuse = \"12 XB\"\n",
			want: `cfg.toml:4: holding.use: invalid size "12 XB": unknown unit "XB" (use b, k, KiB, kB, M, MiB, MB, G, GiB, GB, T, TiB, TB, P, PiB or PB)`},
		{name: "negative size", src: "netusage = -1\n", line: 1, msg: "netusage: must not be negative"},
		{name: "bad duration", src: "\ndtimeout = \"soon\"\n", line: 2, msg: `dtimeout: invalid duration "soon"`},
		{name: "zero duration", src: "etimeout = 0\n", line: 1, msg: "etimeout must be at least 1s"},
		{name: "syntax error", src: "org = \"x\"\ndumpcycle = \n", line: 2, msg: "invalid TOML"},
		{name: "duplicate key", src: "org = \"x\"\norg = \"y\"\n", line: 2, msg: "invalid TOML"},
		{name: "reserve out of range", src: "org = \"x\"\nreserve = 140\n", want: "cfg.toml:2: reserve must be between 0 and 100, got 140"},
		{name: "robot key on a disk changer", src: "[changer]\ntype = \"disk\"\nmtx = \"/usr/sbin/mtx\"\n", line: 3, msg: "changer.mtx is a setting of the robot changer"},
		{name: "robot tapers beyond drives", src: "[changer]\ntype = \"robot\"\nchanger_device = \"/dev/sg3\"\ndrives = [\"/dev/nst0\", \"/dev/nst1\"]\ndrive = 1\ntapers = 2\n", line: 6, msg: "changer.tapers = 2 from changer.drive = 1 needs drives 1 to 2, but changer.drives lists 2 drive(s)"},
		{name: "single with two tapers", src: "[changer]\ntype = \"single\"\ndevice = \"/dev/nst0\"\ntapers = 2\n", line: 4, msg: "a \"single\" changer has one drive"},
		{name: "disk tapers beyond slots", src: "[changer]\nslots = 2\ntapers = 3\n", line: 3, msg: "changer.tapers = 3, but the disk changer has 2 slot(s)"},
		{name: "tapers zero", src: "[changer]\ntapers = 0\n", line: 2, msg: "changer.tapers must be between 1 and 64, got 0"},
		{name: "robot drive out of range", src: "[changer]\ntype = \"robot\"\nchanger_device = \"/dev/sg3\"\ndrives = [\"/dev/nst0\"]\ndrive = 1\n", line: 5, msg: "changer.drive = 1, but changer.drives lists 1 drive(s)"},
		{name: "mail username without password file", src: "[mail]\nusername = \"tapir\"\n", line: 2, msg: "mail.username is set but mail.password_file is not"},
		{name: "bad mail server", src: "[mail]\nserver = \"smtp.example.com\"\n", line: 2, msg: "mail.server \"smtp.example.com\" must be host:port"},
		{name: "planner float out of range", src: "bumpmult = 0.5\n", line: 1, msg: "bumpmult must be between 1 and 1000, got 0.5"},
		{name: "dumpcycle zero", src: "dumpcycle = 0\n", line: 1, msg: "dumpcycle must be between 1 and"},
		{name: "inparallel too high", src: "inparallel = 1001\n", line: 1, msg: "inparallel must be between 1 and 1000"},
		{name: "unknown dumptype in dle", src: dle + "\n[[dle]]\nhost = \"b\"\npath = \"/\"\ndumptype = \"nope\"\n",
			want: `cfg.toml:8: dle.dumptype "nope" names no [dumptype.nope] table (known: default)`},
		{name: "unknown tapetype in changer", src: "[changer]\ntype = \"disk\"\ntapetype = \"lto9\"\n", line: 3, msg: `changer.tapetype "lto9" names no [tapetype.lto9] table`},
		{name: "bad labelstr", src: "org = \"x\"\nlabelstr = \"x-[0-9\"\nautolabel = \"\"\n", line: 2, msg: "labelstr \"x-[0-9\" is not a valid regular expression"},
		{name: "empty labelstr", src: "labelstr = \"\"\n", line: 1, msg: "labelstr must not be empty"},
		{name: "autolabel does not match labelstr", src: "org = \"x\"\nautolabel = \"y-%%%\"\n", line: 2, msg: `makes label "y-001", which labelstr "^x-[0-9]{3}$" does not match`},
		{name: "labelstr without autolabel", src: "org = \"x\"\nlabelstr = \"^vol[0-9]+$\"\n", line: 2, msg: "which labelstr"},
		{name: "autolabel without counter", src: "autolabel = \"tapir-001\"\n", line: 1, msg: "must contain a run of %"},
		{name: "relative dle path", src: "[[dle]]\nhost = \"a\"\npath = \"home\"\n", want: `cfg.toml:3: dle.path "home" must be an absolute path on the client`},
		{name: "unclean dle path", src: "[[dle]]\nhost = \"a\"\npath = \"/home/../etc/\"\n", line: 3, msg: `is not clean; write "/etc"`},
		{name: "dle without path", src: "org = \"x\"\n[[dle]]\nhost = \"a\"\n", line: 2, msg: "[[dle]] has no path"},
		{name: "dle without host", src: "[[dle]]\npath = \"/\"\n", line: 1, msg: "[[dle]] has no host"},
		{name: "dle bad host", src: "[[dle]]\npath = \"/\"\nhost = \"a_b.example\"\n", line: 3, msg: `"a_b.example" is not a valid host name`},
		{name: "duplicate dle", src: dle + "\n[[dle]]\nhost = \"A\"\npath = \"/\"\n",
			want: "cfg.toml:5: duplicate DLE a:/ (first at line 1); each host and path may be listed once"},
		{name: "bad timezone", src: "org = \"x\"\ntimezone = \"Mars/Olympus\"\n", line: 2, msg: `timezone "Mars/Olympus" is not a known time zone`},
		{name: "bad schedule", src: "schedule = \"0 1 * *\"\n", line: 1, msg: "want 5 fields"},
		{name: "bad schedule char", src: "schedule = \"0 1 * * $\"\n", line: 1, msg: `field "$"`},
		// Five fields of cron characters, but robfig/cron (which the server
		// uses) has no minute 99: a config error, not a server that will
		// not start.
		{name: "schedule out of range", src: "org = \"x\"\nschedule = \"99 99 * * *\"\n", line: 2, msg: `schedule "99 99 * * *": end of range (99) above maximum (59): 99`},
		{name: "schedule bad month name", src: "schedule = \"0 1 * foo *\"\n", line: 1, msg: `schedule "0 1 * foo *": `},
		{name: "bad org", src: "org = \"my org\"\n", line: 1, msg: `org "my org" must be`},
		{name: "bad mailto", src: "mailto = [\"root\"]\n", line: 1, msg: `mailto: "root" is not an e-mail address`},
		{name: "bad compress", src: "[dumptype.x]\ncompress = \"lz4\"\n", line: 2, msg: `dumptype.x.compress must be one of "client-zstd", "client-gzip", "server-zstd" or "none", got "lz4"`},
		{name: "gzip level", src: "[dumptype.x]\ncompress = \"client-gzip\"\ncompress_level = 12\n", line: 3, msg: "compress_level must be between 1 and 9"},
		{name: "level with none", src: "[dumptype.x]\ncompress = \"none\"\ncompress_level = 3\n", line: 3, msg: "no meaning"},
		{name: "frame size", src: "[dumptype.x]\nframe_size = \"1k\"\n", line: 2, msg: "frame_size must be between 64 KiB and 64 MiB"},
		{name: "bad exclude", src: "[dumptype.x]\nexclude = [\"ok\", \"[a-\"]\n", line: 2, msg: `"[a-" is not a valid pattern`},
		{name: "bad strategy", src: "[dumptype.x]\n\nstrategy = \"full\"\n", line: 3, msg: "strategy must be one of"},
		{name: "bad priority", src: "[dumptype.x]\npriority = \"urgent\"\n", line: 2, msg: "priority must be one of"},
		{name: "tapetype without length", src: "org = \"x\"\n[tapetype.lto]\nblocksize = \"256k\"\n", line: 2, msg: "tapetype lto has no length"},
		{name: "blocksize too small", src: "[tapetype.lto]\nlength = \"1 TB\"\nblocksize = 512\n", line: 3, msg: "blocksize must be between 32 KiB and 1 MiB"},
		{name: "blocksize not KiB", src: "[tapetype.lto]\nlength = \"1 TB\"\nblocksize = 40000\n", line: 3, msg: "multiple of 1 KiB"},
		{name: "speed too small", src: "[tapetype.lto]\nlength = \"1 TB\"\nspeed = \"100 KiB\"\n", line: 3, msg: "speed must be between 1 MiB and 100 GiB"},
		{name: "min_rate above speed", src: "[tapetype.lto]\nlength = \"1 TB\"\nspeed = \"300 MiB\"\nmin_rate = \"400 MiB\"\n", line: 4, msg: "must not be more than the drive's speed (300 MiB per second)"},
		{name: "length too small", src: "[tapetype.default]\nlength = \"256k\"\n", line: 2, msg: "length must be at least two blocks"},
		{name: "device without type", src: "[changer]\ndevice = \"/dev/nst0\"\n", line: 2, msg: `changer.device is set but changer.type is "disk"`},
		{name: "single without device", src: "[changer]\n\ntype = \"single\"\n", line: 3, msg: "needs changer.device"},
		{name: "robot without changer", src: "[changer]\ntype = \"robot\"\ndevice = \"/dev/nst0\"\n", line: 2, msg: "needs changer.changer_device"},
		{name: "relative device", src: "[changer]\ntype = \"single\"\ndevice = \"nst0\"\n", line: 3, msg: "must be an absolute path"},
		{name: "bad changer type", src: "[changer]\ntype = \"tape\"\n", line: 2, msg: "changer.type must be one of"},
		{name: "zero slots", src: "[changer]\nslots = 0\n", line: 2, msg: "changer.slots must be between"},
		{name: "holding without path", src: "[[holding]]\nuse = 0\n", line: 1, msg: "[[holding]] has no path"},
		{name: "holding twice", src: "[[holding]]\npath = \"/h\"\n[[holding]]\npath = \"/h/\"\n", line: 4, msg: "listed twice (also at line 1)"},
		{name: "chunksize", src: "[[holding]]\npath = \"/h\"\nchunksize = \"1k\"\n", line: 3, msg: "holding.chunksize must be between 1 MiB"},
		{name: "bad host address", src: "[host.a]\naddress = \"a:99999\"\n", line: 2, msg: `port "99999"`},
		{name: "bad host name", src: "[host.\"-a\"]\naddress = \"a:1\"\n", line: 1, msg: "is not a valid host name"},
		{name: "empty statedir", src: "statedir = \"\"\n", line: 1, msg: "statedir must not be empty"},
		{name: "earliest of several", src: "dumpcycle = 0\nreserve = 140\n", line: 1, msg: "dumpcycle"},
		{name: "inline array of tables", src: "dle = [ { host = \"a\", path = \"/\" },\n  { host = \"b\", pth = \"/\" } ]\n", line: 2, msg: `unknown key "pth" in [[dle]]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := parseErr(t, tt.src)
			if tt.want != "" {
				if e.Error() != tt.want {
					t.Errorf("error\n got %q\nwant %q", e.Error(), tt.want)
				}
				return
			}
			if e.Line != tt.line || !strings.Contains(e.Msg, tt.msg) {
				t.Errorf("error %q: want line %d and a message containing %q", e.Error(), tt.line, tt.msg)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "nope.toml")
	_, err := Load(p)
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Load = %v (%T), want *Error", err, err)
	}
	want := p + ": cannot read configuration: no such file or directory"
	if err.Error() != want || e.Line != 0 {
		t.Errorf("Load error = %q (line %d), want %q", err, e.Line, want)
	}
}

func TestLoadDirectory(t *testing.T) {
	d := t.TempDir()
	_, err := Load(d)
	if err == nil || !strings.HasPrefix(err.Error(), d+": cannot read configuration: ") {
		t.Errorf("Load(dir) = %v", err)
	}
}

func TestParseTooLarge(t *testing.T) {
	e := parseErr(t, strings.Repeat("#", maxFileSize+1))
	if !strings.Contains(e.Msg, "larger than") {
		t.Errorf("got %q", e)
	}
}

func TestErrorString(t *testing.T) {
	if got := (&Error{File: "a.toml", Line: 3, Msg: "bad"}).Error(); got != "a.toml:3: bad" {
		t.Errorf("got %q", got)
	}
	if got := (&Error{File: "a.toml", Msg: "bad"}).Error(); got != "a.toml: bad" {
		t.Errorf("got %q", got)
	}
}

func TestLoadErrorUsesGivenName(t *testing.T) {
	d := t.TempDir()
	p := filepath.Join(d, "t.toml")
	if err := os.WriteFile(p, []byte("\nreserve = 101\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(p)
	if err == nil || err.Error() != p+":2: reserve must be between 0 and 100, got 101" {
		t.Errorf("Load = %v", err)
	}
}

func TestTooDeep(t *testing.T) {
	tests := []struct {
		src  string
		line int
	}{
		{"a = " + strings.Repeat("[", 40), 1},
		{"x = 1\n\na = " + strings.Repeat("{b=", 40), 3},
		{"a = [[[1]]]\n" + strings.Repeat("b = [1]\n", 100), 0},
		{"a = \"" + strings.Repeat("[", 40) + "\"", 0},
		{"a = '" + strings.Repeat("[", 40) + "'", 0},
		{"a = \"\"\"\n" + strings.Repeat("{", 40) + "\\\"\"\"\n\"\"\"", 0},
		{"a = '''\n" + strings.Repeat("{", 40) + "'''\nb = " + strings.Repeat("[", 40), 3},
		{"# " + strings.Repeat("[", 40) + "\nb = 1", 0},
		{"a = \"\\\"" + strings.Repeat("[", 40) + "\"", 0},
	}
	for _, tt := range tests {
		if got := tooDeep(tt.src); got != tt.line {
			t.Errorf("tooDeep(%.30q...) = %d, want %d", tt.src, got, tt.line)
		}
	}
	e := parseErr(t, "a = "+strings.Repeat("[", 100000))
	if e.Line != 1 || !strings.Contains(e.Msg, "nested more than") {
		t.Errorf("got %v", e)
	}
}

// manyDLEs is a configuration of n DLEs whose path keys are written with
// an escape, so that the line finder cannot find them as written.
func manyDLEs(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteString("[[dle]]\nhost = \"h\"\n\"p\\u0061th\" = \"/d" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + "\"\nxx = 1\n")
	}
	return b.String()
}

// Line finding stays linear: searching each unfindable key to the end of
// the file would look at about n²/2 DLEs' worth of bytes (seconds here).
// The work is counted, not timed (BenchmarkManyDLEs times it).
func TestManyDLEsFast(t *testing.T) {
	src := manyDLEs(20000)
	e := parseErr(t, src)
	if e.Line != 4 || !strings.Contains(e.Msg, `unknown key "xx"`) {
		t.Errorf("got %v", e)
	}
	var raw map[string]any
	md, err := toml.Decode(src, &raw)
	if err != nil {
		t.Fatal(err)
	}
	// The finder's budget (16 bytes a byte plus 1 MiB) and the searches
	// under way when it ran out; quadratic would be thousands a byte.
	if got, limit := buildLineIndex(src, md).searched, 32*len(src)+1<<20; got > limit {
		t.Errorf("the line finder looked at %d bytes of a %d-byte file, more than %d", got, len(src), limit)
	}
}

func BenchmarkManyDLEs(b *testing.B) {
	src := []byte(manyDLEs(20000))
	for b.Loop() {
		if _, err := Parse("cfg.toml", src); err == nil {
			b.Fatal("Parse succeeded")
		}
	}
}
