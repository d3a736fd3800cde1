// Package pgshared may import PostgreSQL's driver.
package pgshared

import "github.com/jackc/pgx/v5"

// Open opens the database.
func Open(url string) error { return pgx.Connect(url) }
