package config

import (
	"strings"
	"testing"
)

// TestConsistencyErrors: every misuse of the snapshot, command DLE and hook
// keys is refused with the line of the key and a message saying what to do.
func TestConsistencyErrors(t *testing.T) {
	const dle = "\n[[dle]]\nhost = \"a\"\npath = \"/x\"\ndumptype = \"t\"\n"
	tests := []struct{ name, src, msg string }{
		{"unknown kind", `snapshot = "lvm2"`, `"btrfs"`},
		{"lvm without size", `snapshot = "lvm"`, "needs dumptype.t.snapshot_size"},
		{"size without lvm", `snapshot = "btrfs"` + "\n" + `snapshot_size = "1G"`, "lvm\" only"},
		{"bad size", `snapshot = "lvm"` + "\n" + `snapshot_size = "lots"`, "lvcreate -L"},
		{"command kind without create", `snapshot = "command"` + "\n" + `snapshot_remove = ["/bin/x"]`, "snapshot_create is required"},
		{"create without command kind", `snapshot = "btrfs"` + "\n" + `snapshot_create = ["/bin/x"]`, "for snapshot = \"command\" only"},
		{"relative program", `pre = ["quiesce"]`, "absolute, clean path"},
		{"unclean program", `post = ["/etc/../bin/x"]`, "absolute, clean path"},
		{"NUL in a word", "command = [\"/bin/x\", \"a\\u0000b\"]", "NUL"},
		{"incremental command DLE", `command = ["/bin/pg_dump"]` + "\n" + `strategy = "standard"`, "dumped in full only"},
		{"command DLE with excludes", `command = ["/bin/pg_dump"]` + "\n" + `exclude = ["*.o"]`, "no meaning for a command DLE"},
		{"restore without command", `restore_command = ["/bin/pg_restore"]`, "command DLEs only"},
		{"short timeout", `hook_timeout = "10ms"`, "hook_timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := parseErr(t, "[dumptype.t]\n"+tc.src+"\n"+dle)
			if !strings.Contains(e.Error(), tc.msg) {
				t.Errorf("error %q does not say %q", e.Error(), tc.msg)
			}
			if e.Line < 2 {
				t.Errorf("error %q has no line of the key", e.Error())
			}
		})
	}
}

// TestCommandDLEDefaults: a command DLE is full only by default, and the
// hooks keep their argv.
func TestCommandDLEDefaults(t *testing.T) {
	c, err := Parse("cfg.toml", []byte(`[dumptype.pg]
command = ["/etc/tapir/exec/pg_dump", "-Fc", "app"]
pre = ["/etc/tapir/exec/pre"]
hook_timeout = "30s"

[[dle]]
host = "db"
path = "/pg/app"
dumptype = "pg"
`))
	if err != nil {
		t.Fatal(err)
	}
	d := c.Dumptypes["pg"]
	if !d.IsCommand() || d.Strategy != "noinc" || d.HookTimeout.String() != "30s" || d.Snapshot != SnapshotNone || len(d.Pre) != 1 {
		t.Errorf("dumptype pg: %+v", d)
	}
	if c.Dumptypes["default"].IsCommand() {
		t.Error("the default dumptype is a command DLE")
	}
}
