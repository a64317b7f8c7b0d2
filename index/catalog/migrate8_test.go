package catalog

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestMigrationFrom7 turns a catalog with data back into the schema 7
// layout (one files row per entry), reopens it, and checks that step 8
// packs the rows: views, lookups, listings and FindVersions answer as
// before, for a small chain and for a directory of several chunks with
// names stored twice, links and extreme times.
func TestMigrationFrom7(t *testing.T) { forEachBackend(t, testMigrationFrom7) }

func testMigrationFrom7(t *testing.T) {
	c, ids := chainCatalog(t)
	big := bigDirDump(t, c, 3000)
	before := append(catalogAnswers(t, c, ids), bigAnswers(t, c, big)...)
	loc, _ := locations.Load(c)
	downgradeTo7(t, c)
	var n int
	if err := c.r.QueryRow(`SELECT count(*) FROM files WHERE dump_id = ?`, big).Scan(&n); err != nil || n < 3000 {
		t.Fatalf("schema 7 rows of the big dump: %d, %v", n, err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c2, err := Open(loc.(string))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if err := c2.r.QueryRow(`SELECT count(*) FROM files WHERE dump_id = ?`, big).Scan(&n); err != nil || n < 3 || n > 300 {
		t.Errorf("chunks of the big dump after migration: %d, %v", n, err)
	}
	after := append(catalogAnswers(t, c2, ids), bigAnswers(t, c2, big)...)
	if !slices.Equal(before, after) {
		for i := range min(len(before), len(after)) {
			if before[i] != after[i] {
				t.Fatalf("after migration from schema 7, answer %d is\n%q\nbefore it was\n%q", i, after[i], before[i])
			}
		}
		t.Fatalf("after migration from schema 7: %d answers, before %d", len(after), len(before))
	}
}

// bigDirDump adds a dump whose directory "big" holds n random entries
// (some names twice, in stream order) and returns its id.
func bigDirDump(t *testing.T, c *Catalog, n int) int64 {
	t.Helper()
	run := mkRun(t, c, "20250310010000")
	id, err := c.CreateDump(t.Context(), &Dump{RunID: run, Host: "web2", Path: "/big", Level: 0, FrameSize: testFrameSize, Started: t0})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(7, 7))
	recs := []FileRecord{{Path: "big", Type: '5', Mode: 0o755}}
	for i := range n {
		name := fmt.Sprintf("f%05d-%x", r.IntN(n), r.IntN(4)) // collisions: names stored twice
		rec := FileRecord{Path: "big/" + name, Type: '0', Size: r.Int64N(1 << 40), Mode: 0o600, UID: 1000 + i%3, GID: 100}
		switch i % 5 {
		case 0:
			rec.Mtime = time.Unix(0, -1<<63)
		case 1:
			rec.Type, rec.Link = '2', "../elsewhere/"+name
		case 2:
			rec.Mtime = time.Unix(1_700_000_000+int64(i), int64(i)*7919)
		}
		recs = append(recs, rec)
	}
	for i := range recs {
		recs[i].TarOffset = int64(i+1) * 1536
	}
	ingest(t, c, id, recs...)
	holdDump(t, c, id, int64(len(recs)+2)*1536)
	return id
}

// bigAnswers is what a catalog says about bigDirDump's directory.
func bigAnswers(t *testing.T, c *Catalog, id int64) []string {
	t.Helper()
	var out []string
	recs, err := c.ListDir(t.Context(), id, "big")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		out = append(out, fmt.Sprintf("ls %+v", r))
		if len(out)%97 == 0 {
			e, err := c.Entry(t.Context(), id, r.Path)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("entry %+v", *e))
		}
	}
	vs, _, err := c.FindVersions(t.Context(), "web2", "/big", "f0001*", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		out = append(out, fmt.Sprintf("version %d %+v", v.Dump.ID, v.FileRecord))
	}
	return out
}

// downgradeTo7 rewrites the packed files of schema 8 as schema 7 had them:
// one row per entry.
func downgradeTo7(t *testing.T, c *Catalog) {
	t.Helper()
	ddl := `
CREATE TABLE files_v7 (
	dump_id  INTEGER NOT NULL REFERENCES dumps(id) ON DELETE CASCADE,
	dir_id   INTEGER NOT NULL REFERENCES dirs(id),
	name     TEXT    NOT NULL,
	frame    INTEGER NOT NULL,
	"offset" INTEGER NOT NULL,
	type     TEXT    NOT NULL,
	size     INTEGER NOT NULL,
	mode     INTEGER NOT NULL,
	mtime    INTEGER,
	uid      INTEGER NOT NULL,
	gid      INTEGER NOT NULL,
	link     TEXT    NOT NULL DEFAULT '',
	span     INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (dump_id, dir_id, name, frame, "offset")
) WITHOUT ROWID;
`
	if c.d.pg {
		ddl = pgDDL(ddl)
	}
	err := c.write(t.Context(), "downgrade", func(tx *sql.Tx) error {
		if _, err := tx.Exec(ddl); err != nil {
			return err
		}
		rows, err := tx.Query(`SELECT f.dump_id, f.dir_id, d.frame_size, f.packed FROM files f JOIN dumps d ON d.id = f.dump_id`)
		if err != nil {
			return err
		}
		type row struct {
			dump, dir, fs int64
			e             entry
		}
		var all []row
		for rows.Next() {
			var dump, dir, fs int64
			var b []byte
			if err := rows.Scan(&dump, &dir, &fs, &b); err != nil {
				return err
			}
			es, err := unpackEntries(b, nil)
			if err != nil {
				return err
			}
			for _, e := range es {
				all = append(all, row{dump, dir, fs, e})
			}
		}
		rows.Close()
		for _, r := range all {
			var mtime any
			if r.e.hasMtime {
				mtime = r.e.mtime
			}
			if _, err := tx.Exec(`INSERT INTO files_v7(dump_id, dir_id, name, frame, "offset", type, size, mode, mtime, uid, gid, link, span)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, r.dump, r.dir, r.e.name, r.e.tarOff/r.fs, r.e.tarOff%r.fs, string(r.e.typ),
				r.e.size, int64(r.e.mode), mtime, r.e.uid, r.e.gid, r.e.link, r.e.span); err != nil {
				return err
			}
		}
		for _, q := range []string{`DROP TABLE files`, `ALTER TABLE files_v7 RENAME TO files`} {
			if _, err := tx.Exec(q); err != nil {
				return err
			}
		}
		// Columns of later steps go too (step 10 adds dumps.payload).
		if _, err := tx.Exec(`ALTER TABLE dumps DROP COLUMN payload`); err != nil {
			return err
		}
		if c.d.pg {
			return pgSetMeta(tx, "schema_version", 7)
		}
		_, err = tx.Exec(`PRAGMA user_version = 7`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
