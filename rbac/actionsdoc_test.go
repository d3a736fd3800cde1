package rbac

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// TestActionsDocMatchesTheTable: docs/ACTIONS.md, the vocabulary people
// read, lists every action in table order with its permission row, rule and
// six cells exactly as testdata/permissions.tsv, which the conformance test
// decides, and as AllActions.
func TestActionsDocMatchesTheTable(t *testing.T) {
	rows := loadConformance(t)
	data, err := os.ReadFile("../docs/ACTIONS.md")
	if err != nil {
		t.Fatalf("read the action vocabulary: %v", err)
	}
	var vocab, perms [][]string
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		for i, c := range cells {
			cells[i] = strings.ReplaceAll(strings.Trim(c, "`"), `\|`, "|")
		}
		switch len(cells) {
		case 3:
			vocab = append(vocab, cells)
		case 8:
			perms = append(perms, cells)
		}
	}
	var docActions []string
	for _, v := range vocab {
		docActions = append(docActions, v[0])
	}
	var all []string
	for _, a := range AllActions() {
		all = append(all, string(a))
	}
	if !slices.Equal(docActions, all) {
		t.Fatalf("docs/ACTIONS.md lists %v\nwant AllActions %v", docActions, all)
	}
	if len(perms) != len(rows) {
		t.Fatalf("docs/ACTIONS.md has %d permission rows, want %d", len(perms), len(rows))
	}
	for i, r := range rows {
		if vocab[i][1] != r.seedRow {
			t.Errorf("%s: the doc's permission row is %q, want %q", r.action, vocab[i][1], r.seedRow)
		}
		want := append([]string{r.action, r.rule}, r.cells[:]...)
		if !slices.Equal(perms[i], want) {
			t.Errorf("the doc's row for %s is %q, want %q", r.action, perms[i], want)
		}
	}
}
