// A module that crosses every boundary of deptest.Outpost once or more, with
// Outpost's module path so the real rules apply unchanged. Badger is a
// stand-in in ./badger, so listing it fetches nothing.
module github.com/outpost-robotics/outpost

go 1.26

require github.com/dgraph-io/badger/v4 v4.0.0

replace github.com/dgraph-io/badger/v4 => ./badger
