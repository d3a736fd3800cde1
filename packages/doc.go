// Package packages is the part's half of package deployment: it downloads
// the package versions the cloud issues in a config document, keeps them on
// disk for the part's whole offline life, switches the modules and processes
// that use them to a new version, and switches them back by itself when the
// new version does not come up.
//
// What it trusts, and when: a version's manifest only once its signature
// verifies with the keys of the part's bootstrap file; a chunk only once its
// SHA-256 is the manifest's (it is written to a temporary file, synced, and
// renamed into the cache only then); the unpacked files only once the whole
// content stream's SHA-256 and size are the manifest's and every tar entry
// stayed inside the version's directory. Nothing is unpacked in place: a
// version is unpacked into a temporary directory and renamed whole, so the
// running version is never touched by a failed or hostile download.
//
// Layout under the packages directory (the daemon's DATA_DIR/packages):
//
//	chunks/<sha256 hex>                      content-defined chunks, shared by versions
//	versions/<org>/<name>/<version>-<os>-<arch>/  unpacked versions ("any" for portable ones)
//	manifests/<stream sha256 hex>            signed manifests of the versions on disk
//	tmp/                                     downloads and unpacks in progress
//	state.json                               per package: current, previous, refused versions
//
// A download resumes by construction: the chunks already in the cache are
// not fetched again, so a cut or a restart loses at most the few chunks in
// flight.
package packages
