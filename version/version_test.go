package version

import (
	"strings"
	"testing"
)

func TestStringNamesBinaryVersionAndCommit(t *testing.T) {
	got := String("outpostd")
	for _, want := range []string{"outpostd", Version, "commit " + Commit} {
		if !strings.Contains(got, want) {
			t.Errorf("String() = %q, missing %q", got, want)
		}
	}
}
