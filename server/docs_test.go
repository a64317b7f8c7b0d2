package server

import (
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tapir-backup/tapir/internal/doctest"
)

// TestMetricsDoc checks docs/format/metrics.md against the collector: every
// metric the Collector describes is in the doc, and every tapir_ metric the
// doc names is one the Collector describes, so that neither drifts alone.
func TestMetricsDoc(t *testing.T) {
	doc := doctest.Format(t, "metrics.md")
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
	if missing := doctest.Absent(code, documented); len(missing) > 0 {
		t.Errorf("metrics registered in server/metrics.go but not in docs/format/metrics.md: %s", strings.Join(missing, ", "))
	}
	if extra := doctest.Absent(documented, code); len(extra) > 0 {
		t.Errorf("metrics in docs/format/metrics.md that server/metrics.go does not register: %s", strings.Join(extra, ", "))
	}
}
