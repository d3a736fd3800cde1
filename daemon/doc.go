// Package daemon is outpostd's composition root: it opens the store, starts
// the control plane, applies the cached config, runs sync, capture and the
// robot, and speaks to systemd, in that order.
package daemon
