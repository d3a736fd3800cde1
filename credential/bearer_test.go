package credential

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/emptypb"
)

// TestBearer: the interceptor puts exactly its headers on unary and
// streaming calls, and an empty field sends no header at all.
func TestBearer(t *testing.T) {
	got := make(chan http.Header, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
		http.Error(w, "no such procedure", http.StatusNotFound)
	}))
	defer srv.Close()
	for _, tc := range []struct {
		name string
		b    Bearer
	}{
		{"part secret", Bearer{Authorization: "Part p1:s3cret"}},
		{"with a proof", Bearer{Authorization: "DPoP a.b.c", Proof: "x.y.z"}},
		{"nothing", Bearer{}},
	} {
		c := connect.NewClient[emptypb.Empty, emptypb.Empty](srv.Client(), srv.URL+"/test.v1.Test/Call", connect.WithInterceptors(tc.b))
		check := func(how string) {
			t.Helper()
			h := <-got
			if a := h.Values("Authorization"); (tc.b.Authorization == "") != (len(a) == 0) || h.Get("Authorization") != tc.b.Authorization {
				t.Errorf("%s, %s: Authorization %q", tc.name, how, a)
			}
			if p := h.Values(ProofHeader); (tc.b.Proof == "") != (len(p) == 0) || h.Get(ProofHeader) != tc.b.Proof {
				t.Errorf("%s, %s: %s %q", tc.name, how, ProofHeader, p)
			}
		}
		if _, err := c.CallUnary(context.Background(), connect.NewRequest(&emptypb.Empty{})); err == nil {
			t.Fatal("a call to a missing procedure succeeded")
		}
		check("unary")
		stream, err := c.CallServerStream(context.Background(), connect.NewRequest(&emptypb.Empty{}))
		if err == nil {
			for stream.Receive() {
			}
			_ = stream.Close()
		}
		check("streaming")
	}
}
