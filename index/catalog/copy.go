package catalog

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// TableSum is what Checksums says of one table: how many rows it has and
// the SHA-256 of its rows, read in primary-key order (every column, for a
// table without a primary key) and encoded canonically (see Checksums).
type TableSum struct {
	Table  string
	Rows   int64
	SHA256 string // hex
}

// CopyResult is what Copy did: the tables copied, in the order they were
// copied, with their row counts and checksums (the same in the source and
// the copy: Copy verified it), and how long the copy and the verification
// took.
type CopyResult struct {
	Tables   []TableSum
	Rows     int64         // of all tables
	Copied   time.Duration // reading the source and committing the copy
	Verified time.Duration // the checksums of both, after the commit
	// Analyzed is how long the copy's statistics took (analyze), 0 when
	// they could not be gathered (AnalyzeErr says why: the copy is good,
	// its first queries are slower until autovacuum gets to it).
	Analyzed   time.Duration
	AnalyzeErr error
}

// copyTamper, when set by a test, sees every row Copy writes (the values
// in the table's column order) and may change it, so that a test proves
// that the verification catches a copy that differs.
var copyTamper func(table string, row []any)

// Copy copies every row of the catalog src into dst, a new catalog (just
// opened, so migrated to the same SchemaVersion, and without a single row:
// Copy refuses anything else, and never merges two catalogs). Either may be
// on SQLite or PostgreSQL.
//
// The tables and their columns are read from the databases themselves
// (sqlite_schema, information_schema), so that every schema step is copied
// without this code knowing it; the two schemas must have the same tables
// and columns. Tables are copied parents first (foreign keys), all in one
// write transaction of dst: a copy that fails or whose ctx ends commits
// nothing. The source is read in one snapshot. On PostgreSQL the rows go
// in with COPY, and the identity sequences are set past the copied ids.
//
// After the commit both catalogs are read again and compared table by
// table (Checksums): a difference in a row count or a checksum is an
// error naming the table. A name that a PostgreSQL database in UTF8 cannot
// hold (not valid UTF-8) fails the copy with an error naming the table,
// the row and what to do.
//
// The source must not be written meanwhile (a copy of a catalog that a
// night is writing would not verify): the caller keeps the runs away
// (server.CopyCatalog takes the run lock).
func Copy(ctx context.Context, src, dst *Catalog, log *slog.Logger) (CopyResult, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var res CopyResult
	op := "copy the catalog to " + dst.path
	if src == dst || src.path == dst.path {
		return res, src.fail(op, errors.New("the source and the destination are the same catalog; name a new file or a new PostgreSQL database"))
	}
	var srcTables, dstTables []table
	if err := src.read(ctx, "copy: read the schema", func(tx *sql.Tx) (err error) {
		srcTables, err = describe(tx, src.d)
		return err
	}); err != nil {
		return res, err
	}
	if err := dst.read(ctx, "copy: read the schema", func(tx *sql.Tx) (err error) {
		dstTables, err = describe(tx, dst.d)
		return err
	}); err != nil {
		return res, err
	}
	if err := sameSchema(srcTables, dstTables); err != nil {
		return res, src.fail(op, err)
	}
	order, err := parentsFirst(srcTables)
	if err != nil {
		return res, src.fail(op, err)
	}
	dstByName := map[string]table{}
	for _, t := range dstTables {
		dstByName[t.name] = t
	}

	start := time.Now()
	var srcSums []TableSum
	var werr error
	rerr := src.read(ctx, op, func(stx *sql.Tx) error {
		werr = dst.write(ctx, "copy the catalog from "+src.path, func(dtx *sql.Tx) error {
			res.Tables, res.Rows = nil, 0 // a PostgreSQL write that lost a race runs again
			if err := mustBeEmpty(dtx, dst, order); err != nil {
				return err
			}
			utf8Only := false
			if dst.d.pg {
				var enc string
				if err := dtx.QueryRow(`SHOW server_encoding`).Scan(&enc); err != nil {
					return err
				}
				utf8Only = strings.EqualFold(enc, "UTF8")
			}
			for _, t := range order {
				t0 := time.Now()
				n, err := copyTable(ctx, stx, src.d, dtx, dst, t, dstByName[t.name], utf8Only)
				if err != nil {
					return err
				}
				res.Rows += n
				el := time.Since(t0)
				log.Info("copied table", "table", t.name, "rows", n, "seconds", el.Seconds(), "rows_per_second", rate(n, el))
			}
			if ctx.Err() != nil {
				return stopped(ctx) // stopped before the commit: nothing is
			}
			return nil
		})
		if werr != nil {
			return errCopyFailed
		}
		// The source's checksums on the snapshot that was copied.
		var err error
		srcSums, err = checksumTables(ctx, stx, src.d, order)
		return err
	})
	if werr != nil {
		return res, werr
	}
	if rerr != nil {
		return res, fmt.Errorf("%w (the copy in %s is committed but not verified: remove it and copy again)", rerr, dst.path)
	}
	res.Copied = time.Since(start)
	log.Info("copy committed", "to", dst.path, "rows", res.Rows, "seconds", res.Copied.Seconds(), "rows_per_second", rate(res.Rows, res.Copied))

	vstart := time.Now()
	dstSums, err := Checksums(ctx, dst)
	if err != nil {
		return res, fmt.Errorf("%w (the copy is committed but not verified: remove it and copy again)", err)
	}
	res.Verified = time.Since(vstart)
	res.Tables = srcSums
	if err := compareSums(srcSums, dstSums); err != nil {
		return res, dst.fail("verify the copy from "+src.path, fmt.Errorf("%w; the copy does not match its source: remove it (delete the file, or drop and create the database) and copy again", err))
	}
	log.Info("copy verified", "to", dst.path, "tables", len(srcSums), "seconds", res.Verified.Seconds())
	astart := time.Now()
	if err := dst.analyze(ctx); err != nil {
		res.AnalyzeErr = err
		log.Warn("copy: the statistics of the copy were not gathered; its first queries may be slow until autovacuum gets to it", "to", dst.path, "err", err)
	} else {
		res.Analyzed = time.Since(astart)
		log.Info("copy analyzed", "to", dst.path, "seconds", res.Analyzed.Seconds())
	}
	return res, nil
}

// analyze gathers the query planner's statistics of a catalog after a
// bulk load (Copy). On PostgreSQL it is VACUUM (ANALYZE), which also sets
// the visibility map: without it, until autovacuum comes by, the planner
// knows nothing of the tables and an index-only scan reads every heap
// tuple too (an ls of a 100,000-entry directory took about twice as long).
// On SQLite it is ANALYZE.
func (c *Catalog) analyze(ctx context.Context) error {
	q := "ANALYZE"
	if c.d.pg {
		q = "VACUUM (ANALYZE)"
	}
	_, err := c.w.ExecContext(ctx, q)
	return err
}

// errCopyFailed ends the source's read transaction when the write of the
// copy failed; Copy returns the write's error.
var errCopyFailed = errors.New("the copy failed")

func rate(n int64, d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64(float64(n) / d.Seconds())
}

// Checksums returns, for every table of the catalog (in name order), its
// row count and the SHA-256 of its rows. The rows are read in primary-key
// order (every column, NULLs first, for a table without a primary key) and
// each value is encoded by kind, the same on SQLite and PostgreSQL: 'N'
// for NULL; 'I' and 8 bytes big-endian for an integer; 'T' (text) or 'B'
// (blob), the length as a uvarint, then the bytes; columns in name order.
// Two catalogs with the same rows have the same checksums, whatever their
// backends.
func Checksums(ctx context.Context, c *Catalog) ([]TableSum, error) {
	var sums []TableSum
	err := c.read(ctx, "checksum the tables", func(tx *sql.Tx) error {
		ts, err := describe(tx, c.d)
		if err != nil {
			return err
		}
		sums, err = checksumTables(ctx, tx, c.d, ts)
		return err
	})
	return sums, err
}

// Compare checks that the catalogs a and b hold the same rows (Checksums)
// and returns an error naming each table that differs.
func Compare(ctx context.Context, a, b *Catalog) error {
	as, err := Checksums(ctx, a)
	if err != nil {
		return err
	}
	bs, err := Checksums(ctx, b)
	if err != nil {
		return err
	}
	if err := compareSums(as, bs); err != nil {
		return fmt.Errorf("catalogs %s and %s differ: %w", a.path, b.path, err)
	}
	return nil
}

// compareSums names each table whose count or checksum differs.
func compareSums(src, dst []TableSum) error {
	byName := map[string]TableSum{}
	for _, s := range dst {
		byName[s.Table] = s
	}
	var errs []error
	for _, s := range src {
		d, ok := byName[s.Table]
		delete(byName, s.Table)
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("table %s is missing from the copy", s.Table))
		case d.Rows != s.Rows:
			errs = append(errs, fmt.Errorf("table %s has %d rows in the source and %d in the copy", s.Table, s.Rows, d.Rows))
		case d.SHA256 != s.SHA256:
			errs = append(errs, fmt.Errorf("table %s: the rows differ (SHA-256 %.12s… in the source, %.12s… in the copy)", s.Table, s.SHA256, d.SHA256))
		}
	}
	for _, d := range dst {
		if _, ok := byName[d.Table]; ok {
			errs = append(errs, fmt.Errorf("table %s is in the copy but not in the source", d.Table))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return errors.New(strings.Join(msgs, "; "))
}

// kind is how a column's values are compared and copied.
type kind byte

const (
	kindInt   kind = 'I'
	kindText  kind = 'T'
	kindBlob  kind = 'B'
	kindFloat kind = 'F'
)

type column struct {
	name     string
	kind     kind
	nullable bool
	identity bool // PostgreSQL: an identity column, whose sequence Copy sets
}

// table is a table as the database describes it.
type table struct {
	name string
	cols []column
	pk   []string // primary-key columns in key order; none for a rowid table without one
	refs []string // the tables its foreign keys point at
}

// quoteIdent quotes an SQL identifier (the same on SQLite and PostgreSQL).
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// describe reads the tables of the catalog (all but PostgreSQL's
// tapir_meta, whose counterpart on SQLite lives in the file header), their
// columns, primary keys and foreign keys, in name order.
func describe(tx *sql.Tx, d dialect) ([]table, error) {
	var q string
	if d.pg {
		q = `SELECT table_name FROM information_schema.tables
			WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' AND table_name <> 'tapir_meta'
			ORDER BY table_name`
	} else {
		q = `SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\' ORDER BY name`
	}
	names, err := queryStrings(tx, q)
	if err != nil {
		return nil, fmt.Errorf("list the tables: %w", err)
	}
	var out []table
	for _, name := range names {
		t := table{name: name}
		if err := describeTable(tx, d, &t); err != nil {
			return nil, fmt.Errorf("describe table %s: %w", name, err)
		}
		out = append(out, t)
	}
	return out, nil
}

func describeTable(tx *sql.Tx, d dialect, t *table) error {
	var err error
	if d.pg {
		rows, err := tx.Query(`SELECT column_name, data_type, is_nullable, is_identity FROM information_schema.columns
			WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position`, t.name)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var name, typ, nullable, identity string
			if err := rows.Scan(&name, &typ, &nullable, &identity); err != nil {
				return err
			}
			k, err := kindOf(typ)
			if err != nil {
				return fmt.Errorf("column %s: %w", name, err)
			}
			t.cols = append(t.cols, column{name: name, kind: k, nullable: nullable == "YES", identity: identity == "YES"})
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		rel := quoteIdent(t.name)
		if t.pk, err = queryStrings(tx, `SELECT a.attname FROM pg_index i
			JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
			WHERE i.indrelid = to_regclass(?) AND i.indisprimary
			ORDER BY array_position(i.indkey::int2[], a.attnum)`, rel); err != nil {
			return err
		}
		t.refs, err = queryStrings(tx, `SELECT DISTINCT cf.relname::text FROM pg_constraint c
			JOIN pg_class cf ON cf.oid = c.confrelid
			WHERE c.conrelid = to_regclass(?) AND c.contype = 'f' ORDER BY 1`, rel)
		return err
	}
	rows, err := tx.Query(`SELECT name, type, "notnull", pk FROM pragma_table_info(?) ORDER BY cid`, t.name)
	if err != nil {
		return err
	}
	defer rows.Close()
	type pkCol struct {
		name string
		pos  int
	}
	var pks []pkCol
	for rows.Next() {
		var name, typ string
		var notnull bool
		var pk int
		if err := rows.Scan(&name, &typ, &notnull, &pk); err != nil {
			return err
		}
		k, err := kindOf(typ)
		if err != nil {
			return fmt.Errorf("column %s: %w", name, err)
		}
		t.cols = append(t.cols, column{name: name, kind: k, nullable: !notnull && pk == 0})
		if pk > 0 {
			pks = append(pks, pkCol{name, pk})
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	rows.Close()
	slices.SortFunc(pks, func(a, b pkCol) int { return a.pos - b.pos })
	for _, p := range pks {
		t.pk = append(t.pk, p.name)
	}
	t.refs, err = queryStrings(tx, `SELECT DISTINCT "table" FROM pragma_foreign_key_list(?) ORDER BY 1`, t.name)
	return err
}

// kindOf maps a declared column type (SQLite's, or PostgreSQL's
// information_schema data_type) to a kind.
func kindOf(typ string) (kind, error) {
	u := strings.ToUpper(typ)
	switch {
	case strings.Contains(u, "INT"):
		return kindInt, nil
	case strings.Contains(u, "TEXT"), strings.Contains(u, "CHAR"), strings.Contains(u, "CLOB"):
		return kindText, nil
	case strings.Contains(u, "BLOB"), u == "BYTEA":
		return kindBlob, nil
	case strings.Contains(u, "REAL"), strings.Contains(u, "DOUBLE"), strings.Contains(u, "FLOA"):
		return kindFloat, nil
	}
	return 0, fmt.Errorf("type %q is not one the catalog copy knows (integer, text, blob, real)", typ)
}

func queryStrings(tx *sql.Tx, q string, args ...any) ([]string, error) {
	rows, err := tx.Query(q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// sameSchema checks that two catalogs have the same tables with the same
// columns of the same kinds.
func sameSchema(src, dst []table) error {
	byName := map[string]table{}
	for _, t := range dst {
		byName[t.name] = t
	}
	var diffs []string
	for _, s := range src {
		d, ok := byName[s.name]
		delete(byName, s.name)
		if !ok {
			diffs = append(diffs, "table "+s.name+" is missing from the destination")
			continue
		}
		dc := map[string]column{}
		for _, c := range d.cols {
			dc[c.name] = c
		}
		for _, c := range s.cols {
			x, ok := dc[c.name]
			delete(dc, c.name)
			switch {
			case !ok:
				diffs = append(diffs, fmt.Sprintf("column %s.%s is missing from the destination", s.name, c.name))
			case x.kind != c.kind:
				diffs = append(diffs, fmt.Sprintf("column %s.%s is %s in the source and %s in the destination", s.name, c.name, c.kind, x.kind))
			}
		}
		for name := range dc {
			diffs = append(diffs, fmt.Sprintf("column %s.%s is only in the destination", s.name, name))
		}
	}
	for name := range byName {
		diffs = append(diffs, "table "+name+" is only in the destination")
	}
	if len(diffs) == 0 {
		return nil
	}
	slices.Sort(diffs)
	return fmt.Errorf("the two catalogs have different schemas (%s); open both with the same tapir version, which migrates them to the same schema", strings.Join(diffs, "; "))
}

func (k kind) String() string {
	switch k {
	case kindInt:
		return "integer"
	case kindText:
		return "text"
	case kindBlob:
		return "blob"
	case kindFloat:
		return "real"
	}
	return "unknown"
}

// parentsFirst orders the tables so that every table comes after the
// tables its foreign keys point at (ties in name order).
func parentsFirst(ts []table) ([]table, error) {
	byName := map[string]table{}
	for _, t := range ts {
		byName[t.name] = t
	}
	var out []table
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(t table, path []string) error
	visit = func(t table, path []string) error {
		switch state[t.name] {
		case 2:
			return nil
		case 1:
			return fmt.Errorf("the foreign keys of tables %s form a cycle, which the catalog copy cannot order", strings.Join(append(path, t.name), " -> "))
		}
		state[t.name] = 1
		for _, r := range t.refs {
			p, ok := byName[r]
			if !ok || r == t.name {
				continue // a self-reference or a table outside the catalog
			}
			if err := visit(p, append(path, t.name)); err != nil {
				return err
			}
		}
		state[t.name] = 2
		out = append(out, t)
		return nil
	}
	for _, t := range ts {
		if err := visit(t, nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// mustBeEmpty refuses a destination that has a row in any table.
func mustBeEmpty(tx *sql.Tx, dst *Catalog, ts []table) error {
	var full []string
	for _, t := range ts {
		var has bool
		if err := tx.QueryRow(`SELECT EXISTS (SELECT 1 FROM ` + quoteIdent(t.name) + `)`).Scan(&has); err != nil {
			return fmt.Errorf("check that table %s is empty: %w", t.name, err)
		}
		if has {
			full = append(full, t.name)
		}
	}
	if len(full) > 0 {
		return fmt.Errorf("the destination is not empty (table %s has rows): a catalog is copied only into a new one, never merged; name a file that does not exist yet or a new PostgreSQL database (createdb), or remove this one if it is a failed copy", strings.Join(full, ", "))
	}
	return nil
}

// orderBy is the ORDER BY clause (without the keywords) that reads t in a
// canonical order: its primary key, else every column, NULLs first.
func orderBy(t table) string {
	cols := t.pk
	if len(cols) == 0 {
		for _, c := range t.cols {
			cols = append(cols, c.name)
		}
	}
	parts := make([]string, len(cols))
	for i, name := range cols {
		parts[i] = quoteIdent(name)
		for _, c := range t.cols {
			if c.name == name && c.nullable && !slices.Contains(t.pk, name) {
				parts[i] += " NULLS FIRST"
			}
		}
	}
	return strings.Join(parts, ", ")
}

// selectAll is the query that reads every row of t, its columns in t's
// order.
func selectAll(t table, order string) string {
	cols := make([]string, len(t.cols))
	for i, c := range t.cols {
		cols[i] = quoteIdent(c.name)
	}
	return `SELECT ` + strings.Join(cols, ", ") + ` FROM ` + quoteIdent(t.name) + ` ORDER BY ` + order
}

// scanRows runs q and calls fn with each row's values (the slice is
// reused); it checks ctx every few thousand rows.
func scanRows(ctx context.Context, tx *sql.Tx, q string, n int, fn func(vals []any) error) error {
	rows, err := tx.QueryContext(ctx, q)
	if err != nil {
		return err
	}
	defer rows.Close()
	vals := make([]any, n)
	ptrs := make([]any, n)
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for i := 0; rows.Next(); i++ {
		if i%4096 == 0 && ctx.Err() != nil {
			return stopped(ctx)
		}
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		if err := fn(vals); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return stopped(ctx)
	}
	return nil
}

// normalise turns v, read from column c, into the Go type of its kind:
// text as string, a blob as []byte, so that both backends store (and the
// checksum sees) the same thing whatever the driver returned.
func normalise(c column, v any) any {
	switch x := v.(type) {
	case []byte:
		if c.kind == kindText {
			return string(x)
		}
	case string:
		if c.kind == kindBlob {
			return []byte(x)
		}
	case int32:
		return int64(x)
	case int:
		return int64(x)
	case float32:
		return float64(x)
	}
	return v
}

// copyTable copies the rows of t from the source transaction to the
// destination one and returns how many it copied.
func copyTable(ctx context.Context, stx *sql.Tx, sd dialect, dtx *sql.Tx, dst *Catalog, t, dt table, utf8Only bool) (int64, error) {
	order := "rowid"
	if sd.pg || len(t.pk) > 0 {
		order = orderBy(t)
	}
	q := selectAll(t, order)
	var n int64
	check := func(vals []any) error {
		n++
		for i, c := range t.cols {
			vals[i] = normalise(c, vals[i])
		}
		if copyTamper != nil {
			copyTamper(t.name, vals)
		}
		if dst.d.pg {
			for i, c := range t.cols {
				s, ok := vals[i].(string)
				if !ok {
					continue
				}
				if strings.IndexByte(s, 0) >= 0 {
					return fmt.Errorf("table %s, %s: column %s holds a NUL byte, which PostgreSQL cannot store in text; keep this catalog on SQLite", t.name, describeRow(t, vals, n), c.name)
				}
				if utf8Only && !utf8.ValidString(s) {
					return fmt.Errorf("table %s, %s: column %s holds %q, which is not valid UTF-8 and which a PostgreSQL database in encoding UTF8 refuses; create the destination database with ENCODING 'SQL_ASCII' (createdb -E SQL_ASCII -T template0 NAME), which keeps names byte for byte, and copy again", t.name, describeRow(t, vals, n), c.name, s)
				}
			}
		}
		return nil
	}
	if dst.d.pg {
		// As pg_restore does: the foreign keys are checked once, in bulk,
		// after the rows are in, rather than row by row by their
		// triggers (three times faster). The transaction makes this
		// invisible: nobody sees the table without them.
		fks, err := dropForeignKeys(dtx, t.name)
		if err != nil {
			return 0, fmt.Errorf("table %s: %w", t.name, err)
		}
		if err := copyInPG(ctx, stx, q, dst, t, check); err != nil {
			return 0, err
		}
		for _, fk := range fks {
			if _, err := dtx.Exec(`ALTER TABLE ` + quoteIdent(t.name) + ` ADD CONSTRAINT ` + quoteIdent(fk.name) + ` ` + fk.def); err != nil {
				return 0, fmt.Errorf("table %s: a copied row refers to a row that is not in the source (foreign key %s, %s): %w; the source catalog is damaged, check it with sqlite3's PRAGMA foreign_key_check", t.name, fk.name, fk.def, err)
			}
		}
		// The identity columns' next values come after the copied ids.
		for _, c := range dt.cols {
			if !c.identity {
				continue
			}
			if _, err := dtx.Exec(`SELECT setval(pg_get_serial_sequence(?, ?), coalesce(max(`+quoteIdent(c.name)+`), 0) + 1, false) FROM `+quoteIdent(t.name),
				quoteIdent(t.name), c.name); err != nil {
				return 0, fmt.Errorf("table %s: set the sequence of column %s: %w", t.name, c.name, err)
			}
		}
		return n, nil
	}
	return n, copyInSQLite(ctx, stx, q, dtx, t, check)
}

type foreignKey struct{ name, def string }

// dropForeignKeys drops the foreign keys of a PostgreSQL table and returns
// them, to be added again.
func dropForeignKeys(tx *sql.Tx, name string) ([]foreignKey, error) {
	rows, err := tx.Query(`SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint
		WHERE conrelid = to_regclass(?) AND contype = 'f' ORDER BY conname`, quoteIdent(name))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var fks []foreignKey
	for rows.Next() {
		var fk foreignKey
		if err := rows.Scan(&fk.name, &fk.def); err != nil {
			return nil, err
		}
		fks = append(fks, fk)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	for _, fk := range fks {
		if _, err := tx.Exec(`ALTER TABLE ` + quoteIdent(name) + ` DROP CONSTRAINT ` + quoteIdent(fk.name)); err != nil {
			return nil, fmt.Errorf("drop foreign key %s for the copy: %w", fk.name, err)
		}
	}
	return fks, nil
}

// describeRow names a row for a person: its primary key, or its number and
// first columns.
func describeRow(t table, vals []any, n int64) string {
	var parts []string
	cols := t.pk
	if len(cols) == 0 {
		for _, c := range t.cols[:min(3, len(t.cols))] {
			cols = append(cols, c.name)
		}
	}
	for _, name := range cols {
		for i, c := range t.cols {
			if c.name == name {
				parts = append(parts, fmt.Sprintf("%s=%s", name, showValue(vals[i])))
			}
		}
	}
	return fmt.Sprintf("row %d (%s)", n, strings.Join(parts, ", "))
}

func showValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case string:
		return fmt.Sprintf("%q", x)
	case []byte:
		return fmt.Sprintf("x'%x'", x)
	}
	return fmt.Sprint(v)
}

// copyInSQLite inserts the rows in groups of up to 64 per statement.
func copyInSQLite(ctx context.Context, stx *sql.Tx, q string, dtx *sql.Tx, t table, check func([]any) error) error {
	ncols := len(t.cols)
	per := max(1, min(64, 32000/ncols))
	stmts := map[int]*sql.Stmt{}
	defer func() {
		for _, st := range stmts {
			st.Close()
		}
	}()
	args := make([]any, 0, per*ncols)
	rows := 0
	flush := func() error {
		if rows == 0 {
			return nil
		}
		st := stmts[rows]
		if st == nil {
			var err error
			if st, err = dtx.Prepare(insertSQL(t, rows)); err != nil {
				return err
			}
			stmts[rows] = st
		}
		if _, err := st.Exec(args...); err != nil {
			return fmt.Errorf("table %s: %w", t.name, err)
		}
		args, rows = args[:0], 0
		return nil
	}
	err := scanRows(ctx, stx, q, ncols, func(vals []any) error {
		if err := check(vals); err != nil {
			return err
		}
		args = append(args, vals...)
		rows++
		if rows == per {
			return flush()
		}
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}

// insertSQL is an INSERT of n rows of t.
func insertSQL(t table, n int) string {
	cols := make([]string, len(t.cols))
	for i, c := range t.cols {
		cols[i] = quoteIdent(c.name)
	}
	one := "(" + strings.Repeat("?, ", len(t.cols)-1) + "?)"
	var b strings.Builder
	b.WriteString(`INSERT INTO ` + quoteIdent(t.name) + `(` + strings.Join(cols, ", ") + `) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(one)
	}
	return b.String()
}

// copyInPG sends the rows with COPY (pgx CopyFrom on the destination's
// write connection, inside its write transaction), streaming them from the
// source.
func copyInPG(ctx context.Context, stx *sql.Tx, q string, dst *Catalog, t table, check func([]any) error) error {
	rows, err := stx.QueryContext(ctx, q)
	if err != nil {
		return err
	}
	defer rows.Close()
	src := &rowSource{ctx: ctx, rows: rows, vals: make([]any, len(t.cols)), check: check}
	src.ptrs = make([]any, len(t.cols))
	for i := range src.vals {
		src.ptrs[i] = &src.vals[i]
	}
	cols := make([]string, len(t.cols))
	for i, c := range t.cols {
		cols[i] = c.name
	}
	err = dst.cur.Raw(func(dc any) error {
		pc, ok := dc.(*pgConn)
		if !ok {
			return fmt.Errorf("internal error: the write connection is a %T, not a PostgreSQL one", dc)
		}
		// The source's errors (ctx too) end the COPY through src.Err,
		// which leaves the connection usable for the rollback.
		_, err := pc.Conn.Conn().CopyFrom(context.WithoutCancel(ctx), pgx.Identifier{t.name}, cols, src)
		return err
	})
	if src.err != nil {
		return src.err
	}
	if err != nil {
		return fmt.Errorf("table %s: %w", t.name, err)
	}
	return nil
}

// rowSource feeds CopyFrom with the rows of a source query.
type rowSource struct {
	ctx   context.Context
	rows  *sql.Rows
	vals  []any
	ptrs  []any
	check func([]any) error
	n     int
	err   error
}

func (s *rowSource) Next() bool {
	if s.err != nil {
		return false
	}
	if s.n%4096 == 0 && s.ctx.Err() != nil {
		s.err = stopped(s.ctx)
		return false
	}
	s.n++
	if !s.rows.Next() {
		if err := s.rows.Err(); err != nil {
			s.err = err
		} else if s.ctx.Err() != nil {
			s.err = stopped(s.ctx)
		}
		return false
	}
	if err := s.rows.Scan(s.ptrs...); err != nil {
		s.err = err
		return false
	}
	if err := s.check(s.vals); err != nil {
		s.err = err
		return false
	}
	return true
}

func (s *rowSource) Values() ([]any, error) { return s.vals, nil }
func (s *rowSource) Err() error             { return s.err }

// checksumTables computes the TableSum of each table, in name order.
func checksumTables(ctx context.Context, tx *sql.Tx, d dialect, ts []table) ([]TableSum, error) {
	var out []TableSum
	for _, t := range ts {
		s, err := checksumTable(ctx, tx, t)
		if err != nil {
			return nil, fmt.Errorf("checksum table %s: %w", t.name, err)
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b TableSum) int { return strings.Compare(a.Table, b.Table) })
	return out, nil
}

func checksumTable(ctx context.Context, tx *sql.Tx, t table) (TableSum, error) {
	// Columns in name order, so that the column order of either
	// database does not matter.
	idx := make([]int, len(t.cols))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return strings.Compare(t.cols[a].name, t.cols[b].name) })
	h := sha256.New()
	var n int64
	var buf []byte
	err := scanRows(ctx, tx, selectAll(t, orderBy(t)), len(t.cols), func(vals []any) error {
		n++
		buf = buf[:0]
		for _, i := range idx {
			var err error
			if buf, err = encodeValue(buf, t.cols[i], vals[i]); err != nil {
				return fmt.Errorf("row %d, column %s: %w", n, t.cols[i].name, err)
			}
		}
		h.Write(buf)
		return nil
	})
	if err != nil {
		return TableSum{}, err
	}
	return TableSum{Table: t.name, Rows: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// encodeValue appends the canonical encoding of v (see Checksums).
func encodeValue(buf []byte, c column, v any) ([]byte, error) {
	switch x := normalise(c, v).(type) {
	case nil:
		return append(buf, 'N'), nil
	case int64:
		buf = append(buf, 'I')
		return binary.BigEndian.AppendUint64(buf, uint64(x)), nil
	case float64:
		buf = append(buf, 'F')
		return binary.BigEndian.AppendUint64(buf, math.Float64bits(x)), nil
	case bool:
		var i uint64
		if x {
			i = 1
		}
		buf = append(buf, 'I')
		return binary.BigEndian.AppendUint64(buf, i), nil
	case string:
		buf = append(buf, 'T')
		buf = binary.AppendUvarint(buf, uint64(len(x)))
		return append(buf, x...), nil
	case []byte:
		buf = append(buf, 'B')
		buf = binary.AppendUvarint(buf, uint64(len(x)))
		return append(buf, x...), nil
	}
	return buf, fmt.Errorf("a value of Go type %T, which the checksum does not know", v)
}
