package reliability

import (
	"net/http"
	"path"
	"sync"
	"testing"

	"github.com/outpost-robotics/outpost/faultproxy"
)

// link is the network between the part and the cloud: a fault proxy in
// this process that also reports each sync call it lets through, so a
// scenario can act at a chosen moment of a sync cycle.
type link struct {
	proxy *faultproxy.Proxy
	calls chan string // the sync method of each request let through, such as "Upload"

	// mu makes a partition and the reports agree: a request is reported
	// exactly when the proxy lets it through.
	mu   sync.Mutex
	down bool
}

// newLink starts a proxy in front of upstream.
func newLink(t *testing.T, upstream string) *link {
	t.Helper()
	l := &link{calls: make(chan string, 1024)}
	p, err := faultproxy.New(upstream, func(_ int64, r *http.Request) faultproxy.Fault {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.down {
			return faultproxy.ResetBefore // what the proxy does while down anyway
		}
		select {
		case l.calls <- path.Base(r.URL.Path):
		default: // nobody is counting right now
		}
		return faultproxy.Pass
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	l.proxy = p
	return l
}

// URL is the address the part is given for the cloud.
func (l *link) URL() string { return l.proxy.URL() }

// setDown partitions (true) or heals (false) the network.
func (l *link) setDown(down bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.down = down
	l.proxy.SetDown(down)
}

// forget drops the calls reported so far.
func (l *link) forget() {
	for {
		select {
		case <-l.calls:
		default:
			return
		}
	}
}
