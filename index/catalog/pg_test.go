package catalog

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/tapir-backup/tapir/internal/pgtest"
)

// pgExec runs statements on a PostgreSQL database outside any catalog.
func pgExec(t *testing.T, dsn string, stmts ...string) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, s := range stmts {
		if _, err := conn.Exec(context.Background(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// The PostgreSQL counterpart of the PRAGMAs: tapir_meta holds the
// application id and the schema version, and the tables are there.
func TestPostgresMeta(t *testing.T) {
	dsn := pgtest.DSN(t)
	c, err := Open(dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Path() != dsn {
		t.Errorf("Path() = %q, want %q", c.Path(), dsn)
	}
	meta := map[string]int64{}
	rows, err := c.r.Query(`SELECT key, value FROM tapir_meta`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k string
		var v int64
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		meta[k] = v
	}
	rows.Close()
	if meta["application_id"] != applicationID || meta["schema_version"] != SchemaVersion || len(meta) != 2 {
		t.Errorf("tapir_meta = %v", meta)
	}
	var n int
	if err := c.r.QueryRow(`SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 15 { // runs volumes dumps parts frames dirs files listings force failed_files servers names dumpdirs copies tapir_meta
		t.Errorf("%d tables, want 15", n)
	}
}

// A PostgreSQL catalog left at version 1 by an older tapir is migrated
// step by step to the current version, and its data stays.
func TestPostgresMigrationFromV1(t *testing.T) {
	dsn := pgtest.DSN(t)
	pgExec(t, dsn,
		`CREATE TABLE tapir_meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL)`,
		fmt.Sprintf(`INSERT INTO tapir_meta VALUES ('application_id', %d), ('schema_version', 1)`, applicationID),
		pgDDL(migrations[0]),
		`INSERT INTO runs(datestamp, started, status) VALUES ('20250301010000', 1, 'ok')`)
	c, err := Open(dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r, err := c.Run(t.Context(), "20250301010000")
	if err != nil || r.Status != RunOK {
		t.Fatalf("run after migration: %+v %v", r, err)
	}
	var v int64
	if err := c.r.QueryRow(`SELECT value FROM tapir_meta WHERE key = 'schema_version'`).Scan(&v); err != nil || v != SchemaVersion {
		t.Fatalf("schema_version %d %v", v, err)
	}
	// The new columns work.
	mkDump(t, c, r.ID, "web1", "/etc", 0)
}

// The PostgreSQL counterpart of TestOpenRefuses: a newer schema, another
// application's meta table, a database with tables of its own, and a
// server that is not there are refused, naming the DSN without its
// password.
func TestPostgresOpenRefuses(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dsn string)
		want  string
	}{
		{"newer schema", func(t *testing.T, dsn string) {
			c, err := Open(dsn)
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
			pgExec(t, dsn, `UPDATE tapir_meta SET value = 99 WHERE key = 'schema_version'`)
		}, "schema version 99 is newer than this tapir understands (" + strconv.Itoa(SchemaVersion) + ")"},
		{"foreign application", func(t *testing.T, dsn string) {
			pgExec(t, dsn, `CREATE TABLE tapir_meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL)`,
				`INSERT INTO tapir_meta VALUES ('application_id', 42)`)
		}, "not a tapir catalog (application_id 0x2a in tapir_meta)"},
		{"foreign tables", func(t *testing.T, dsn string) {
			pgExec(t, dsn, `CREATE TABLE t(x int)`)
		}, "not a tapir catalog (a PostgreSQL database with tables but no tapir_meta)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dsn := pgtest.DSN(t)
			tc.setup(t, dsn)
			c, err := Open(dsn)
			if err == nil {
				c.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), dsn) {
				t.Errorf("error %q does not contain %q and the DSN", err, tc.want)
			}
		})
	}
	t.Run("no server", func(t *testing.T) {
		pgtest.Server(t) // only where the other cases run
		dsn := "postgres://tapir:s3cret@/nodb?host=/nonexistent&sslmode=disable&connect_timeout=5"
		c, err := Open(dsn)
		if err == nil {
			c.Close()
			t.Fatal("Open succeeded")
		}
		if strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "tapir:xxxxx@") {
			t.Errorf("error %q shows the password or not the masked DSN", err)
		}
	})
}

func TestCatalogMaskDSN(t *testing.T) {
	for in, want := range map[string]string{
		"/var/lib/tapir/catalog.db":                       "/var/lib/tapir/catalog.db",
		"postgres://tapir@db/cat":                         "postgres://tapir@db/cat",
		"postgres://tapir:pw@db:5432/cat?sslmode=require": "postgres://tapir:xxxxx@db:5432/cat?sslmode=require",
		"postgresql://db/cat?password=pw&user=u":          "postgresql://db/cat?password=xxxxx&user=u",
	} {
		if got := MaskDSN(in); got != want {
			t.Errorf("MaskDSN(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRebind(t *testing.T) {
	for in, want := range map[string]string{
		`SELECT 1`: `SELECT 1`,
		`SELECT a FROM t WHERE b = ? AND c IN (?, ?)`:                       `SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)`,
		`SELECT '?', "a?b" FROM t WHERE x = ? -- why?` + "\n" + `AND y = ?`: `SELECT '?', "a?b" FROM t WHERE x = $1 -- why?` + "\n" + `AND y = $2`,
	} {
		if got := rebind(in); got != want {
			t.Errorf("rebind(%q) = %q, want %q", in, got, want)
		}
	}
}

// globCases are names and shell patterns whose matching SQLite's GLOB
// decides; Find on PostgreSQL must decide the same.
var globCases = struct{ names, patterns []string }{
	names: []string{"", "a", "b", "ab", "abc", "A", "a.c", "a*c", "a?c", "a[c", "a]c", "a-c", "a^c", "a\\c",
		"x.txt", "X.TXT", "notes", "z", "é", "éa", "a\nb", "a$", "(a)", "a+b", "a{1}", "]", "-", "^"},
	patterns: []string{"*", "?", "a*", "*c", "a?c", "a.c", "*.txt", "*.TXT", "[ab]", "[^ab]", "[a-c]*", "[]]",
		"[]a]", "[^]]", "[-a]", "[a-]", "a[*]c", "a[?]c", "a[[]c", "a\\c", "[", "a[", "[!a]", "a^c", "[x^]",
		"?", "??", "é*", "[é]", "a$", "(a)", "a+b", "a{1}", "a|b", "^", "a\nb", "[a\\]c", "*[", "[b-a]", "[b-a]c", "[a-c-e]", "[^a-c]", "[^a-]", "[%_]", "a?b", "a*b", "[^b-a]", "a-[a-c]"},
}

// The shell patterns of Find mean on PostgreSQL what SQLite's GLOB
// means: each name and pattern is decided by SQLite, and the regular
// expression globToRegexp makes of the pattern decides the same on
// PostgreSQL.
func TestGlobOnPostgresMatchesSQLite(t *testing.T) {
	lite, err := sql.Open("sqlite3", ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer lite.Close()
	pg, err := pgx.Connect(context.Background(), pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close(context.Background())
	for _, p := range globCases.patterns {
		re := globToRegexp(p)
		for _, n := range globCases.names {
			var want, got bool
			if err := lite.QueryRow(`SELECT ? GLOB ?`, n, p).Scan(&want); err != nil {
				t.Fatal(err)
			}
			if err := pg.QueryRow(context.Background(), `SELECT $1::text ~ $2::text`, n, re).Scan(&got); err != nil {
				t.Fatalf("pattern %q as %q: %v", p, re, err)
			}
			if got != want {
				t.Errorf("%q against pattern %q: PostgreSQL (%q) says %v, SQLite %v", n, p, re, got, want)
			}
		}
	}
}

// Two processes (two Catalogs) opening one new PostgreSQL catalog at the
// same moment migrate it once: TestConcurrentOpenMigratesOnce runs on both
// backends; this one checks the meta table holds one version row after it.
func TestPostgresConcurrentOpenOneMeta(t *testing.T) {
	dsn := pgtest.DSN(t)
	var wg sync.WaitGroup
	errs := make([]error, 6)
	cats := make([]*Catalog, 6)
	for i := range cats {
		wg.Go(func() { cats[i], errs[i] = Open(dsn) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		defer cats[i].Close()
	}
	var n int
	if err := cats[0].r.QueryRow(`SELECT count(*) FROM tapir_meta`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("tapir_meta has %d rows (%v), want 2", n, err)
	}
}

// On a PostgreSQL database in UTF8 a file name that is not UTF-8 cannot be
// stored: the ingest fails and says how to keep such names. Text sorts
// byte by byte, as on SQLite.
func TestPostgresNamesAndOrder(t *testing.T) {
	c, err := Open(pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	run := mkRun(t, c, "20250301010000")
	d := mkDump(t, c, run, "web1", "/etc", 0)
	w, err := c.NewFileWriter(t.Context(), d, testFrameSize)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Add(t.Context(), FileRecord{Path: "caf\xe9", Type: '0', Mode: 0o644, Mtime: t0}); err != nil {
		t.Fatal(err)
	}
	err = w.Commit(t.Context())
	w.Abort()
	var enc string
	if qerr := c.r.QueryRow(`SHOW server_encoding`).Scan(&enc); qerr != nil {
		t.Fatal(qerr)
	}
	if enc == "UTF8" && (err == nil || !strings.Contains(err.Error(), "SQL_ASCII")) {
		t.Errorf("ingest of a non-UTF-8 name into a UTF8 database: %v", err)
	}
	for _, l := range []string{"b", "B", "a", "_", "é"} {
		addVolume(t, c, l, "")
	}
	vs, err := c.Volumes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range vs {
		got = append(got, v.Label)
	}
	if strings.Join(got, " ") != "B _ a b é" {
		t.Errorf("labels in order %q, want byte order", got)
	}
}
