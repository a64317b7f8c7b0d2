package server

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/server/restore"
)

// TestIncrementalNights: the second night dumps level 1 against the
// first night's full (the agent advanced its state only after the server
// confirmed), holds only what changed, and `recover --all` of the chain
// reproduces the tree with the deletion and the rename applied.
func TestIncrementalNights(t *testing.T) {
	s := newSite(t, "")
	run := func() {
		t.Helper()
		var out bytes.Buffer
		if _, err := Dump(context.Background(), s.cfg, Deps{Log: testLogger(t), Out: &out}); err != nil {
			t.Fatalf("night: %v\n%s", err, out.String())
		}
	}
	run()
	mt := time.Now().Add(time.Hour)
	os.WriteFile(filepath.Join(s.data, "etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\nnew:x:1:1::/:/bin/false\n"), 0o644)
	os.Chtimes(filepath.Join(s.data, "etc/passwd"), mt, mt)
	os.Remove(filepath.Join(s.data, "empty.txt"))
	os.Rename(filepath.Join(s.data, "bin/run.sh"), filepath.Join(s.data, "bin/run2.sh"))
	run()

	cat, err := catalog.Open(s.cfg.Catalog)
	if err != nil {
		t.Fatal(err)
	}
	dumps, err := cat.Dumps(t.Context(), "localhost", s.data)
	if err != nil {
		t.Fatal(err)
	}
	var l1 *catalog.Dump
	for i := range dumps {
		if dumps[i].Level == 1 {
			l1 = &dumps[i]
		}
	}
	if l1 == nil || l1.Status != catalog.DumpGood {
		t.Fatalf("second night: no good level-1 dump of %s in %+v", s.data, dumps)
	}
	files, err := cat.ListDir(t.Context(), l1.ID, "")
	cat.Close()
	if err != nil {
		t.Fatal(err)
	}
	if l1.OrigSize > 1<<20 {
		t.Errorf("level 1 image is %d bytes: it holds unchanged data (big.bin is 3 MiB)", l1.OrigSize)
	}
	t.Logf("level 1 root entries: %d, tar bytes %d", len(files), l1.OrigSize)

	to := filepath.Join(s.dir, "chain")
	res, err := restore.Tree(context.Background(), s.cfg, restore.TreeRequest{Host: "localhost", Path: s.data, To: to, Volumes: mustVolumes(t, s.cfg)}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Chain) != 2 || res.Chain[0].Level != 0 || res.Chain[1].Level != 1 {
		t.Errorf("chain %+v; want level 0 then level 1", res.Chain)
	}
	if out, err := exec.Command("diff", "-r", "--no-dereference", s.data, to).CombinedOutput(); err != nil {
		t.Errorf("restored chain differs from the source:\n%s", out)
	}
}

// TestServerZstd: with compress = "server-zstd" the agent sends plain tar
// and the server writes independent zstd frames; the image restores with
// dd | zstd | tar and single files restore by seeking.
func TestServerZstd(t *testing.T) {
	s := newSite(t, "")
	dt := s.cfg.Dumptypes["gz"]
	dt.Compress = "server-zstd"
	s.cfg.Dumptypes["gz"] = dt
	var out bytes.Buffer
	if _, err := Dump(context.Background(), s.cfg, Deps{Log: testLogger(t), Out: &out}); err != nil {
		t.Fatalf("night: %v\n%s", err, out.String())
	}
	sub := filepath.Join(s.data, "sub")
	files, _ := filepath.Glob(filepath.Join(s.cfg.Changer.Path, "slot*", "*._"+"*sub.0"))
	if len(files) != 1 {
		t.Fatalf("vtape files of %s: %v", sub, files)
	}
	dst := t.TempDir()
	cmd := exec.Command("sh", "-c", "dd if="+files[0]+" bs=32k skip=1 status=none | zstd -dc | tar -xpf - -C "+dst)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("standard tools: %v\n%s", err, b)
	}
	if b, err := exec.Command("diff", "-r", "--no-dereference", sub, dst).CombinedOutput(); err != nil {
		t.Errorf("server-zstd image differs:\n%s", b)
	}
	res, err := restore.File(context.Background(), s.cfg, restore.Request{Host: "localhost", Path: sub, File: "deep/a/b/c/file with spaces.txt", To: t.TempDir(), Volumes: mustVolumes(t, s.cfg)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Dump.Comp != "zst" {
		t.Errorf("catalog says comp %q, want zst", res.Dump.Comp)
	}
}
