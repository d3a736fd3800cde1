package durable

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	tmpDir := t.TempDir()
	tests := []struct {
		name    string
		path    string
		via     string
		old     []byte // written first, when not nil
		data    []byte
		perm    os.FileMode
		wantErr string
	}{
		{name: "new file", path: filepath.Join(dir, "budget.json"), data: []byte(`{"max_bytes":1}`), perm: 0o640},
		{name: "replaces a file, and its mode", path: filepath.Join(dir, "credentials"), old: []byte("old, longer contents"), data: []byte("new"), perm: 0o600},
		{name: "empty", path: filepath.Join(dir, "empty"), old: []byte("x"), data: nil, perm: 0o644},
		{name: "replaced through a temporary folder", path: filepath.Join(dir, "state.pb"), via: tmpDir, data: bytes.Repeat([]byte{7}, 1<<20), perm: 0o600},
		{name: "replaced, the folder not synced", path: filepath.Join(dir, "chunk"), via: tmpDir, old: []byte("old"), data: []byte("new"), perm: 0o600},
		{name: "replaced in a missing folder", path: filepath.Join(dir, "none", "chunk"), via: tmpDir, data: []byte("x"), perm: 0o600, wantErr: "none"},
		{name: "missing folder", path: filepath.Join(dir, "none", "f"), data: []byte("x"), perm: 0o600, wantErr: "none"},
		{name: "NUL in the name", path: filepath.Join(dir, "a\x00b"), data: []byte("x"), perm: 0o600, wantErr: "invalid argument"},
		{name: "a folder in the way", path: dir, data: []byte("x"), perm: 0o600, wantErr: "write"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.old != nil {
				if err := os.WriteFile(tc.path, tc.old, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var err error
			switch {
			case tc.via != "":
				err = Replace(tc.via, tc.path, tc.data, tc.perm)
			default:
				err = WriteFile(tc.path, tc.data, tc.perm)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, tc.wantErr)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				got, err := os.ReadFile(tc.path)
				if err != nil || !bytes.Equal(got, tc.data) {
					t.Fatalf("read back %d bytes, %v; want %d", len(got), err, len(tc.data))
				}
				if fi, _ := os.Stat(tc.path); fi.Mode().Perm() != tc.perm {
					t.Fatalf("mode %v, want %v", fi.Mode().Perm(), tc.perm)
				}
			}
			for _, d := range []string{dir, tmpDir} {
				if left, _ := filepath.Glob(filepath.Join(d, ".*.tmp-*")); len(left) != 0 {
					t.Fatalf("temporary files left: %v", left)
				}
			}
		})
	}
	if err := SyncDir(filepath.Join(dir, "none")); err == nil || !strings.Contains(err.Error(), "sync folder") {
		t.Fatalf("SyncDir of a missing folder: %v", err)
	}
}

const childEnv = "DURABLE_TEST_WRITER"

// TestKilledWriterLeavesOldOrNew SIGKILLs a child process that keeps
// replacing a file with 256 KiB of one letter, then another, at a random
// point each time: the file is always one whole version.
func TestKilledWriterLeavesOldOrNew(t *testing.T) {
	if path := os.Getenv(childEnv); path != "" {
		for i := 0; ; i++ {
			if err := WriteFile(path, bytes.Repeat([]byte{'a' + byte(i%2)}, 256<<10), 0o600); err != nil {
				fmt.Println("error", err)
				os.Exit(1)
			}
			fmt.Println("wrote", i)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	for round := range 20 {
		cmd := exec.Command(exe, "-test.run", "^TestKilledWriterLeavesOldOrNew$")
		cmd.Env = append(os.Environ(), childEnv+"="+path)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewScanner(out)
		for n := 1 + rand.IntN(20); n > 0 && lines.Scan(); {
			if strings.HasPrefix(lines.Text(), "wrote") {
				n--
			}
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if len(got) != 256<<10 || (!bytes.Equal(got, bytes.Repeat([]byte{'a'}, 256<<10)) && !bytes.Equal(got, bytes.Repeat([]byte{'b'}, 256<<10))) {
			t.Fatalf("round %d: the file is %d bytes, not one whole version", round, len(got))
		}
	}
}
