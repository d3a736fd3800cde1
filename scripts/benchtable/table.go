package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// A headline is one row of the table: a figure read from one benchmark's
// metric, and the goal set for it.
type headline struct {
	Figure string
	// Pkg and Bench name the benchmark (Bench without the -GOMAXPROCS suffix).
	Pkg, Bench string
	// Metric is the unit as the benchmark reports it ("ns/op", "p99-µs").
	Metric string
	// Unit is how the figure is shown; Scale converts Metric into it.
	Unit  string
	Scale float64
	// Goal is the bound; AtMost tells a ceiling from a floor. Goal 0 means
	// none is set and the figure is recorded.
	Goal   float64
	AtMost bool
}

const module = "github.com/outpost-robotics/outpost/"

// headlines are the figures that say whether Outpost meets its goals, each
// with its goal.
var headlines = []headline{
	// Capture's collectors keep up to 64 records queued each and count one
	// once durable; a producer that waits for each record's sync is bound
	// by the disk's flush, and its row is kept beside it.
	{Figure: "capture ingest, 64 producers (64 queued each, as collectors)", Pkg: "cache", Bench: "BenchmarkQueue/producers=64", Metric: "records/s", Unit: "records/s", Scale: 1, Goal: 100_000},
	{Figure: "durable ingest, 64 producers each waiting for its record", Pkg: "cache", Bench: "BenchmarkAppend/producers=64", Metric: "records/s", Unit: "records/s", Scale: 1, Goal: 100_000},
	{Figure: "backlog drain, JSON readings", Pkg: "cloudsync", Bench: "BenchmarkBacklogDrain/readings", Metric: "MB/s", Unit: "MB/s", Scale: 1, Goal: 100},
	{Figure: "backlog drain / durable POST, JSON readings", Pkg: "cloudsync", Bench: "BenchmarkBacklogDrain/readings", Metric: "ratio-to-durable-POST", Unit: "", Scale: 1, Goal: 0.5},
	{Figure: "backlog drain / discarding POST, JSON readings", Pkg: "cloudsync", Bench: "BenchmarkBacklogDrain/readings", Metric: "ratio-to-plain-POST", Unit: "", Scale: 1},
	{Figure: "part CPU per GB drained, JSON readings", Pkg: "cloudsync", Bench: "BenchmarkBacklogDrain/readings", Metric: "part-cpu-s/GB", Unit: "CPU-s/GB", Scale: 1, Goal: 8, AtMost: true},
	{Figure: "cloud CPU per GB ingested, JSON readings", Pkg: "cloudsync", Bench: "BenchmarkBacklogDrain/readings", Metric: "cloud-cpu-s/GB", Unit: "CPU-s/GB", Scale: 1, Goal: 10, AtMost: true},
	{Figure: "backlog drain, 64 KB images", Pkg: "cloudsync", Bench: "BenchmarkBacklogDrain/images", Metric: "MB/s", Unit: "MB/s", Scale: 1, Goal: 100},
	{Figure: "backlog drain / durable POST, 64 KB images", Pkg: "cloudsync", Bench: "BenchmarkBacklogDrain/images", Metric: "ratio-to-durable-POST", Unit: "", Scale: 1, Goal: 0.5},
	{Figure: "part CPU per GB drained, 64 KB images", Pkg: "cloudsync", Bench: "BenchmarkBacklogDrain/images", Metric: "part-cpu-s/GB", Unit: "CPU-s/GB", Scale: 1, Goal: 8, AtMost: true},
	{Figure: "cloud CPU per GB ingested, 64 KB images", Pkg: "cloudsync", Bench: "BenchmarkBacklogDrain/images", Metric: "cloud-cpu-s/GB", Unit: "CPU-s/GB", Scale: 1, Goal: 10, AtMost: true},
	// The shaped variants run on a 10 Mbit/s link with a 50 ms round trip
	// unless OUTPOST_DRAIN_LINK says otherwise. Link-bound is a link busy
	// at least 90 % of the drain; readings must reach the cloud faster than
	// the link's 1.25 MB/s, which only compression can do.
	{Figure: "drain over 10 Mbit/s, 50 ms: link utilisation, JSON readings", Pkg: "cloudsync", Bench: "BenchmarkBacklogDrain/readings-shaped", Metric: "link-utilisation", Unit: "", Scale: 1, Goal: 0.9},
	{Figure: "drain over 10 Mbit/s, 50 ms: payload, JSON readings", Pkg: "cloudsync", Bench: "BenchmarkBacklogDrain/readings-shaped", Metric: "MB/s", Unit: "MB/s", Scale: 1, Goal: 1.25},
	{Figure: "drain over 10 Mbit/s, 50 ms: link utilisation, 64 KB images", Pkg: "cloudsync", Bench: "BenchmarkBacklogDrain/images-shaped", Metric: "link-utilisation", Unit: "", Scale: 1, Goal: 0.9},
	{Figure: "drain over 10 Mbit/s, 50 ms: payload, 64 KB images", Pkg: "cloudsync", Bench: "BenchmarkBacklogDrain/images-shaped", Metric: "MB/s", Unit: "MB/s", Scale: 1},
	{Figure: "control RPC p99, gRPC", Pkg: "control", Bench: "BenchmarkControlRPC/grpc", Metric: "p99-µs", Unit: "ms", Scale: 1e-3, Goal: 1, AtMost: true},
	{Figure: "control RPC p99, WebRTC", Pkg: "control", Bench: "BenchmarkControlRPC/webrtc", Metric: "p99-µs", Unit: "ms", Scale: 1e-3, Goal: 5, AtMost: true},
	{Figure: "control RPC p99, gRPC, 100 clients", Pkg: "control", Bench: "BenchmarkControlRPC/grpc-100clients", Metric: "p99-µs", Unit: "ms", Scale: 1e-3, Goal: 5, AtMost: true},
	{Figure: "control RPC p99, WebRTC, 100 clients", Pkg: "control", Bench: "BenchmarkControlRPC/webrtc-100clients", Metric: "p99-µs", Unit: "ms", Scale: 1e-3, Goal: 10, AtMost: true},
	{Figure: "control RPC p99, gRPC, 100 clients at 50 Hz each", Pkg: "control", Bench: "BenchmarkControlRPC/grpc-100clients-50hz", Metric: "p99-µs", Unit: "ms", Scale: 1e-3, Goal: 5, AtMost: true},
	{Figure: "control RPC p99, WebRTC, 100 clients at 50 Hz each", Pkg: "control", Bench: "BenchmarkControlRPC/webrtc-100clients-50hz", Metric: "p99-µs", Unit: "ms", Scale: 1e-3, Goal: 10, AtMost: true},
	{Figure: "control RPC p99, gRPC, 100 clients at 10 Hz each", Pkg: "control", Bench: "BenchmarkControlRPC/grpc-100clients-10hz", Metric: "p99-µs", Unit: "ms", Scale: 1e-3, Goal: 5, AtMost: true},
	{Figure: "control RPC p99, WebRTC, 100 clients at 10 Hz each", Pkg: "control", Bench: "BenchmarkControlRPC/webrtc-100clients-10hz", Metric: "p99-µs", Unit: "ms", Scale: 1e-3, Goal: 10, AtMost: true},
	{Figure: "control RPC p99, gRPC, 100 clients at 10 Hz, all at once", Pkg: "control", Bench: "BenchmarkControlRPC/grpc-100clients-10hz-inphase", Metric: "p99-µs", Unit: "ms", Scale: 1e-3, Goal: 5, AtMost: true},
	{Figure: "control RPC p99, WebRTC, 100 clients at 10 Hz, all at once", Pkg: "control", Bench: "BenchmarkControlRPC/webrtc-100clients-10hz-inphase", Metric: "p99-µs", Unit: "ms", Scale: 1e-3, Goal: 10, AtMost: true},
	{Figure: "CPU per control call, gRPC, client and part", Pkg: "control", Bench: "BenchmarkControlRPC/grpc-100clients-50hz", Metric: "cpu-µs/call", Unit: "µs", Scale: 1},
	{Figure: "CPU per control call, WebRTC, client and part", Pkg: "control", Bench: "BenchmarkControlRPC/webrtc-100clients-50hz", Metric: "cpu-µs/call", Unit: "µs", Scale: 1},
	{Figure: "authorization per decision", Pkg: "rbac", Bench: "BenchmarkDecide", Metric: "ns/op", Unit: "ns", Scale: 1, Goal: 1000, AtMost: true},
	{Figure: "cloud pulls, 10,000 parts", Pkg: "cloud", Bench: "BenchmarkPull", Metric: "pulls/s", Unit: "pulls/s", Scale: 1, Goal: 5000},
	{Figure: "outpostd idle RSS", Pkg: "daemon", Bench: "BenchmarkDaemon", Metric: "idle_rss_MB", Unit: "MB", Scale: 1, Goal: 30, AtMost: true},
	{Figure: "outpostd RSS at 1,000 captures/s", Pkg: "daemon", Bench: "BenchmarkDaemon", Metric: "load_rss_MB", Unit: "MB", Scale: 1, Goal: 100, AtMost: true},
	{Figure: "start to READY, empty store", Pkg: "daemon", Bench: "BenchmarkDaemon", Metric: "ready_empty_ms", Unit: "ms", Scale: 1, Goal: 500, AtMost: true},
	{Figure: "start to READY, 1 GB backlog", Pkg: "daemon", Bench: "BenchmarkDaemon", Metric: "ready_backlog_ms", Unit: "ms", Scale: 1, Goal: 500, AtMost: true},
	{Figure: "outpostd binary, stripped", Pkg: "daemon", Bench: "BenchmarkDaemon", Metric: "binary_MB", Unit: "MB", Scale: 1},
}

// results maps "pkg benchmark metric" to every value reported (one per
// -count run).
type results map[string][]float64

func key(pkg, bench, metric string) string { return pkg + " " + bench + " " + metric }

// procSuffix is the -GOMAXPROCS suffix go test appends to benchmark names.
var procSuffix = regexp.MustCompile(`-\d+$`)

// parse reads `go test -bench` output (several packages, any -count) and
// returns every metric of every benchmark line. Lines that are not results
// (logs, PASS, ok) are skipped; a result line that does not parse is an
// error, so a changed output format is noticed rather than dropped.
func parse(r io.Reader) (results, error) {
	res := results{}
	pkg := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimPrefix(strings.TrimSpace(p), module)
			continue
		}
		if !strings.HasPrefix(line, "Benchmark") {
			continue
		}
		fields := strings.Fields(line)
		// A name alone on its line is go test announcing a benchmark whose
		// sub-benchmarks or logs follow.
		if len(fields) < 2 {
			continue
		}
		if _, err := strconv.Atoi(fields[1]); err != nil {
			continue // a log line that happens to start with "Benchmark"
		}
		if pkg == "" {
			return nil, fmt.Errorf("line %d: a result before any \"pkg:\" line", n)
		}
		name := procSuffix.ReplaceAllString(fields[0], "")
		rest := fields[2:]
		if len(rest)%2 != 0 {
			return nil, fmt.Errorf("line %d: metrics are not value-unit pairs: %q", n, line)
		}
		for i := 0; i < len(rest); i += 2 {
			v, err := strconv.ParseFloat(rest[i], 64)
			if err != nil {
				return nil, fmt.Errorf("line %d: metric %q: %w", n, rest[i+1], err)
			}
			k := key(pkg, name, rest[i+1])
			res[k] = append(res[k], v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read benchmark output: %w", err)
	}
	return res, nil
}

// row is a headline with the figures found for it.
type row struct {
	headline
	Values []float64
}

// verdict says how the figures stand against the goal: every run must meet
// it for "met".
func (r row) verdict() string {
	switch {
	case len(r.Values) == 0:
		return "not run"
	case r.Goal == 0:
		return "recorded"
	}
	met := 0
	for _, v := range r.Values {
		if x := v * r.Scale; (r.AtMost && x <= r.Goal) || (!r.AtMost && x >= r.Goal) {
			met++
		}
	}
	switch met {
	case len(r.Values):
		return "met"
	case 0:
		return "**missed**"
	default:
		return fmt.Sprintf("**missed** in %d of %d runs", len(r.Values)-met, len(r.Values))
	}
}

// figure shows the range of the values, in the row's unit.
func (r row) figure() string {
	if len(r.Values) == 0 {
		return "—"
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range r.Values {
		lo, hi = min(lo, v*r.Scale), max(hi, v*r.Scale)
	}
	s := num(lo)
	if num(hi) != s {
		s += "–" + num(hi)
	}
	if r.Unit != "" {
		s += " " + r.Unit
	}
	return s
}

func (r row) goal() string {
	if r.Goal == 0 {
		return "none set"
	}
	op := "≥"
	if r.AtMost {
		op = "≤"
	}
	g := op + " " + trimZeros(num(r.Goal))
	if r.Unit != "" {
		g += " " + r.Unit
	}
	return g
}

// num prints a figure with three significant digits and thousands
// separators, as the rest of PERFORMANCE.md does.
func num(v float64) string {
	if v == 0 {
		return "0"
	}
	digits := 3 - int(math.Floor(math.Log10(math.Abs(v)))) - 1
	if digits < 0 {
		p := math.Pow(10, float64(-digits))
		v = math.Round(v/p) * p
		digits = 0
	}
	s := strconv.FormatFloat(v, 'f', digits, 64)
	intPart, frac, _ := strings.Cut(s, ".")
	neg := strings.HasPrefix(intPart, "-")
	intPart = strings.TrimPrefix(intPart, "-")
	var b strings.Builder
	for i, c := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	out := b.String()
	if neg {
		out = "-" + out
	}
	if frac != "" {
		out += "." + frac
	}
	return out
}

// rows picks the headlines out of the results.
func rows(res results) []row {
	out := make([]row, len(headlines))
	for i, h := range headlines {
		out[i] = row{headline: h, Values: res[key(h.Pkg, h.Bench, h.Metric)]}
	}
	return out
}

// machine describes where the benchmarks ran.
type machine struct {
	Name, CPU, Kernel, Go, Arch string
	CPUs                        int
	MemGiB                      float64
}

func (m machine) String() string {
	return fmt.Sprintf("**%s**: %d × %s, %.0f GiB RAM, Linux %s, %s, %s", m.Name, m.CPUs, m.CPU, m.MemGiB, m.Kernel, m.Go, m.Arch)
}

// render writes the table as Markdown: the machine, the date, and a row per
// headline.
func render(w io.Writer, rs []row, m machine, at time.Time) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Written by `make bench` on %s. Machine %s.\n\n", at.UTC().Format("2006-01-02 15:04 MST"), m)
	b.WriteString("| figure | benchmark | measured | goal | verdict |\n| --- | --- | --- | --- | --- |\n")
	for _, r := range rs {
		fmt.Fprintf(&b, "| %s | %s %s (%s) | %s | %s | %s |\n", r.Figure, r.Pkg, r.Bench, r.Metric, r.figure(), r.goal(), r.verdict())
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Markers delimit the part of docs/PERFORMANCE.md that `make bench` owns.
const (
	beginMarker = "<!-- benchtable:begin -->"
	endMarker   = "<!-- benchtable:end -->"
)

// splice replaces what lies between the markers in doc with table, or
// appends a section with the markers when doc has none.
func splice(doc, table string) (string, error) {
	i := strings.Index(doc, beginMarker)
	j := strings.Index(doc, endMarker)
	switch {
	case i < 0 && j < 0:
		return strings.TrimRight(doc, "\n") + "\n\n## Headline figures\n\n" + beginMarker + "\n" + table + endMarker + "\n", nil
	case i < 0 || j < i:
		return "", fmt.Errorf("the markers %s and %s are missing one or out of order", beginMarker, endMarker)
	}
	return doc[:i+len(beginMarker)] + "\n" + table + doc[j:], nil
}

// trimZeros drops the trailing zeros of a fraction: goals are exact
// ("≤ 1 ms"), unlike measurements.
func trimZeros(s string) string {
	if !strings.Contains(s, ".") {
		return s
	}
	return strings.TrimSuffix(strings.TrimRight(s, "0"), ".")
}
