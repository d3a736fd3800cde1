// Package badgeringest may import Badger, here in its tests only.
package badgeringest
