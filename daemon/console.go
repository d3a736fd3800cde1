//go:build !noconsole

package daemon

import (
	"net/http"
	"runtime/debug"
	"sync"

	"go.uber.org/zap"

	"github.com/outpost-robotics/outpost/web"
)

// console serves the part's web console on the control port. It prepares
// the front end (fingerprinting and compressing its files) at the first
// request, not at start: a part nobody opens the console on spends no
// memory or time on it.
type console struct {
	d    *daemon
	once sync.Once
	h    http.Handler
}

// console returns the handler of the part's console.
func (d *daemon) console() http.Handler { return &console{d: d} }

func (c *console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.once.Do(func() {
		// The page shows the part's id and fingerprint before sign-in, so
		// the technician can compare the fingerprint first; the version
		// is not served unauthenticated (the Status page shows it).
		h, err := web.New(web.Config{App: web.AppConsole, Title: "Part " + c.d.partID, PartID: c.d.partID, Fingerprint: c.d.ctl.Fingerprint()})
		if err != nil {
			c.d.log.Error("the console cannot be served", zap.Error(err))
			c.h = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				http.Error(w, "the console cannot be served; see the part's log", http.StatusInternalServerError)
			})
			return
		}
		c.h = h
		// Preparing the files left garbage (the compressor's tables, the
		// sources' copies): hand it back to the robot at once rather than
		// when the scavenger gets to it.
		debug.FreeOSMemory()
	})
	c.h.ServeHTTP(w, r)
}
