// A module that crosses every boundary of deptest.Outpost once or more, with
// Outpost's module path so the real rules apply unchanged. Badger, pgx and
// chromedp are stand-ins in ./badger, ./pgx and ./chromedp, so listing them
// fetches nothing.
module github.com/outpost-robotics/outpost

go 1.26

require (
	github.com/chromedp/chromedp v0.0.0
	github.com/dgraph-io/badger/v4 v4.0.0
	github.com/jackc/pgx/v5 v5.0.0
)

replace github.com/dgraph-io/badger/v4 => ./badger

replace github.com/jackc/pgx/v5 => ./pgx

replace github.com/chromedp/chromedp => ./chromedp
