// Package web is the front end; it drives a browser in its code, not only
// in its tests, so the cloud, which links it, links the driver: a violation.
package web

import "github.com/chromedp/chromedp"

// Handler stands in for the front end's handler.
func Handler() error { return chromedp.Run() }
