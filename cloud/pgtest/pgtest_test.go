package pgtest_test

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/outpost-robotics/outpost/cloud/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// TestDatabasesAreSeparate: each test's database starts empty, whatever
// another wrote, and sorts text by byte.
func TestDatabasesAreSeparate(t *testing.T) {
	ctx := context.Background()
	a := connect(t, pgtest.Database(t))
	b := connect(t, pgtest.Database(t))
	if _, err := a.Exec(ctx, "CREATE TABLE x (v text)"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Exec(ctx, "CREATE TABLE x (v text)"); err != nil {
		t.Fatalf("the second database sees the first's table: %v", err)
	}
	rows, _ := a.Query(ctx, "SELECT v FROM unnest(ARRAY['b', 'B', 'a', '_']) v ORDER BY v")
	sorted, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"B", "_", "a", "b"}; len(sorted) != 4 || sorted[0] != want[0] || sorted[1] != want[1] || sorted[2] != want[2] {
		t.Errorf("text sorts %v, want by byte %v", sorted, want)
	}
}

// TestNoTCP: the server listens on its socket only, in a folder no other
// account may enter.
func TestNoTCP(t *testing.T) {
	ctx := context.Background()
	conn := connect(t, pgtest.Database(t))
	var listen, socketDir string
	if err := conn.QueryRow(ctx, "SELECT current_setting('listen_addresses'), current_setting('unix_socket_directories')").Scan(&listen, &socketDir); err != nil {
		t.Fatal(err)
	}
	if listen != "" {
		t.Errorf("listen_addresses = %q, want none", listen)
	}
	st, err := os.Stat(socketDir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("the socket's folder has mode %v, want 0700", st.Mode().Perm())
	}
}

// TestRestart: a server a test owns comes back with its data.
func TestRestart(t *testing.T) {
	ctx := context.Background()
	srv := pgtest.NewServer(t)
	if err := srv.CreateDatabase(ctx, "kept"); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, srv.URL("kept"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE x (v int); INSERT INTO x VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	conn = connect(t, srv.URL("kept"))
	var v int
	if err := conn.QueryRow(ctx, "SELECT v FROM x").Scan(&v); err != nil || v != 42 {
		t.Fatalf("after a restart: %d, %v", v, err)
	}
}
