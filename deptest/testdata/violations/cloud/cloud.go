// Package cloud reaches PostgreSQL's driver itself (a violation): it
// should see the stores' interfaces.
package cloud

import "github.com/jackc/pgx/v5"

// Open opens a database of its own.
func Open(url string) error { return pgx.Connect(url) }
