// Package cache may import Badger.
package cache

import "github.com/dgraph-io/badger/v4"

// Open opens the store.
func Open(dir string) error { return badger.Open(dir) }
