package catalog

import (
	pgdsn "github.com/tapir-backup/tapir/internal/dsn"

	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/mattn/go-sqlite3"
)

// dialect is what differs between the two databases a catalog lives in:
// SQLite (a file) and PostgreSQL (a postgres:// DSN). The SQL of the
// catalog is written once, in SQLite's spelling with ? placeholders; the
// PostgreSQL connections rebind the placeholders (pgConn), and the few
// expressions that have no common spelling come from here.
type dialect struct {
	pg bool
}

var (
	sqliteDialect = dialect{}
	pgDialect     = dialect{pg: true}
)

func (d dialect) String() string {
	if d.pg {
		return "postgres"
	}
	return "sqlite"
}

// strAgg concatenates the values of expr with sep (an SQL string
// expression) between them.
func (d dialect) strAgg(expr, sep string) string {
	return "string_agg(" + expr + ", " + sep + ")"
}

// newline is the SQL expression of a string holding one '\n'.
func (d dialect) newline() string {
	if d.pg {
		return "chr(10)"
	}
	return "char(10)"
}

// glob is the SQL condition "expr matches the shell pattern given as the
// next argument" and the argument for pattern: SQLite's GLOB, and on
// PostgreSQL the same pattern as an anchored regular expression.
func (d dialect) glob(expr, pattern string) (string, any) {
	if d.pg {
		return expr + " ~ ?", globToRegexp(pattern)
	}
	return expr + " GLOB ?", pattern
}

// globMatcher matches names against a shell pattern as the SQL of glob
// does (SQLite's GLOB), in Go: for names decoded from packed chunks.
func globMatcher(pattern string) (func(string) bool, error) {
	re, err := regexp.Compile("(?s)" + globToRegexp(pattern))
	if err != nil {
		return nil, fmt.Errorf("pattern %q: %v", pattern, err)
	}
	return re.MatchString, nil
}

// globToRegexp translates an SQLite GLOB pattern to an anchored POSIX
// regular expression with the same meaning: * any string, ? one
// character, [...] a class ([^...] negated, ']' first is literal, a-z a
// range), everything else literal and case-sensitive. An unclosed '['
// matches nothing, as in SQLite.
func globToRegexp(p string) string {
	var b strings.Builder
	b.WriteString("^")
	rs := []rune(p)
	for i := 0; i < len(rs); i++ {
		switch r := rs[i]; r {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		case '[':
			// As SQLite's patternCompare: ']' first is literal, lo-hi a
			// range (none when hi < lo), a '-' after a range or first or
			// last is literal.
			j := i + 1
			neg := j < len(rs) && rs[j] == '^'
			if neg {
				j++
			}
			var cls strings.Builder
			prior := rune(-1)
			if j < len(rs) && rs[j] == ']' {
				cls.WriteString(classChar(']'))
				j++
			}
			for ; j < len(rs) && rs[j] != ']'; j++ {
				c := rs[j]
				if c == '-' && prior >= 0 && j+1 < len(rs) && rs[j+1] != ']' {
					hi := rs[j+1]
					if prior <= hi {
						// the prior character stands, the range adds
						// the rest
						cls.WriteString(classChar(prior) + "-" + classChar(hi))
					}
					prior = -1
					j++
					continue
				}
				cls.WriteString(classChar(c))
				prior = c
			}
			if j >= len(rs) {
				return never // an unclosed [ matches nothing, as in SQLite
			}
			switch {
			case cls.Len() == 0 && neg:
				b.WriteString(".")
			case cls.Len() == 0:
				return never
			case neg:
				b.WriteString("[^" + cls.String() + "]")
			default:
				b.WriteString("[" + cls.String() + "]")
			}
			i = j
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString("$")
	return b.String()
}

// never is a regular expression that matches no string.
const never = `^[^\s\S]`

// classChar is c inside a bracket expression of a PostgreSQL regular
// expression (an ARE: a backslash escapes there too).
func classChar(c rune) string {
	switch c {
	case '\\', ']', '^', '[', '-':
		return `\` + string(c)
	}
	return string(c)
}

// isUnique reports whether err is a unique-constraint violation.
func isUnique(err error) bool {
	var se sqlite3.Error
	if errors.As(err, &se) {
		return se.ExtendedCode == sqlite3.ErrConstraintUnique
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// isRetryable reports whether a PostgreSQL write transaction failed only
// because another one ran at the same time (serialization failure,
// deadlock): it is run again, as a busy SQLite write waits.
func isRetryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// isPostgres reports whether a catalog location is a PostgreSQL DSN.
func isPostgres(loc string) bool { return pgdsn.IsPostgres(loc) }

// MaskDSN returns loc with the password of a postgres:// DSN replaced by
// "xxxxx", for messages; any other value is returned as it is.
func MaskDSN(loc string) string { return pgdsn.Mask(loc) }

// rebind turns the ? placeholders of a query into PostgreSQL's $1, $2...,
// leaving quoted strings, quoted identifiers and comments alone.
func rebind(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch c {
		case '\'', '"':
			j := strings.IndexByte(q[i+1:], c)
			if j < 0 {
				b.WriteString(q[i:])
				return b.String()
			}
			b.WriteString(q[i : i+j+2])
			i += j + 1
		case '-':
			if i+1 < len(q) && q[i+1] == '-' {
				j := strings.IndexByte(q[i:], '\n')
				if j < 0 {
					b.WriteString(q[i:])
					return b.String()
				}
				b.WriteString(q[i : i+j])
				i += j - 1
				continue
			}
			b.WriteByte(c)
		case '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// pgConnector makes PostgreSQL connections that take the catalog's ?
// placeholders.
type pgConnector struct{ driver.Connector }

func (c pgConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &pgConn{conn.(*stdlib.Conn)}, nil
}

// pgConn is a pgx stdlib connection that rebinds ? placeholders; every
// other method (transactions, pings, session reset, value checks) is
// pgx's own.
type pgConn struct{ *stdlib.Conn }

// CheckNamedValue stores a bool as the 0 or 1 the catalog's integer
// columns hold (SQLite's driver does the same), then lets pgx check the
// value.
func (c *pgConn) CheckNamedValue(nv *driver.NamedValue) error {
	if b, ok := nv.Value.(bool); ok {
		nv.Value = int64(0)
		if b {
			nv.Value = int64(1)
		}
		return nil
	}
	return c.Conn.CheckNamedValue(nv)
}

func (c *pgConn) Prepare(query string) (driver.Stmt, error) {
	return c.Conn.Prepare(rebind(query))
}

func (c *pgConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.Conn.PrepareContext(ctx, rebind(query))
}

func (c *pgConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	return c.Conn.ExecContext(ctx, rebind(query), args)
}

func (c *pgConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	return c.Conn.QueryContext(ctx, rebind(query), args)
}

// pgDDL translates a migration step written for SQLite to PostgreSQL:
// the types (integers are 64-bit, BLOB is BYTEA, an INTEGER PRIMARY KEY is
// an identity column, text compares bytes), no WITHOUT ROWID, no PRAGMA (the application id
// and version live in tapir_meta), and the one GLOB of a CHECK as a
// regular expression.
func pgDDL(step string) string {
	var out []string
	for line := range strings.SplitSeq(step, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "PRAGMA ") {
			continue
		}
		out = append(out, line)
	}
	s := strings.Join(out, "\n")
	s = strings.ReplaceAll(s, "INTEGER PRIMARY KEY", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
	s = regexp.MustCompile(`\bINTEGER\b`).ReplaceAllString(s, "BIGINT")
	s = regexp.MustCompile(`\bBLOB\b`).ReplaceAllString(s, "BYTEA")
	// SQLite compares text byte by byte; so does the C collation,
	// whatever the database's locale.
	s = regexp.MustCompile(`\bTEXT\b`).ReplaceAllString(s, `TEXT COLLATE "C"`)
	// The file index's key carried the type on PostgreSQL in schema 7,
	// so that a directory's names and types came from the index alone.
	s = strings.ReplaceAll(s, `PRIMARY KEY (dump_id, dir_id, name, frame, "offset")`, `PRIMARY KEY (dump_id, dir_id, name, frame, "offset") INCLUDE (type)`)
	s = strings.ReplaceAll(s, ") WITHOUT ROWID;", ");")
	s = strings.ReplaceAll(s, "datestamp NOT GLOB '*[^0-9]*'", "datestamp !~ '[^0-9]'")
	return s
}
