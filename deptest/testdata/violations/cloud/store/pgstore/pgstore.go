// Package pgstore may import PostgreSQL's driver.
package pgstore

import "github.com/jackc/pgx/v5"

// Open opens the database.
func Open(url string) error { return pgx.Connect(url) }
