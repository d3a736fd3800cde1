// Package capture imports Badger in its tests: a violation.
package capture

// Name is the package's name.
const Name = "capture"
