package systemd

import _ "embed"

// Unit is systemd/outpostd.service, the unit the package installs.
//
//go:embed outpostd.service
var Unit []byte
