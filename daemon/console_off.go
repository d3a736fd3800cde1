//go:build noconsole

package daemon

import "net/http"

// console is nil in a build without the console (-tags noconsole): the
// benchmarks measure what the console adds against it.
func (d *daemon) console() http.Handler { return nil }
