package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

func init() { extraCommands = append(extraCommands, newVersionCommand) }

func newVersionCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "print the build's module version, commit and Go version (same as --version)",
		Args:  exactArgs(0),
		RunE: func(c *cobra.Command, args []string) error {
			_, err := fmt.Fprintf(c.OutOrStdout(), "tapir %s\n", versionLine(readBuildInfo()))
			return err
		},
	}
}

// Set by the linker (-ldflags "-X main.stampCommit=..."), for builds the
// Go toolchain cannot stamp itself: it finds no commit in a git worktree
// (.git is a file there) nor under -buildvcs=false. scripts/deb sets them.
// The toolchain's own vcs.* settings win when present.
var stampVersion, stampCommit, stampTime, stampModified string

// readBuildInfo is what the Go toolchain stamped into this binary, or nil
// when it stamped nothing.
func readBuildInfo() *debug.BuildInfo {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return nil
	}
	return bi
}

// versionLine says which tapir this is, for a person comparing two hosts
// or filing a bug: the module version ("(devel)" for a build from a
// checkout without a module version, e.g. `go run`), the commit with its
// time and whether the working tree had changes, and the Go toolchain.
// A binary built without VCS stamping (go test, -buildvcs=false, a source
// tarball) says "commit unknown" instead of guessing.
func versionLine(bi *debug.BuildInfo) string {
	version, goVersion := "(devel)", runtime.Version()
	var rev, when string
	modified := false
	if bi != nil {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		if bi.GoVersion != "" {
			goVersion = bi.GoVersion
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				when = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if rev == "" && stampCommit != "" {
		rev, when, modified = stampCommit, stampTime, stampModified == "true"
	}
	if version == "(devel)" && stampVersion != "" {
		version = stampVersion
	}
	var b strings.Builder
	b.WriteString(version)
	if rev == "" {
		b.WriteString(", commit unknown")
	} else {
		fmt.Fprintf(&b, ", commit %s", rev)
		if when != "" {
			fmt.Fprintf(&b, " (%s)", when)
		}
		if modified {
			b.WriteString(" with uncommitted changes")
		}
	}
	fmt.Fprintf(&b, ", %s %s/%s", goVersion, runtime.GOOS, runtime.GOARCH)
	return b.String()
}
