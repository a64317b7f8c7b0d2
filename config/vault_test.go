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
	v := c.VaultConfig()
	if v.Labelstr != "^x-Offsite-[0-9]{3}$" || v.Autolabel != "x-Offsite-%%%" || v.Changer.Path != "/var/lib/x/offsite" || v.Tapecycle != c.Tapecycle || v.Runtapes != 10 || v.Vault != nil {
		t.Errorf("vault defaults: %+v", v)
	}
	if !v.LabelRegexp().MatchString("x-Offsite-001") || c.LabelRegexp().MatchString("x-Offsite-001") {
		t.Error("the two label sets overlap")
	}
	if c, _ := Parse("cfg.toml", []byte("org = \"x\"\n"+dle)); c.VaultConfig() != nil {
		t.Error("VaultConfig without [vault] is not nil")
	}
}
