package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var at = time.Date(2026, 11, 22, 10, 30, 0, 0, time.UTC)

func testMachine() machine {
	return machine{Name: "dev-2c", CPU: "AMD EPYC 7B13", Kernel: "6.18.0", Go: "go1.26.8", Arch: "linux/amd64", CPUs: 2, MemGiB: 24}
}

// TestTableGolden renders the table of a recorded multi-package run: ranges
// over -count runs, goals met and missed, and rows whose benchmark did not
// run.
func TestTableGolden(t *testing.T) {
	f, err := os.Open("testdata/bench.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parse(f)
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if err := render(&got, rows(res), testMachine(), at); err != nil {
		t.Fatal(err)
	}
	golden(t, "testdata/table.golden", got.String())
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\n%s", path, got)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"result before pkg", "BenchmarkX-2 10 5 ns/op\n", "before any \"pkg:\" line"},
		{"odd metrics", "pkg: p\nBenchmarkX-2 10 5 ns/op 7\n", "value-unit pairs"},
		{"bad value", "pkg: p\nBenchmarkX-2 10 fast ns/op\n", `metric "ns/op"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(strings.NewReader(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("parse(%q) = %v, want an error with %q", tc.in, err, tc.want)
			}
		})
	}
}

func TestParseSkipsWhatIsNotAResult(t *testing.T) {
	in := "pkg: github.com/outpost-robotics/outpost/x\nBenchmarkLogged\nBenchmark says hello\n    BenchmarkIndented-2 1 2 ns/op\nBenchmarkA-16 3 4.5 ns/op 7 things/s\n"
	res, err := parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[key("x", "BenchmarkA", "ns/op")][0] != 4.5 || res[key("x", "BenchmarkA", "things/s")][0] != 7 {
		t.Fatalf("parse = %v, want BenchmarkA's two metrics only", res)
	}
}

func TestNum(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{
		{0, "0"}, {131.5, "132"}, {0.00565, "0.00565"}, {0.7, "0.700"}, {9.6, "9.60"},
		{83000, "83,000"}, {104123, "104,000"}, {1699, "1,700"}, {-2.5, "-2.50"}, {1e6, "1,000,000"},
	}
	for _, tc := range tests {
		if got := num(tc.in); got != tc.want {
			t.Errorf("num(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSplice(t *testing.T) {
	table := "| t |\n"
	tests := []struct {
		name, doc, want, err string
	}{
		{"replaces between markers", "# P\n" + beginMarker + "\nold\n" + endMarker + "\nrest\n", "# P\n" + beginMarker + "\n| t |\n" + endMarker + "\nrest\n", ""},
		{"appends a section", "# P\n\n", "# P\n\n## Headline figures\n\n" + beginMarker + "\n| t |\n" + endMarker + "\n", ""},
		{"end marker missing", "# P\n" + beginMarker + "\n", "", "missing one or out of order"},
		{"out of order", endMarker + "\n" + beginMarker + "\n", "", "missing one or out of order"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := splice(tc.doc, table)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("splice error = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("splice = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	m := describe("testdata", "lab")
	if m.Name != "lab" || m.CPU != "AMD EPYC 7B13" || m.Kernel != "6.18.0" || m.MemGiB != 24 {
		t.Fatalf("describe = %+v", m)
	}
	if m := describe(t.TempDir(), "x"); m.CPU != "unknown CPU" || m.Kernel != "unknown" {
		t.Fatalf("describe of an empty root = %+v, want unknowns", m)
	}
}

// TestRunWritesTheDocument runs the command as make bench does: the table
// goes into the document between the markers, and what was around them
// stays.
func TestRunWritesTheDocument(t *testing.T) {
	doc := filepath.Join(t.TempDir(), "PERFORMANCE.md")
	before := "# Performance\n\n" + beginMarker + "\nstale\n" + endMarker + "\n\n| hand-kept rows |\n"
	if err := os.WriteFile(doc, []byte(before), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"-in", "testdata/bench.txt", "-doc", doc, "-machine", "dev-2c"}, &out, &errOut, at); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	got, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	s := string(got)
	if strings.Contains(s, "stale") || !strings.Contains(s, "| hand-kept rows |") || !strings.Contains(s, "| capture ingest, 64 producers (64 queued each, as collectors) |") {
		t.Fatalf("document after the run:\n%s", s)
	}
	if !strings.Contains(out.String(), "wrote the table into") {
		t.Fatalf("stdout: %s", out.String())
	}
	if code := run([]string{"-in", filepath.Join(t.TempDir(), "none.txt")}, &out, &errOut, at); code != 1 {
		t.Fatalf("a missing input exited %d, want 1", code)
	}
}
