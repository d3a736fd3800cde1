package cloud_test

import (
	"os"
	"testing"

	"github.com/outpost-robotics/outpost/cloud/cloudtest"
	"github.com/outpost-robotics/outpost/cloud/ingest/pgingest"
	"github.com/outpost-robotics/outpost/cloud/store/pgstore"
)

// TestStoreEnvironment checks that the second run of this package's API
// tests, which make test starts with OUTPOST_CLOUD_STORE=postgres, really
// runs its clouds on PostgreSQL, and the first on Badger.
func TestStoreEnvironment(t *testing.T) {
	c := cloudtest.New(t, cloudtest.Options{})
	want := os.Getenv(cloudtest.StoreEnv) == "postgres"
	_, st := c.Store().(*pgstore.Store)
	_, ing := c.Ingest().(*pgingest.Store)
	if st != want || ing != want {
		t.Fatalf("%s=%q: fleet store on PostgreSQL %v, ingest on PostgreSQL %v; want %v", cloudtest.StoreEnv, os.Getenv(cloudtest.StoreEnv), st, ing, want)
	}
}
