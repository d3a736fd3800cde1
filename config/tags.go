package config

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Bounds of a tag edit, on a capture in the cloud (the fleet data API) or
// on the part (the control API): the same, so a tag the part accepts is
// one the cloud keeps.
const (
	MaxEditTagLen  = 64
	MaxTagsPerEdit = 32
)

// CheckEditTags checks the tags of one side of an edit (field is "add" or
// "remove", for the message): at most MaxTagsPerEdit, each 1 to
// MaxEditTagLen bytes of printable UTF-8 without commas (a comma separates
// tags on the command line and in exports).
func CheckEditTags(field string, tags []string) error {
	if len(tags) > MaxTagsPerEdit {
		return fmt.Errorf("%s: at most %d tags", field, MaxTagsPerEdit)
	}
	for i, t := range tags {
		if t == "" || len(t) > MaxEditTagLen || !utf8.ValidString(t) || strings.ContainsFunc(t, func(r rune) bool { return !unicode.IsPrint(r) || r == ',' }) {
			return fmt.Errorf("%s[%d]: a tag is 1 to %d printable characters without commas", field, i, MaxEditTagLen)
		}
	}
	return nil
}

// EditTags applies an edit to a capture's tags: added ones after the
// originals in order, each once, and a tag both added and removed is
// removed.
func EditTags(orig, add, remove []string) []string {
	out := make([]string, 0, len(orig)+len(add))
	for _, t := range append(slices.Clone(orig), add...) {
		if !slices.Contains(out, t) && !slices.Contains(remove, t) {
			out = append(out, t)
		}
	}
	return out
}
