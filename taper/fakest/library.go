package fakest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// mtxScript is an mtx that keeps a library in a state file (shell variable
// assignments): NSLOTS, NDRIVES, IE (import/export slot numbers), S<n>
// (barcode in slot n, empty for none), D<n> and D<n>SRC (barcode in drive
// n and its home slot). It logs every call to STATE.log. With
// FAKE_MTX_CTL<n> set (FAKE_MTX_CTL alone for drive 0) it also moves the
// cartridge in fakest drive n through that drive's ctl file, so a load
// really inserts the tape, and an unload fails like a real library when the
// drive has not ejected it.
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
ctlof() { eval "ctl=\${FAKE_MTX_CTL$1:-}"; if [ -z "$ctl" ] && [ "$1" = 0 ]; then ctl=${FAKE_MTX_CTL:-}; fi; }
checkdrive() { case "$1" in ''|*[!0-9]*) echo "mtx: bad drive number $1" >&2; exit 1;; esac; [ "$1" -lt "$NDRIVES" ] || { echo "mtx: no Data Transfer Element $1" >&2; exit 1; }; }
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
	s=$2; d=${3:-0}; checkdrive "$d"; eval "v=\$S$s; dv=\$D$d"
	[ -n "$v" ] || { echo "mtx: Source Element Address $s is Empty" >&2; exit 1; }
	[ -z "$dv" ] || { echo "mtx: Drive $d Full" >&2; exit 1; }
	ctlof "$d"
	if [ -n "$ctl" ]; then
		printf 'insert %s\n' "$v" 2>/dev/null > "$ctl" || { echo "mtx: MOVE MEDIUM from Element Address $s to drive $d Failed" >&2; exit 1; }
	fi
	echo "Loading media from Storage Element $s into drive $d...done"
	eval "S$s=''; D$d='$v'; D${d}SRC=$s"; save ;;
unload)
	s=$2; d=${3:-0}; checkdrive "$d"; eval "dv=\$D$d; src=\$D${d}SRC"
	[ -n "$dv" ] || { echo "mtx: Data Transfer Element $d is Empty" >&2; exit 1; }
	[ -n "$s" ] || s=$src
	eval "v=\$S$s"; [ -z "$v" ] || { echo "mtx: Storage Element $s is Full" >&2; exit 1; }
	ctlof "$d"
	if [ -n "$ctl" ]; then
		printf 'remove\n' 2>/dev/null > "$ctl" || { echo "mtx: MOVE MEDIUM from drive $d to Element Address $s Failed" >&2; exit 1; }
	fi
	echo "Unloading drive $d into Storage Element $s...done"
	eval "S$s='$dv'; D$d=''; D${d}SRC=0"; save ;;
*) echo "mtx: unknown command $1" >&2; exit 1 ;;
esac
`

// Library is a fake SCSI media changer: an mtx program (a shell script)
// over a library kept in a state file, for tests of the robot changer and
// of whole runs on it. The script reads FAKE_MTX_STATE (and, to move the
// cartridges of mounted fakest drives, FAKE_MTX_CTL<n>) from its
// environment: set them with Env or EnvDrives.
type Library struct {
	MTX   string // the mtx program to run
	State string // the library's state file
}

// NewLibrary writes the fake mtx and a library with one drive and the
// given slots (a barcode per slot, "" for an empty one) into dir; ie lists
// the import/export slots ("6", "5 6").
func NewLibrary(dir string, slots []string, ie string) (*Library, error) {
	return NewLibraryDrives(dir, 1, slots, ie)
}

// NewLibraryDrives is NewLibrary with drives drives (mtx's data transfer
// elements 0 to drives-1), all empty.
func NewLibraryDrives(dir string, drives int, slots []string, ie string) (*Library, error) {
	if drives < 1 {
		return nil, fmt.Errorf("fakest: library with %d drives: want at least one", drives)
	}
	lib := &Library{MTX: filepath.Join(dir, "mtx"), State: filepath.Join(dir, "library")}
	if err := os.WriteFile(lib.MTX, []byte(mtxScript), 0o755); err != nil {
		return nil, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "NSLOTS=%d\nNDRIVES=%d\nIE=%q\n", len(slots), drives, ie)
	for d := range drives {
		fmt.Fprintf(&b, "D%d=\"\"\nD%dSRC=0\n", d, d)
	}
	for i, s := range slots {
		fmt.Fprintf(&b, "S%d=%q\n", i+1, s)
	}
	if err := os.WriteFile(lib.State, []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	return lib, nil
}

// Env is what the mtx script needs in its environment; ctl is the ctl
// file of the mounted fakest drive of drive 0 ("" when the drive is moved
// otherwise).
func (l *Library) Env(ctl string) map[string]string {
	env := map[string]string{"FAKE_MTX_STATE": l.State}
	if ctl != "" {
		env["FAKE_MTX_CTL"] = ctl
	}
	return env
}

// EnvDrives is Env for several drives: ctls[n] is the ctl file of the
// mounted fakest drive that is the library's drive n ("" for a drive moved
// otherwise), passed as FAKE_MTX_CTL<n>.
func (l *Library) EnvDrives(ctls ...string) map[string]string {
	env := map[string]string{"FAKE_MTX_STATE": l.State}
	for n, ctl := range ctls {
		if ctl != "" {
			env["FAKE_MTX_CTL"+strconv.Itoa(n)] = ctl
		}
	}
	return env
}

// Run runs the fake mtx with args after "-f CHANGER" (for a test that
// moves cartridges behind tapir's back, as another program would), with
// the environment of the process.
func (l *Library) Run(args ...string) (string, error) {
	out, err := exec.Command(l.MTX, append([]string{"-f", "/dev/fake-changer"}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("fakest: mtx %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
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

// DriveBarcode is the barcode of the cartridge in drive d, "" when empty:
// DriveBarcode(1) for drive 1; DriveBarcode() is drive 0 (as before the
// library had several drives).
func (l *Library) DriveBarcode(drive ...int) (string, error) {
	if len(drive) > 1 {
		return "", fmt.Errorf("fakest: DriveBarcode of %d drives: give one", len(drive))
	}
	d := 0
	if len(drive) == 1 {
		d = drive[0]
	}
	all, err := l.DriveBarcodes()
	if err != nil || d < 0 || d >= len(all) {
		return "", err
	}
	return all[d], nil
}

// DriveBarcodes is the barcode of the cartridge in each drive ("" when
// empty), read from one state of the library.
func (l *Library) DriveBarcodes() ([]string, error) {
	b, err := os.ReadFile(l.State)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok || len(k) < 2 || k[0] != 'D' || strings.HasSuffix(k, "SRC") {
			continue
		}
		d, err := strconv.Atoi(k[1:])
		if err != nil || d < 0 || d > 1000 {
			continue
		}
		for len(out) <= d {
			out = append(out, "")
		}
		out[d] = strings.Trim(v, `"`)
	}
	return out, nil
}
