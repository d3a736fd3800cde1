// A stand-in for Badger with its module path.
module github.com/dgraph-io/badger/v4

go 1.26
