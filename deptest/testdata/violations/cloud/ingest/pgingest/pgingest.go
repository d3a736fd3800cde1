// Package pgingest may import PostgreSQL's driver.
package pgingest

import "github.com/jackc/pgx/v5"

// Open opens the database.
func Open(url string) error { return pgx.Connect(url) }
