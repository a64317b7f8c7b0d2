package server

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestMetricsDoc checks docs/format/metrics.md against the collector: every
// metric the Collector describes is in the doc, and every tapir_ metric the
// doc names is one the Collector describes, so that neither drifts alone.
func TestMetricsDoc(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "format", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	code := map[string]bool{}
	ch := make(chan *prometheus.Desc, 100)
	NewCollector(nil, nil, nil).Describe(ch)
	close(ch)
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	for d := range ch {
		m := fq.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("no fqName in %s", d)
		}
		code[m[1]] = true
	}
	if len(code) == 0 {
		t.Fatal("the Collector describes no metric")
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("`(tapir_[a-z0-9_]+)`").FindAllStringSubmatch(string(doc), -1) {
		documented[m[1]] = true
	}
	if missing := absent(code, documented); len(missing) > 0 {
		t.Errorf("metrics registered in server/metrics.go but not in docs/format/metrics.md: %s", strings.Join(missing, ", "))
	}
	if extra := absent(documented, code); len(extra) > 0 {
		t.Errorf("metrics in docs/format/metrics.md that server/metrics.go does not register: %s", strings.Join(extra, ", "))
	}
}

// absent returns the keys of want that are not in have, sorted.
func absent(want, have map[string]bool) []string {
	var out []string
	for k := range want {
		if !have[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}
