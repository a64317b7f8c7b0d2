package server

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/config"
)

// A catalog on a PostgreSQL server that does not answer: check names it
// without its password, and does not look for a "catalog directory"
// named after the DSN.
func TestCheckCatalogDSN(t *testing.T) {
	dir := t.TempDir()
	cfg := &config.Config{StateDir: dir, ReportDir: dir,
		Catalog: "postgres://tapir:s3cret-word@/tapir?host=" + dir + "/no-server&sslmode=disable&connect_timeout=5"}
	var problems []string
	problem := func(where, format string, a ...any) {
		problems = append(problems, where+": "+fmt.Sprintf(format, a...))
	}
	serverChecks(context.Background(), cfg, Deps{}, time.Now(), false, problem, func(string, ...any) {})
	if len(problems) == 0 {
		t.Fatal("a catalog server that does not answer is no problem")
	}
	for _, p := range problems {
		if strings.Contains(p, "s3cret-word") {
			t.Errorf("a problem shows the catalog's password: %s", p)
		}
		if strings.Contains(p, "catalog directory") {
			t.Errorf("a DSN was checked as a directory: %s", p)
		}
	}
}
