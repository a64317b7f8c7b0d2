// Package pgtest gives a test a database of its own on a real PostgreSQL
// server: TAPIR_TEST_POSTGRES names the server (a DSN whose role may
// CREATE DATABASE; scripts/test starts a private cluster and sets it),
// and DSN creates an empty database there for the test and drops it when
// the test ends. Without a server the test is skipped, unless
// TAPIR_TEST_POSTGRES_REQUIRED is set (scripts/test sets it): then a
// missing server fails the test, so that CI never passes by skipping.
//
// It is test scaffolding: imported only by tests and bench.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// Env names the variables the package reads.
const (
	Env         = "TAPIR_TEST_POSTGRES"
	EnvRequired = "TAPIR_TEST_POSTGRES_REQUIRED"
)

// Server returns the DSN of the test server, or skips (fails when one is
// required) when there is none.
func Server(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(Env)
	if dsn == "" {
		if os.Getenv(EnvRequired) != "" {
			t.Fatalf("%s is set but %s is not: scripts/test starts a PostgreSQL cluster and names it there", EnvRequired, Env)
		}
		t.Skipf("no PostgreSQL server for this test: set %s (scripts/test does)", Env)
	}
	return dsn
}

// DSN creates an empty database for t on the test server and returns its
// DSN; the database is dropped when t ends.
func DSN(t testing.TB) string {
	t.Helper()
	server := Server(t)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, server)
	if err != nil {
		t.Fatalf("pgtest: connect to the test server %s: %v", server, err)
	}
	defer admin.Close(ctx)
	var b [6]byte
	rand.Read(b[:])
	name := "tapir_test_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), server)
		if err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	dsn, err := withDatabase(server, name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return dsn
}

// withDatabase returns the URL DSN server with its database replaced.
func withDatabase(server, name string) (string, error) {
	if !strings.HasPrefix(server, "postgres://") && !strings.HasPrefix(server, "postgresql://") {
		return "", fmt.Errorf("%s must be a postgres:// URL, not %q", Env, server)
	}
	u, err := url.Parse(server)
	if err != nil {
		return "", fmt.Errorf("%s: %v", Env, err)
	}
	u.Path = "/" + name
	return u.String(), nil
}
