package config

import (
	"strings"
	"testing"
)

// A vault onto the label set it copies from is refused at config check,
// on the line that says so; a vault of its own labels loads, with its
// defaults.
func TestVaultConfig(t *testing.T) {
	const dle = "[[dle]]\nhost = \"a\"\npath = \"/\"\n"
	for _, tc := range []struct {
		name, src string
		line      int
		msg       string
	}{
		{"same labelstr", "org = \"x\"\nlabelstr = \"^x-[0-9]{3}$\"\n[vault]\nlabelstr = \"^x-[0-9]{3}$\"\nautolabel = \"x-%%%\"\n" + dle, 4, "is labelstr itself"},
		{"vault labels in the source set", "org = \"x\"\nlabelstr = \"^x-.*$\"\n[vault]\nlabelstr = \"^x-O-[0-9]{3}$\"\nautolabel = \"x-O-%%%\"\n" + dle, 4, "a vault onto the source label set is refused"},
		{"source labels in the vault set", "org = \"x\"\n[vault]\nlabelstr = \"^x-.*$\"\nautolabel = \"x-O-%%%\"\n" + dle, 3, "a vault onto the source label set is refused"},
		{"same directory", "org = \"x\"\n[changer]\npath = \"/srv/v\"\n[vault.changer]\npath = \"/srv/v\"\n" + dle, 5, "slots of their own"},
		{"autolabel outside labelstr", "org = \"x\"\n[vault]\nlabelstr = \"^O-[0-9]{3}$\"\nautolabel = \"P-%%%\"\n" + dle, 4, "does not match"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := parseErr(t, tc.src)
			if e.Line != tc.line || !strings.Contains(e.Msg, tc.msg) {
				t.Errorf("got %v (line %d), want line %d with %q", e, e.Line, tc.line, tc.msg)
			}
		})
	}
	c, err := Parse("cfg.toml", []byte("org = \"x\"\nstatedir = \"/var/lib/x\"\n[vault]\n"+dle))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Vaults) != 1 || c.VaultNamed("offsite") == nil {
		t.Fatalf("vaults %+v", c.Vaults)
	}
	v := c.VaultConfig(&c.Vaults[0])
	if v.Labelstr != "^x-Offsite-[0-9]{3}$" || v.Autolabel != "x-Offsite-%%%" || v.Changer.Path != "/var/lib/x/offsite" ||
		v.Changer.StateFile != "/var/lib/x/offsite-changer-state.json" || v.Tapecycle != c.Tapecycle || v.Runtapes != 10 || v.Vaults != nil {
		t.Errorf("vault defaults: %+v", v)
	}
	if !v.LabelRegexp().MatchString("x-Offsite-001") || c.LabelRegexp().MatchString("x-Offsite-001") {
		t.Error("the two label sets overlap")
	}
	if c, _ := Parse("cfg.toml", []byte("org = \"x\"\n"+dle)); len(c.Vaults) != 0 {
		t.Error("vaults without [vault]")
	}
}

// Several [[vault]] tables: each with its own name, labels and changer
// (the defaults follow the name); two that share any of them are
// refused on the line that says so; a key unknown in one is named.
func TestSeveralVaults(t *testing.T) {
	const dle = "[[dle]]\nhost = \"a\"\npath = \"/\"\n"
	c, err := Parse("cfg.toml", []byte("org = \"x\"\nstatedir = \"/var/lib/x\"\n[[vault]]\n[vault.changer]\nslots = 4\n[[vault]]\nname = \"dr\"\nafter_night = true\n"+dle))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Vaults) != 2 || c.Vaults[0].Name != "offsite" || c.Vaults[0].Changer.Slots != 4 || c.Vaults[1].Name != "dr" || !c.Vaults[1].AfterNight || c.Vaults[0].AfterNight {
		t.Fatalf("vaults %+v", c.Vaults)
	}
	dr := c.VaultNamed("dr")
	if dr.Labelstr != "^x-dr-[0-9]{3}$" || dr.Autolabel != "x-dr-%%%" || dr.Changer.Path != "/var/lib/x/dr" || dr.Changer.StateFile != "/var/lib/x/dr-changer-state.json" || dr.Changer.Slots != 12 {
		t.Errorf("dr defaults: %+v", dr)
	}
	if got := c.VaultNames(); len(got) != 2 || got[1] != "dr" {
		t.Errorf("names %v", got)
	}
	// The effective configuration reads back the same.
	var b strings.Builder
	if err := c.Effective(&b); err != nil {
		t.Fatal(err)
	}
	c2, err := Parse("effective.toml", []byte(b.String()))
	if err != nil {
		t.Fatalf("effective configuration: %v\n%s", err, b.String())
	}
	if len(c2.Vaults) != 2 || c2.Vaults[1].Changer.Path != "/var/lib/x/dr" || c2.Vaults[0].Changer.Slots != 4 {
		t.Errorf("effective vaults %+v", c2.Vaults)
	}

	for _, tc := range []struct {
		name, src string
		line      int
		msg       string
	}{
		{"same name", "org = \"x\"\n[[vault]]\n[[vault]]\nlabelstr = \"^B-[0-9]{3}$\"\nautolabel = \"B-%%%\"\n" + dle, 3, "two vaults are named"},
		{"same labels", "org = \"x\"\n[[vault]]\nname = \"a\"\nlabelstr = \"^O-[0-9]{3}$\"\nautolabel = \"O-%%%\"\n[[vault]]\nname = \"b\"\nlabelstr = \"^O-.*$\"\nautolabel = \"O-B-%%%\"\n" + dle, 8, "share labels"},
		{"same directory", "org = \"x\"\n[[vault]]\nname = \"a\"\n[vault.changer]\npath = \"/srv/o\"\n[[vault]]\nname = \"b\"\n[vault.changer]\npath = \"/srv/o\"\n" + dle, 9, "same changer directory"},
		{"unknown key", "org = \"x\"\n[[vault]]\nname = \"a\"\n[[vault]]\nname = \"b\"\nfull_only = true\n" + dle, 6, "full_only"},
		{"too many", "org = \"x\"\n" + strings.Repeat("[[vault]]\n", 40) + dle, 18, "40 [[vault]] tables: at most 16"},
		{"not a table", "org = \"x\"\nvault = 3\n" + dle, 2, "expected a [vault] table or [[vault]] tables"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := parseErr(t, tc.src)
			if e.Line != tc.line || !strings.Contains(e.Msg, tc.msg) {
				t.Errorf("got %v (line %d), want line %d with %q", e, e.Line, tc.line, tc.msg)
			}
		})
	}
}
