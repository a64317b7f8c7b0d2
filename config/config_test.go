package config

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

func mustParse(t *testing.T, name, src string) *Config {
	t.Helper()
	c, err := Parse(name, []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

func TestDefaults(t *testing.T) {
	c := mustParse(t, "/etc/tapir/empty.toml", "")
	hostname, _ := os.Hostname()
	yes := true
	want := &Config{
		File: "/etc/tapir/empty.toml", Dir: "/etc/tapir",
		Org:            "tapir",
		StateDir:       "/var/lib/tapir/tapir",
		Catalog:        "/var/lib/tapir/tapir/catalog.db",
		ReportDir:      "/var/lib/tapir/tapir/reports",
		Dumpcycle:      7,
		Runspercycle:   7,
		Tapecycle:      10,
		Runtapes:       1,
		Inparallel:     10,
		Maxdumps:       1,
		Dtimeout:       Duration(30 * time.Minute),
		ResumeAttempts: 3,
		ResumeWindow:   Duration(30 * time.Minute),
		Etimeout:       Duration(5 * time.Minute),
		Schedule:       "0 1 * * *",
		Timezone:       "Local",
		Reserve:        100,
		Retries:        1,
		Bumpsize:       10 * MiB, Bumpdays: 2, Bumpmult: 1.5, Maxpromoteday: 10000, CompRatio: 0.5, FutilePercent: 90,
		Labelstr:       "^tapir-[0-9]{3}$",
		Autolabel:      "tapir-%%%",
		AutolabelMedia: []string{"blank"},
		TLS: TLS{CA: "/var/lib/tapir/tapir/tls/ca.crt", Cert: "/var/lib/tapir/tapir/tls/server.crt",
			Key: "/var/lib/tapir/tapir/tls/server.key"},
		Mail:   Mail{Server: "localhost:25", StartTLS: "auto", Timeout: Duration(time.Minute), SendOn: "all"},
		Server: Server{IndexListen: ":10082", MetricsListen: "127.0.0.1:9233", Name: "tapir", Advertise: net.JoinHostPort(hostname, "10082")},
		Changer: Changer{Type: "disk", Path: "/var/lib/tapir/tapir/vtapes", Slots: 12, Tapetype: "default", Tapers: 1,
			Poll: Duration(10 * time.Second), Remind: Duration(30 * time.Minute)},
		Tapetypes: map[string]Tapetype{"default": {Length: 100 * GiB, Blocksize: 256 * KiB, Speed: 300 * MiB}},
		Dumptypes: map[string]Dumptype{"default": {Compress: "client-zstd", CompressLevel: 1, FrameSize: MiB,
			Strategy: "standard", OneFilesystem: &yes, Priority: "medium", Holding: "auto", Encrypt: "none",
			Snapshot: "none", HookTimeout: Duration(5 * time.Minute)}},
	}
	if diff := compare(c, want); diff != "" {
		t.Error(diff)
	}
	if c.Location() != time.Local {
		t.Errorf("Location() = %v, want Local", c.Location())
	}
	if !c.LabelRegexp().MatchString("tapir-042") || c.LabelRegexp().MatchString("tapir-42") {
		t.Errorf("LabelRegexp = %v", c.LabelRegexp())
	}
}

func TestDerivedDefaults(t *testing.T) {
	c := mustParse(t, "/etc/tapir/x.toml", `
org = "a.b"
statedir = "/srv/st"
dumpcycle = 14
[dumptype.gz]
compress = "client-gzip"
[dumptype.plain]
compress = "none"
[dumptype.default]
priority = "high"
[[dle]]
host = "Client.Example.COM"
path = "/"
[host."::1"]
`)
	checks := []struct {
		name      string
		got, want any
	}{
		{"labelstr quotes org", c.Labelstr, `^a\.b-[0-9]{3}$`},
		{"autolabel", c.Autolabel, "a.b-%%%"},
		{"catalog under statedir", c.Catalog, "/srv/st/catalog.db"},
		{"vtapes under statedir", c.Changer.Path, "/srv/st/vtapes"},
		{"tls under statedir", c.TLS.Key, "/srv/st/tls/server.key"},
		{"runspercycle = dumpcycle", c.Runspercycle, 14},
		{"gzip level", c.Dumptypes["gz"].CompressLevel, 6},
		{"none level", c.Dumptypes["plain"].CompressLevel, 0},
		{"overridden default keeps other defaults", c.Dumptypes["default"].Compress, "client-zstd"},
		{"overridden default", c.Dumptypes["default"].Priority, "high"},
		{"dle dumptype", c.DLEs[0].Dumptype, "default"},
		{"dle host lower-cased", c.DLEs[0].Host, "client.example.com"},
		{"dle line", c.DLEs[0].Line, 11},
		{"host default address", c.Hosts["client.example.com"].Address, "client.example.com:10080"},
		{"ipv6 host address", c.HostAddress("::1"), "[::1]:10080"},
		{"HostAddress any case", c.HostAddress("CLIENT.example.com"), "client.example.com:10080"},
		{"HostAddress unknown", c.HostAddress("other"), "other:10080"},
		{"Dumptype of dle", c.Dumptype(c.DLEs[0]).Priority, "high"},
		{"Tapetype", c.Tapetype(), DefaultTapetype()},
		{"AutolabelFor", c.AutolabelFor(7), "a.b-007"},
		{"label matches", c.LabelRegexp().MatchString(c.AutolabelFor(999)), true},
	}
	for _, ck := range checks {
		if !reflect.DeepEqual(ck.got, ck.want) {
			t.Errorf("%s: got %v, want %v", ck.name, ck.got, ck.want)
		}
	}
}

func TestDisabledAutolabel(t *testing.T) {
	c := mustParse(t, "x.toml", "autolabel = \"\"\nlabelstr = \"^VOL[0-9]+$\"\n")
	if c.Autolabel != "" || c.AutolabelFor(3) != "" {
		t.Errorf("autolabel = %q, AutolabelFor(3) = %q", c.Autolabel, c.AutolabelFor(3))
	}
}

func TestAutolabelFor(t *testing.T) {
	tests := []struct {
		tmpl string
		n    int
		want string
	}{
		{"tapir-%%%", 1, "tapir-001"},
		{"tapir-%%%", 1234, "tapir-1234"},
		{"T%%-%%%%", 5, "T05-0005"},
		{"x-%", 0, "x-0"},
		{"plain", 9, "plain"},
		{"", 1, ""},
	}
	for _, tt := range tests {
		c := &Config{Autolabel: tt.tmpl}
		if got := c.AutolabelFor(tt.n); got != tt.want {
			t.Errorf("AutolabelFor(%q, %d) = %q, want %q", tt.tmpl, tt.n, got, tt.want)
		}
	}
}

func TestAccessorsOnHandMadeConfig(t *testing.T) {
	c := &Config{Timezone: "UTC", Labelstr: "["}
	if c.Location() != time.UTC {
		t.Errorf("Location = %v", c.Location())
	}
	if c.LabelRegexp().MatchString("") || c.LabelRegexp().MatchString("x") {
		t.Error("invalid labelstr must give a regexp matching nothing")
	}
	if got := c.Dumptype(DLE{}); !reflect.DeepEqual(got, DefaultDumptype()) {
		t.Errorf("Dumptype = %+v", got)
	}
	if got := c.Tapetype(); got != DefaultTapetype() {
		t.Errorf("Tapetype = %+v", got)
	}
	no := false
	if (Dumptype{}).OneFS() != true || (Dumptype{OneFilesystem: &no}).OneFS() {
		t.Error("OneFS")
	}
}

func TestRelativePaths(t *testing.T) {
	dir := t.TempDir()
	src := `
statedir = "state"
reportdir = "../reports"
[tls]
ca = "/abs/ca.crt"
[changer]
path = "./vt"
[[holding]]
path = "spool"
[[dle]]
host = "h"
path = "/x"
[dumptype.default]
exclude_list = ["relative/on/client"]
`
	p := filepath.Join(dir, "sub", "tapir.toml")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "sub")
	for _, ck := range []struct{ name, got, want string }{
		{"File", c.File, p},
		{"Dir", c.Dir, sub},
		{"statedir", c.StateDir, filepath.Join(sub, "state")},
		{"catalog default", c.Catalog, filepath.Join(sub, "state", "catalog.db")},
		{"reportdir", c.ReportDir, filepath.Join(dir, "reports")},
		{"tls ca", c.TLS.CA, "/abs/ca.crt"},
		{"tls cert", c.TLS.Cert, filepath.Join(sub, "state", "tls", "server.crt")},
		{"changer", c.Changer.Path, filepath.Join(sub, "vt")},
		{"holding", c.Holding[0].Path, filepath.Join(sub, "spool")},
		{"dle path untouched", c.DLEs[0].Path, "/x"},
		{"exclude_list untouched", c.Dumptypes["default"].ExcludeList[0], "relative/on/client"},
	} {
		if ck.got != ck.want {
			t.Errorf("%s = %q, want %q", ck.name, ck.got, ck.want)
		}
	}

	// Parse with a relative name resolves against the working directory.
	c2 := mustParse(t, "rel/tapir.toml", "statedir = \"st\"\n")
	wd, _ := os.Getwd()
	if want := filepath.Join(wd, "rel", "st"); c2.StateDir != want {
		t.Errorf("statedir = %q, want %q", c2.StateDir, want)
	}
}

func TestFull(t *testing.T) {
	c, err := Load("testdata/full.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.DLEs) != 4 || len(c.Holding) != 2 || len(c.Dumptypes) != 7 || len(c.Tapetypes) != 3 {
		t.Fatalf("got %d DLEs, %d holding, %d dumptypes, %d tapetypes", len(c.DLEs), len(c.Holding), len(c.Dumptypes), len(c.Tapetypes))
	}
	if sec := c.Dumptypes["secret"]; sec.Encrypt != EncryptClient || len(sec.AgeRecipients) != 2 || !strings.HasPrefix(sec.RecipientFiles[0], "/") {
		t.Errorf("dumptype secret: %+v", sec)
	}
	if c.Tapetype().Length != 12e12 || c.Etimeout != Duration(5*time.Minute) || c.Netusage != 100e6 {
		t.Errorf("tapetype %+v, etimeout %v, netusage %v", c.Tapetype(), c.Etimeout, c.Netusage)
	}
	if c.Location().String() != "Europe/Berlin" {
		t.Errorf("location %v", c.Location())
	}
	if c.Dumptype(c.DLEs[3]).OneFS() || !c.Dumptype(c.DLEs[1]).OneFS() {
		t.Error("one_filesystem not as written")
	}
	if c.HostAddress("web1.example.com") != "10.0.0.21:10090" || c.HostAddress("files.example.com") != "files.example.com:10080" {
		t.Errorf("hosts %v", c.Hosts)
	}

	// full.toml must write every key of the schema at least once.
	data, err := os.ReadFile("testdata/full.toml")
	if err != nil {
		t.Fatal(err)
	}
	for key := range keyHomes() {
		if !regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(key)+` *=`).Match(data) &&
			!regexp.MustCompile(`(?m)^\[\[?`+regexp.QuoteMeta(key)+`[].]`).Match(data) {
			t.Errorf("testdata/full.toml does not use key %q", key)
		}
	}
}

// compare reports the differences of two configs, ignoring what Effective
// cannot carry (the file name and the lines of the DLEs).
func compare(a, b *Config) string {
	norm := func(c *Config) Config {
		x := *c
		x.loc, x.labelRe = nil, nil
		x.File, x.Dir = "", ""
		x.DLEs = append([]DLE(nil), c.DLEs...)
		for i := range x.DLEs {
			x.DLEs[i].Line = 0
		}
		return x
	}
	na, nb := norm(a), norm(b)
	if reflect.DeepEqual(na, nb) {
		return ""
	}
	va, vb := reflect.ValueOf(na), reflect.ValueOf(nb)
	var diffs []string
	for i := 0; i < va.NumField(); i++ {
		if va.Type().Field(i).IsExported() && !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			diffs = append(diffs, va.Type().Field(i).Name+":\n got "+fmtv(va.Field(i))+"\nwant "+fmtv(vb.Field(i)))
		}
	}
	return strings.Join(diffs, "\n")
}

func fmtv(v reflect.Value) string { return fmt.Sprintf("%+v", v.Interface()) }

// TestSampleConfigLoads: the sample shipped in etc/ stays valid.
func TestSampleConfigLoads(t *testing.T) {
	c, err := Load("../etc/tapir.toml")
	if err != nil {
		t.Fatalf("etc/tapir.toml: %v", err)
	}
	if len(c.DLEs) == 0 || c.Changer.Type != "disk" {
		t.Errorf("etc/tapir.toml: %d DLEs, changer %q; want DLEs on a disk changer", len(c.DLEs), c.Changer.Type)
	}
}

// The st options tapir sets are named in the config: scsi2logical by
// default on a tape drive, [] for none, an unknown one refused, none on
// vtapes.
func TestDriveOptions(t *testing.T) {
	single := "[changer]\ntype = \"single\"\ndevice = \"/dev/nst0\"\n"
	if c := mustParse(t, "/etc/tapir/t.toml", single); !reflect.DeepEqual(c.Changer.DriveOptions, []string{"scsi2logical"}) {
		t.Errorf("default drive_options = %q, want [scsi2logical]", c.Changer.DriveOptions)
	}
	if c := mustParse(t, "/etc/tapir/t.toml", single+"drive_options = []\n"); c.Changer.DriveOptions == nil || len(c.Changer.DriveOptions) != 0 {
		t.Errorf("drive_options = [] gives %#v, want an empty list", c.Changer.DriveOptions)
	}
	if _, err := Parse("/etc/tapir/t.toml", []byte(single+"drive_options = [\"buffer_writes\"]\n")); err == nil || !strings.Contains(err.Error(), "changer.drive_options") || !strings.Contains(err.Error(), "scsi2logical") {
		t.Errorf("unknown option: %v, want an error naming the key and the known option", err)
	}
	if _, err := Parse("/etc/tapir/t.toml", []byte("[changer]\ntype = \"disk\"\ndrive_options = []\n")); err == nil || !strings.Contains(err.Error(), "changer.drive_options") {
		t.Errorf("drive_options on vtapes: %v, want an error", err)
	}
}
