package partfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBudgetFile(t *testing.T) {
	dir := t.TempDir()
	if b, err := ReadBudget(dir); err != nil || b != DefaultBudget() {
		t.Fatalf("ReadBudget with no file = %+v, %v; want the default and no error", b, err)
	}
	want := Budget{MaxBytes: 1 << 20, MinFreeBytes: 0}
	if err := WriteBudget(dir, want); err != nil {
		t.Fatalf("WriteBudget: %v", err)
	}
	if b, err := ReadBudget(dir); err != nil || b != want {
		t.Fatalf("ReadBudget = %+v, %v; want %+v", b, err, want)
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 1 {
		t.Errorf("WriteBudget left %v in the data folder (%v), want only %s", entries, err, BudgetFile)
	}
}

func TestReadBudgetRefusesBadFiles(t *testing.T) {
	tests := []struct{ name, content, want string }{
		{"not json", "{", "not valid JSON"},
		{"negative max", `{"MaxBytes": -1}`, "negative"},
		{"negative free", `{"MinFreeBytes": -5}`, "negative"},
		{"wrong type", `{"MaxBytes": "lots"}`, "not valid JSON"},
		{"huge", `{"MaxBytes": 1` + strings.Repeat(" ", maxBudgetBytes) + `}`, "larger than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, BudgetFile), []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			b, err := ReadBudget(dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ReadBudget = %v, want an error with %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), BudgetFile) {
				t.Errorf("error %q does not name the file", err)
			}
			if b != DefaultBudget() {
				t.Errorf("ReadBudget returned %+v with its error, want the default", b)
			}
		})
	}
}

// FuzzParseBudget: no input panics, and what is accepted is never negative.
func FuzzParseBudget(f *testing.F) {
	f.Add([]byte(`{"MaxBytes":2147483648,"MinFreeBytes":268435456}`))
	f.Add([]byte(`{"MaxBytes":-1}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseBudget(data)
		if err == nil && (b.MaxBytes < 0 || b.MinFreeBytes < 0) {
			t.Fatalf("ParseBudget(%q) accepted %+v", data, b)
		}
	})
}
