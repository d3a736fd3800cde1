// Command benchtable turns `go test -bench` output into the headline table
// of docs/PERFORMANCE.md: each figure beside its goal, with the machine it ran on. It
// prints the table and, with -doc, writes it into docs/PERFORMANCE.md
// between the benchtable markers. `make bench` runs it.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, time.Now()))
}

func run(args []string, stdout, stderr io.Writer, now time.Time) int {
	fs := flag.NewFlagSet("benchtable", flag.ContinueOnError)
	fs.SetOutput(stderr)
	in := fs.String("in", "-", "benchmark output to read (- for stdin)")
	doc := fs.String("doc", "", "Markdown file whose benchtable section to rewrite (none: print only)")
	name := fs.String("machine", "", "name of this machine in the table (default: the host name)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var r io.Reader = os.Stdin
	if *in != "-" {
		f, err := os.Open(*in)
		if err != nil {
			fmt.Fprintln(stderr, "benchtable:", err)
			return 1
		}
		defer f.Close()
		r = f
	}
	res, err := parse(r)
	if err != nil {
		fmt.Fprintln(stderr, "benchtable:", err)
		return 1
	}
	m := describe("/", *name)
	var table bytes.Buffer
	if err := render(&table, rows(res), m, now); err != nil {
		fmt.Fprintln(stderr, "benchtable:", err)
		return 1
	}
	fmt.Fprint(stdout, table.String())
	if *doc == "" {
		return 0
	}
	if err := rewrite(*doc, table.String()); err != nil {
		fmt.Fprintln(stderr, "benchtable:", err)
		return 1
	}
	fmt.Fprintf(stdout, "\nwrote the table into %s\n", *doc)
	return 0
}

// rewrite splices the table into the document, replacing the file whole so
// an interrupted run leaves the old one.
func rewrite(path, table string) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	doc, err := splice(string(old), table)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(doc), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	return nil
}

// describe reads the machine's CPU, memory and kernel from /proc under
// root; what it cannot read shows as "unknown".
func describe(root, name string) machine {
	m := machine{Name: name, CPU: "unknown CPU", Kernel: "unknown", Go: runtime.Version(), Arch: runtime.GOOS + "/" + runtime.GOARCH, CPUs: runtime.NumCPU()}
	if m.Name == "" {
		m.Name, _ = os.Hostname()
	}
	if v := procField(filepath.Join(root, "proc/cpuinfo"), "model name"); v != "" {
		m.CPU = v
	}
	if v := procField(filepath.Join(root, "proc/meminfo"), "MemTotal"); v != "" {
		if kb, err := strconv.ParseFloat(strings.TrimSuffix(v, " kB"), 64); err == nil {
			m.MemGiB = kb / (1 << 20)
		}
	}
	if b, err := os.ReadFile(filepath.Join(root, "proc/sys/kernel/osrelease")); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// procField returns the value of the first "key: value" line of a /proc
// file, or "".
func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
