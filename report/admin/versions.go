package admin

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/internal/bytesize"
)

// Versions writes every version of the files of host:path whose name
// matches the shell pattern (or whose path does, when the pattern holds a
// '/') across all the DLE's images, whatever their chain: one line per
// version, by path then oldest image first, with the image's date, level
// and status, the file's size and modification time, and the image's
// catalog id. At most limit lines (0: all); a last line says when there
// are more. A pattern that matches nothing is an error.
func Versions(ctx context.Context, w io.Writer, cat *catalog.Catalog, host, path, pattern string, limit int) error {
	vs, more, err := cat.FindVersions(ctx, host, path, pattern, limit)
	if err != nil {
		return err
	}
	if len(vs) == 0 {
		return fmt.Errorf("no file of %s:%s matches %q in any image in the catalog (a pattern matches the last path component, * ? [...], case-sensitive; one with a '/' matches the whole path from the DLE root)", host, path, pattern)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "path\tdate\tlevel\tstatus\ttype\tsize\tmodified\timage")
	for _, v := range vs {
		mtime := "-"
		if !v.Mtime.IsZero() {
			mtime = v.Mtime.Local().Format(time.DateTime)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%d\n", v.Path, stamp(v.Dump.Datestamp), v.Dump.Level, v.Dump.Status,
			typeName(v.Type), bytesize.Format(v.Size), mtime, v.Dump.ID)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if more {
		_, err = fmt.Fprintf(w, "(more versions than the %d shown: raise --limit, or narrow the pattern)\n", limit)
	}
	return err
}

// typeName is a word for a tar typeflag.
func typeName(t byte) string {
	switch t {
	case '0', 0:
		return "file"
	case '1':
		return "hardlink"
	case '2':
		return "symlink"
	case '3':
		return "chardev"
	case '4':
		return "blockdev"
	case '5', 'D':
		return "dir"
	case '6':
		return "fifo"
	}
	return string(t)
}
