package config

import (
	"slices"
	"strings"
	"testing"
)

func TestCheckEditTags(t *testing.T) {
	tests := []struct {
		name string
		tags []string
		want string // in the error; "" means accepted
	}{
		{"none", nil, ""},
		{"plain", []string{"reviewed", "läuft", "field 2"}, ""},
		{"longest", []string{strings.Repeat("x", MaxEditTagLen)}, ""},
		{"empty", []string{"ok", ""}, "add[1]: a tag is 1 to 64 printable"},
		{"too long", []string{strings.Repeat("x", MaxEditTagLen+1)}, "add[0]"},
		{"comma", []string{"a,b"}, "without commas"},
		{"tab", []string{"a\tb"}, "printable"},
		{"bad utf-8", []string{"\xff"}, "printable"},
		{"too many", make([]string, MaxTagsPerEdit+1), "add: at most 32 tags"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckEditTags("add", tc.tags)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestEditTags(t *testing.T) {
	tests := []struct {
		orig, add, remove, want []string
	}{
		{nil, nil, nil, []string{}},
		{[]string{"a", "b"}, []string{"c", "a"}, nil, []string{"a", "b", "c"}},
		{[]string{"a", "b"}, nil, []string{"a"}, []string{"b"}},
		{[]string{"a"}, []string{"b"}, []string{"b"}, []string{"a"}},
		{[]string{"a", "a"}, []string{"b", "b"}, nil, []string{"a", "b"}},
	}
	for _, tc := range tests {
		orig := slices.Clone(tc.orig)
		if got := EditTags(tc.orig, tc.add, tc.remove); !slices.Equal(got, tc.want) {
			t.Errorf("EditTags(%q, +%q, -%q) = %q, want %q", tc.orig, tc.add, tc.remove, got, tc.want)
		}
		if !slices.Equal(orig, tc.orig) {
			t.Errorf("EditTags changed its input to %q", tc.orig)
		}
	}
}
