// Package pgtest may import PostgreSQL's driver.
package pgtest

import "github.com/jackc/pgx/v5"

// Open opens the database.
func Open(url string) error { return pgx.Connect(url) }
