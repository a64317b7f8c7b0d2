package config

import (
	"strings"
	"testing"
	"time"
)

func TestSlowInputs(t *testing.T) {
	for name, src := range map[string]string{
		"deep array":  "a = " + strings.Repeat("[", 100000),
		"deep inline": "a = " + strings.Repeat("{b=", 50000),
		"many keys":   strings.Repeat("[[dle]]\nhost = \"h\"\npath = \"/\"\n", 20000),
		"many dup dle unknown": strings.Repeat("[[dle]]\nhost = \"h\"\nxx = 1\n", 20000),
		"many escaped keys": strings.Repeat("[host.\"\\u0061\"]\n", 1) + strings.Repeat("\"\\u0062x\" = 1\n", 1),
		"many quoted escapes": func() string { var b strings.Builder; for i := 0; i < 20000; i++ { b.WriteString("[dumptype.\"d\\u00e9" + strings.Repeat("x", i%50) + string(rune('a'+i%26)) + "\"]\n") }; return b.String() }(),
	} {
		start := time.Now()
		_, err := Parse("x.toml", []byte(src))
		s := ""
		if err != nil { s = err.Error(); if len(s) > 100 { s = s[:100] } }
		t.Logf("%s: %v %s", name, time.Since(start), s)
	}
}
