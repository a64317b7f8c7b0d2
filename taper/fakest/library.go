package fakest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// mtxScript is an mtx that keeps a library in a state file (shell variable
// assignments): NSLOTS, NDRIVES, IE (import/export slot numbers), S<n>
// (barcode in slot n, empty for none), D<n> and D<n>SRC (barcode in drive
// n and its home slot). It logs every call to STATE.log. With FAKE_MTX_CTL
// set it also moves the cartridge in a fakest drive through the drive's
// ctl file, so a load really inserts the tape, and an unload fails like a
// real library when the drive has not ejected it.
const mtxScript = `#!/bin/sh
state=${FAKE_MTX_STATE:?}
echo "$*" >> "$state.log"
[ "$1" = "-f" ] || { echo "usage: mtx -f DEVICE command" >&2; exit 2; }
dev=$2; shift 2
nobarcode=0
if [ "$1" = nobarcode ]; then nobarcode=1; shift; fi
. "$state"
save() {
	{
		echo "NSLOTS=$NSLOTS"; echo "NDRIVES=$NDRIVES"; echo "IE=\"$IE\""
		i=1; while [ $i -le $NSLOTS ]; do eval "v=\$S$i"; echo "S$i=\"$v\""; i=$((i+1)); done
		d=0; while [ $d -lt $NDRIVES ]; do eval "v=\$D$d; s=\$D${d}SRC"; echo "D$d=\"$v\""; echo "D${d}SRC=$s"; d=$((d+1)); done
	} > "$state.tmp" && mv "$state.tmp" "$state"
}
isie() { case " $IE " in *" $1 "*) return 0;; esac; return 1; }
case "$1" in
status)
	n=0; for x in $IE; do n=$((n+1)); done
	printf '  Storage Changer %s:%d Drives, %d Slots ( %d Import/Export )\n' "$dev" "$NDRIVES" "$NSLOTS" "$n"
	d=0; while [ $d -lt $NDRIVES ]; do
		eval "v=\$D$d; s=\$D${d}SRC"
		if [ -z "$v" ]; then echo "Data Transfer Element $d:Empty"
		elif [ $nobarcode = 1 ]; then echo "Data Transfer Element $d:Full (Storage Element $s Loaded)"
		else echo "Data Transfer Element $d:Full (Storage Element $s Loaded):VolumeTag = $v                        "; fi
		d=$((d+1))
	done
	i=1; while [ $i -le $NSLOTS ]; do
		eval "v=\$S$i"; ie=""; if isie $i; then ie=" IMPORT/EXPORT"; fi
		if [ -z "$v" ]; then echo "      Storage Element $i$ie:Empty"
		elif [ $nobarcode = 1 ]; then echo "      Storage Element $i$ie:Full "
		else echo "      Storage Element $i$ie:Full :VolumeTag=$v                        "; fi
		i=$((i+1))
	done ;;
load)
	s=$2; d=${3:-0}; eval "v=\$S$s; dv=\$D$d"
	[ -n "$v" ] || { echo "mtx: Source Element Address $s is Empty" >&2; exit 1; }
	[ -z "$dv" ] || { echo "mtx: Drive $d Full" >&2; exit 1; }
	if [ -n "$FAKE_MTX_CTL" ]; then
		printf 'insert %s\n' "$v" 2>/dev/null > "$FAKE_MTX_CTL" || { echo "mtx: MOVE MEDIUM from Element Address $s to drive $d Failed" >&2; exit 1; }
	fi
	echo "Loading media from Storage Element $s into drive $d...done"
	eval "S$s=''; D$d='$v'; D${d}SRC=$s"; save ;;
unload)
	s=$2; d=${3:-0}; eval "dv=\$D$d; src=\$D${d}SRC"
	[ -n "$dv" ] || { echo "mtx: Data Transfer Element $d is Empty" >&2; exit 1; }
	[ -n "$s" ] || s=$src
	eval "v=\$S$s"; [ -z "$v" ] || { echo "mtx: Storage Element $s is Full" >&2; exit 1; }
	if [ -n "$FAKE_MTX_CTL" ]; then
		printf 'remove\n' 2>/dev/null > "$FAKE_MTX_CTL" || { echo "mtx: MOVE MEDIUM from drive $d to Element Address $s Failed" >&2; exit 1; }
	fi
	echo "Unloading drive $d into Storage Element $s...done"
	eval "S$s='$dv'; D$d=''; D${d}SRC=0"; save ;;
*) echo "mtx: unknown command $1" >&2; exit 1 ;;
esac
`

// Library is a fake SCSI media changer: an mtx program (a shell script)
// over a library kept in a state file, for tests of the robot changer and
// of whole runs on it. The script reads FAKE_MTX_STATE (and, to move the
// cartridges of a mounted fakest drive, FAKE_MTX_CTL) from its
// environment: set them with Env.
type Library struct {
	MTX   string // the mtx program to run
	State string // the library's state file
}

// NewLibrary writes the fake mtx and a library with one drive and the
// given slots (a barcode per slot, "" for an empty one) into dir; ie lists
// the import/export slots ("6", "5 6").
func NewLibrary(dir string, slots []string, ie string) (*Library, error) {
	lib := &Library{MTX: filepath.Join(dir, "mtx"), State: filepath.Join(dir, "library")}
	if err := os.WriteFile(lib.MTX, []byte(mtxScript), 0o755); err != nil {
		return nil, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "NSLOTS=%d\nNDRIVES=1\nIE=%q\nD0=\"\"\nD0SRC=0\n", len(slots), ie)
	for i, s := range slots {
		fmt.Fprintf(&b, "S%d=%q\n", i+1, s)
	}
	if err := os.WriteFile(lib.State, []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	return lib, nil
}

// Env is what the mtx script needs in its environment; ctl is the ctl
// file of a mounted fakest drive ("" when the drive is moved otherwise).
func (l *Library) Env(ctl string) map[string]string {
	env := map[string]string{"FAKE_MTX_STATE": l.State}
	if ctl != "" {
		env["FAKE_MTX_CTL"] = ctl
	}
	return env
}

// Calls returns the mtx calls so far, without "-f DEVICE".
func (l *Library) Calls() []string {
	b, _ := os.ReadFile(l.State + ".log")
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if f := strings.Fields(line); len(f) > 2 {
			out = append(out, strings.Join(f[2:], " "))
		}
	}
	return out
}

// DriveBarcode is the barcode of the cartridge in drive 0, "" when empty.
func (l *Library) DriveBarcode() (string, error) {
	b, err := os.ReadFile(l.State)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "D0="); ok {
			return strings.Trim(v, `"`), nil
		}
	}
	return "", nil
}
