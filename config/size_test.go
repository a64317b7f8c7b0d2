package config

import (
	"strings"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want Size
		err  string
	}{
		{"512", 512, ""},
		{" 512 ", 512, ""},
		{"512b", 512, ""},
		{"64k", 64 << 10, ""},
		{"64K", 64 << 10, ""},
		{"64 KiB", 64 << 10, ""},
		{"64kib", 64 << 10, ""},
		{"64 kB", 64000, ""},
		{"64KB", 64000, ""},
		{"1MiB", 1 << 20, ""},
		{"1m", 1 << 20, ""},
		{"1 MB", 1e6, ""},
		{"10 GB", 10e9, ""},
		{"10g", 10 << 30, ""},
		{"12 TB", 12e12, ""},
		{"2 TiB", 2 << 40, ""},
		{"1 PiB", 1 << 50, ""},
		{"1.5 GiB", 3 << 29, ""},
		{"0", 0, ""},
		{"8191 PiB", 8191 << 50, ""},
		{"8192 PiB", 0, "too large"},
		{"99999999999999999999", 0, "too large"},
		{"0.1k", 0, "whole number"},
		{"-1", 0, "negative"},
		{"", 0, "want a number"},
		{"k", 0, "want a number"},
		{"1.", 0, "want a number"},
		{".5k", 0, "want a number"},
		{"1.2.3k", 0, "want a number"},
		{"12 XB", 0, `unknown unit "XB"`},
		{"1e3", 0, "unknown unit"},
		{"1 k b", 0, "unknown unit"},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseSize(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseSize(%q) = %v, %v; want %d", tt.in, int64(got), err, int64(tt.want))
		}
	}
}

func TestSizeString(t *testing.T) {
	tests := []struct {
		in   Size
		want string
	}{
		{0, "0"},
		{1, "1"},
		{1023, "1023"},
		{1024, "1 KiB"},
		{256 * KiB, "256 KiB"},
		{1000, "1 kB"},
		{1024000, "1000 KiB"},
		{10 * GiB, "10 GiB"},
		{10e9, "10 GB"},
		{12e12, "12 TB"},
		{MiB + 1, "1048577"},
		{3 << 29, "1536 MiB"},
		{-5, "-5"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("Size(%d).String() = %q, want %q", int64(tt.in), got, tt.want)
		}
		if tt.in >= 0 {
			if back, err := ParseSize(tt.in.String()); err != nil || back != tt.in {
				t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in.String(), back, err, tt.in)
			}
		}
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"30m", 30 * time.Minute, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"300", 5 * time.Minute, ""},
		{" 45s ", 45 * time.Second, ""},
		{"0", 0, ""},
		{"-5m", 0, "negative"},
		{"soon", 0, "invalid duration"},
		{"", 0, "invalid duration"},
		{"99999999999999999999", 0, "too long"},
		{"9999999999999", 0, "too long"},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseDuration(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got.D() != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
		if back, err := ParseDuration(got.String()); err != nil || back != got {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", got.String(), back, err, got)
		}
	}
	if s := Duration(90 * time.Minute).String(); s != "1h30m0s" {
		t.Errorf("String = %q", s)
	}
}
