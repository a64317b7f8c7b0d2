package pgtest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

// The test server runs, and a test's database is its own and empty.
func TestDSN(t *testing.T) {
	dsn := DSN(t)
	c, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var n int
	if err := c.QueryRow(context.Background(), "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("a fresh database has %d tables", n)
	}
	if other := DSN(t); other == dsn {
		t.Fatal("two tests got the same database")
	}
}

func TestWithDatabase(t *testing.T) {
	got, err := withDatabase("postgres://tapir@/postgres?host=/tmp/x&sslmode=disable", "db1")
	if err != nil || got != "postgres://tapir@/db1?host=/tmp/x&sslmode=disable" {
		t.Fatalf("%q %v", got, err)
	}
	if _, err := withDatabase("host=/tmp dbname=x", "db1"); err == nil {
		t.Fatal("a keyword DSN was accepted")
	}
}
