// A stand-in for PostgreSQL's driver with its module path.
module github.com/jackc/pgx/v5

go 1.26
