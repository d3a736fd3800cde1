package partfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/outpost-robotics/outpost/durable"
)

// BudgetFile is the budget file's name in the data folder. The daemon keeps
// the budget the last config set there because the store takes its budget
// when it opens, before any config is read.
const BudgetFile = "budget.json"

// maxBudgetBytes bounds the budget file: two numbers.
const maxBudgetBytes = 4 << 10

// Budget bounds the store's size; it has the fields of cache.Budget, so
// either converts to the other. Zero fields mean no limit. The field names
// are the file's JSON keys.
type Budget struct {
	// MaxBytes bounds the live bytes of records and blobs.
	MaxBytes int64
	// MinFreeBytes is the free disk the store leaves alone.
	MinFreeBytes int64
}

// DefaultBudget is the store budget until a config sets one: a Raspberry
// Pi's SD card is small, and what matters most is never filling it.
func DefaultBudget() Budget {
	return Budget{MaxBytes: 2 << 30, MinFreeBytes: 256 << 20}
}

// ReadBudget reads the budget file in dataDir. With no file it returns
// DefaultBudget and no error; with a file it cannot read or decode, it
// returns DefaultBudget and an error naming the file.
func ReadBudget(dataDir string) (Budget, error) {
	path := filepath.Join(dataDir, BudgetFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return DefaultBudget(), nil
	}
	if err != nil {
		return DefaultBudget(), fmt.Errorf("read the budget file: %w", err)
	}
	b, err := ParseBudget(data)
	if err != nil {
		return DefaultBudget(), fmt.Errorf("budget file %s: %w", path, err)
	}
	return b, nil
}

// ParseBudget decodes and validates budget file contents.
func ParseBudget(data []byte) (Budget, error) {
	if len(data) > maxBudgetBytes {
		return Budget{}, fmt.Errorf("larger than %d bytes", maxBudgetBytes)
	}
	var b Budget
	if err := json.Unmarshal(data, &b); err != nil {
		return Budget{}, fmt.Errorf("not valid JSON for a budget: %w", err)
	}
	if b.MaxBytes < 0 || b.MinFreeBytes < 0 {
		return Budget{}, errors.New("a negative byte count")
	}
	return b, nil
}

// WriteBudget replaces the budget file in dataDir with b, atomically: a
// crash leaves the old file or the new one, never half of one.
func WriteBudget(dataDir string, b Budget) error {
	data, err := json.Marshal(b)
	if err != nil {
		return fmt.Errorf("encode the budget: %w", err)
	}
	if err := durable.WriteFile(filepath.Join(dataDir, BudgetFile), data, 0o640); err != nil {
		return fmt.Errorf("replace the budget file: %w", err)
	}
	return nil
}
