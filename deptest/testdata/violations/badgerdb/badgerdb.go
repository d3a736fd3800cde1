// Package badgerdb holds the stores' shared Badger options: allowed.
package badgerdb

import badger "github.com/dgraph-io/badger/v4"

// Open opens.
var Open = badger.Open
