package catalog

import (
	"database/sql"
	"fmt"
	"slices"
	"testing"
)

// TestMigrationFrom6 turns a catalog with data back into the schema 6
// layout (one index row per entry with a rowid and files_entry, every
// listing value in its row), reopens it, and checks that step 7 converts
// the rows: views, listings, lookups answer as before.
func TestMigrationFrom6(t *testing.T) { forEachBackend(t, testMigrationFrom6) }

func testMigrationFrom6(t *testing.T) {
	c, ids := chainCatalog(t)
	before := catalogAnswers(t, c, ids)
	loc, _ := locations.Load(c)
	downgradeTo6(t, c)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c2, err := Open(loc.(string))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	var n int
	if err := c2.r.QueryRow(`SELECT count(*) FROM dumpdirs`).Scan(&n); err != nil || n == 0 {
		t.Fatalf("dumpdirs after migration: %d rows, %v", n, err)
	}
	after := catalogAnswers(t, c2, ids)
	if !slices.Equal(before, after) {
		t.Errorf("after migration from schema 6 the catalog answers\n%q\nbefore it answered\n%q", after, before)
	}
	// The index still takes new rows, and names was filled.
	if err := c2.r.QueryRow(`SELECT count(*) FROM names WHERE name = 'keep'`).Scan(&n); err != nil || n != 1 {
		t.Errorf("names of keep after migration: %d, %v", n, err)
	}
}

// catalogAnswers is what a catalog says about chainCatalog's DLE, as text.
func catalogAnswers(t *testing.T, c *Catalog, ids []int64) []string {
	t.Helper()
	var out []string
	for _, asOf := range []string{"20250301", "20250302", ""} {
		v, err := c.View(t.Context(), "web1", "/srv", asOf)
		if err != nil {
			t.Fatal(err)
		}
		err = v.Walk(t.Context(), "", func(r ViewRecord) error {
			out = append(out, fmt.Sprintf("%s walk %s %c %d %d %d", asOf, r.Path, r.Type, r.Size, r.TarOffset, r.Dump))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		found, _, err := v.Find(t.Context(), "*", 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range found {
			out = append(out, fmt.Sprintf("%s find %s %d", asOf, r.Path, r.Dump))
		}
	}
	for _, id := range ids {
		for _, d := range []string{"", "d", "gone"} {
			l, ok, err := c.Listing(t.Context(), id, d)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("listing %d %q %v %q", id, d, ok, l))
			recs, err := c.ListDir(t.Context(), id, d)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				out = append(out, fmt.Sprintf("ls %d %s %d %d %d", id, r.Path, r.Size, r.TarOffset, r.Span))
			}
		}
	}
	loc, err := c.FindFile(t.Context(), "web1", "/srv", "d/y", "")
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, fmt.Sprintf("findfile %d %d", loc.Dump.ID, loc.File.Size))
	return out
}

// downgradeTo6 rewrites the files, listings and names of schema 7 as
// schema 6 had them.
func downgradeTo6(t *testing.T, c *Catalog) {
	t.Helper()
	downgradeTo7(t, c)
	ddl := `
CREATE TABLE files_v6 (
	dump_id  INTEGER NOT NULL REFERENCES dumps(id) ON DELETE CASCADE,
	dir_id   INTEGER NOT NULL REFERENCES dirs(id),
	name     TEXT    NOT NULL,
	type     TEXT    NOT NULL,
	size     INTEGER NOT NULL,
	mode     INTEGER NOT NULL,
	mtime    INTEGER,
	uid      INTEGER NOT NULL,
	gid      INTEGER NOT NULL,
	link     TEXT    NOT NULL DEFAULT '',
	frame    INTEGER NOT NULL,
	"offset" INTEGER NOT NULL,
	span     INTEGER NOT NULL DEFAULT 0
);
INSERT INTO files_v6(dump_id, dir_id, name, type, size, mode, mtime, uid, gid, link, frame, "offset", span)
	SELECT dump_id, dir_id, name, type, size, mode, mtime, uid, gid, link, frame, "offset", span FROM files
	ORDER BY dump_id, frame, "offset";
DROP TABLE files;
ALTER TABLE files_v6 RENAME TO files;
CREATE INDEX files_entry ON files(dump_id, dir_id, name);
CREATE TABLE listings_v6 (
	dump_id INTEGER NOT NULL REFERENCES dumps(id) ON DELETE CASCADE,
	dir_id  INTEGER NOT NULL REFERENCES dirs(id),
	dumpdir BLOB    NOT NULL,
	PRIMARY KEY (dump_id, dir_id)
) WITHOUT ROWID;
`
	if c.d.pg {
		ddl = pgDDL(ddl)
	}
	err := c.write(t.Context(), "downgrade", func(tx *sql.Tx) error {
		if _, err := tx.Exec(ddl); err != nil {
			return err
		}
		rows, err := tx.Query(`SELECT l.dump_id, l.dir_id, v.packed FROM listings l JOIN dumpdirs v ON v.id = l.dumpdir_id`)
		if err != nil {
			return err
		}
		type row struct {
			dump, dir int64
			b         []byte
		}
		var all []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.dump, &r.dir, &r.b); err != nil {
				return err
			}
			if r.b, err = unpackDumpdir(r.b); err != nil {
				return err
			}
			all = append(all, r)
		}
		rows.Close()
		for _, r := range all {
			if _, err := tx.Exec(`INSERT INTO listings_v6(dump_id, dir_id, dumpdir) VALUES (?, ?, ?)`, r.dump, r.dir, r.b); err != nil {
				return err
			}
		}
		for _, q := range []string{`DROP TABLE listings`, `ALTER TABLE listings_v6 RENAME TO listings`, `DROP TABLE names`, `DROP TABLE dumpdirs`} {
			if _, err := tx.Exec(q); err != nil {
				return err
			}
		}
		if c.d.pg {
			return pgSetMeta(tx, "schema_version", 6)
		}
		_, err = tx.Exec(`PRAGMA user_version = 6`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
