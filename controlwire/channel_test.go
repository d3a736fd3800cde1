package controlwire

import (
	"net/http"
	"slices"
	"testing"

	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
)

// TestHeadersRoundTrip: headers sent on the channel come back as they
// were, names canonical, repeated names (in any case) joined in order and
// names without values dropped; and a value added to the decoded headers
// leaves the message that carried them unchanged.
func TestHeadersRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []*controlv1.ChannelHeader
		want http.Header
	}{
		{"none", nil, http.Header{}},
		{"one", []*controlv1.ChannelHeader{{Name: "Content-Type", Values: []string{"application/proto"}}},
			http.Header{"Content-Type": {"application/proto"}}},
		{"canonical names", []*controlv1.ChannelHeader{{Name: "grpc-timeout", Values: []string{"1S"}}},
			http.Header{"Grpc-Timeout": {"1S"}}},
		{"repeated names joined", []*controlv1.ChannelHeader{
			{Name: "X-A", Values: []string{"1", "2"}}, {Name: "x-a", Values: []string{"3"}}, {Name: "X-B", Values: []string{"b"}}},
			http.Header{"X-A": {"1", "2", "3"}, "X-B": {"b"}}},
		{"no values", []*controlv1.ChannelHeader{{Name: "X-Empty"}}, http.Header{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before [][]string
			for _, e := range tc.in {
				before = append(before, slices.Clone(e.GetValues()))
			}
			got := HeaderOf(tc.in)
			if !equalHeader(got, tc.want) {
				t.Fatalf("HeaderOf = %v, want %v", got, tc.want)
			}
			if back := HeaderOf(HeadersOf(got)); !equalHeader(back, tc.want) {
				t.Errorf("HeaderOf(HeadersOf) = %v, want %v", back, tc.want)
			}
			for k := range got {
				got.Add(k, "added")
			}
			for i, e := range tc.in {
				if !slices.Equal(e.GetValues(), before[i]) {
					t.Errorf("header %q of the message changed to %q after an Add, want %q", e.GetName(), e.GetValues(), before[i])
				}
			}
		})
	}
}

func equalHeader(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}
