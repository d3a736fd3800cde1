package capture_test

import (
	"testing"

	"github.com/dgraph-io/badger/v4"
)

func TestOpen(t *testing.T) { _ = badger.Open(t.TempDir()) }
