package server

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tapir-backup/tapir/config"
)

// Subset returns a copy of cfg whose disk list holds only the DLEs of
// host (all of them when disks is empty, else those whose path is one of
// disks), for `tapir dump -c FILE HOST [DISK...]`, and the note the
// report of such a night carries. The other DLEs are simply not part of
// the night: not estimated, not planned, not dumped, their history left
// as it is, so the planner balances them as if the night had not been.
// An unknown host or disk is an error that lists what exists.
func Subset(cfg *config.Config, host string, disks []string) (*config.Config, string, error) {
	var hosts []string
	var mine []config.DLE
	for _, d := range cfg.DLEs {
		if !slices.Contains(hosts, d.Host) {
			hosts = append(hosts, d.Host)
		}
		if d.Host == host {
			mine = append(mine, d)
		}
	}
	if len(mine) == 0 {
		slices.Sort(hosts)
		return nil, "", fmt.Errorf("host %q is not in the disk list of %s; its hosts are: %s", host, cfg.File, listOrNone(hosts))
	}
	chosen := mine
	if len(disks) > 0 {
		chosen = nil
		var missing []string
		for _, want := range disks {
			i := slices.IndexFunc(mine, func(d config.DLE) bool { return d.Path == want || d.Path == filepath.Clean(want) })
			switch {
			case i < 0:
				missing = append(missing, want)
			case !slices.ContainsFunc(chosen, func(d config.DLE) bool { return d.Path == mine[i].Path }):
				chosen = append(chosen, mine[i])
			}
		}
		if len(missing) > 0 {
			var paths []string
			for _, d := range mine {
				paths = append(paths, d.Path)
			}
			slices.Sort(paths)
			return nil, "", fmt.Errorf("host %s has no DLE %s in %s; its DLEs are: %s", host, strings.Join(quoteAll(missing), ", "), cfg.File, strings.Join(paths, ", "))
		}
	}
	sub := *cfg
	sub.DLEs = chosen
	var names []string
	for _, d := range chosen {
		names = append(names, d.Path)
	}
	note := fmt.Sprintf("subset: only %d of the %d DLEs ran tonight (tapir dump %s %s); the others were not dumped and their history is unchanged",
		len(chosen), len(cfg.DLEs), host, strings.Join(names, " "))
	return &sub, note, nil
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func quoteAll(s []string) []string {
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = fmt.Sprintf("%q", x)
	}
	return out
}
