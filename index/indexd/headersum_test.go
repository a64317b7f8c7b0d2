package indexd_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tapir-backup/tapir/index/indexd"
	"github.com/tapir-backup/tapir/internal/testsite"
	"github.com/tapir-backup/tapir/recover"
	"github.com/tapir-backup/tapir/taper"
	"github.com/tapir-backup/tapir/wire"
)

// TestRestoreRefusesDamagedHeader: an image whose header on the volume
// fails its checksum is not restored, from a vtape file or a drive read by
// records: the restore fails with the checksum error, naming the volume and
// file, and writes nothing.
func TestRestoreRefusesDamagedHeader(t *testing.T) {
	dir := t.TempDir()
	site, err := testsite.New(dir, testsite.Options{Blocksize: 32 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer site.Close()
	data := filepath.Join(dir, "data")
	if err := testsite.MakeTree(data); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := site.Run(ctx, "20250607010000", []testsite.DLE{{Host: "web1", Path: "/srv", Root: data}}, testsite.RunOptions{}); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(site.Vtapes, "slot1", "00001.*"))
	if len(files) != 1 {
		t.Fatalf("slot 1 holds %v", files)
	}
	b, _ := os.ReadFile(files[0])
	i := bytes.Index(b, []byte("\nframe-size: ")) + 13
	b[i] ^= 1 // the first digit of frame-size
	os.WriteFile(files[0], b, 0o640)
	ch, err := taper.NewDiskChanger(site.Vtapes, site.Slots, site.Capacity, site.Blocksize, nil)
	if err != nil {
		t.Fatal(err)
	}
	seeks := 0
	disk := &indexd.DiskVolumes{Changer: ch, Catalog: site.Catalog}
	for name, vols := range map[string]indexd.VolumeSource{"vtape files": disk, "records": tapeVolumes{disk, &seeks}} {
		t.Run(name, func(t *testing.T) {
			addr := serve(t, site, vols)
			cl := dial(t, site, addr, "web1", wire.RoleClient)
			to := t.TempDir()
			res, err := cl.Restore(ctx, recover.Query{Host: "web1", DLE: "/srv"}, []string{"etc/passwd"}, recover.RestoreOptions{To: to})
			msg := fmt.Sprint(err)
			if res != nil {
				msg += fmt.Sprintf(" %+v", *res)
			}
			if err == nil && res.OK() {
				t.Fatalf("a damaged header restored: %s", msg)
			}
			for _, want := range []string{"volume TEST-001 file 1", "checksum mismatch", "line 5 (frame-size)"} {
				if !strings.Contains(msg, want) {
					t.Errorf("restore: %s\nwant it to say %q", msg, want)
				}
			}
			if left, _ := os.ReadDir(to); len(left) != 0 {
				t.Errorf("the restore wrote %v", left)
			}
		})
	}
}
