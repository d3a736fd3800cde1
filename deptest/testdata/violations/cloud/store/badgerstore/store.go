// Package badgerstore may import Badger.
package badgerstore

import "github.com/dgraph-io/badger/v4"

// Open opens the store.
func Open(dir string) error { return badger.Open(dir) }
