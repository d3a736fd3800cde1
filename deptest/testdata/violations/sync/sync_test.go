package sync

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// Tests may listen.
func TestServe(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
}
