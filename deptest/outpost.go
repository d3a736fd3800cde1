package deptest

// Badger is the store engine's module path.
const Badger = "github.com/dgraph-io/badger"

// Postgres is PostgreSQL's driver's module path.
const Postgres = "github.com/jackc/pgx"

// Server is the package of a part's control server.
const Server = "github.com/outpost-robotics/outpost/control"

// Chromedp is the module path prefix of the browser driver webtest uses
// (chromedp and its protocol types, cdproto).
const Chromedp = "github.com/chromedp"

// Outpost returns Outpost's package boundaries (docs/ARCHITECTURE.md,
// "Packages and who may do what"). Changing one is changing the
// architecture: say why there too.
func Outpost() Rules {
	return Rules{
		Imports: []ImportRule{{
			Path: Badger,
			Only: []string{"badgerdb", "cache", "cloud/store/badgerstore", "cloud/ingest/badgeringest"},
			Why:  "the store packages are the only ones that know Badger: everything else sees their interfaces, so the engine can change in one place",
		}, {
			Path: Postgres,
			Only: []string{"cloud/store/pgstore", "cloud/ingest/pgingest", "cloud/pgmigrate", "cloud/pgshared", "cloud/pgtest"},
			Why:  "the PostgreSQL packages are the only ones that know its driver: everything else sees the stores' interfaces, so the engine can change in one place",
		}, {
			Path: Server,
			Only: []string{"daemon", "cli", "cloud/relay", "web"},
			Why:  "only the daemon serves the control plane; clients (the CLI, the sync loop's relay) speak to it through controlclient and controlwire. The CLI's, the relay's and the front end's tests start a real part server; the link rules keep it out of their binaries",
		}},
		Links: []LinkRule{{
			Main: "cmd/outpost",
			Path: Badger,
			Why:  "the CLI runs on technicians' laptops and needs no store; reach daemon files through partfile, the daemon through its control API",
		}, {
			Main: "cli",
			Path: Badger,
			Why:  "cli is the CLI's code: checked on its own so a command that reaches the store is caught where it is written",
		}, {
			Main: "cmd/outpost",
			Path: Server,
			Why:  "the CLI is a client of the control plane: it links controlclient, never the server",
		}, {
			Main: "cli",
			Path: Server,
			Why:  "the CLI is a client of the control plane: it links controlclient, never the server",
		}, {
			Main: "cli",
			Path: "github.com/outpost-robotics/outpost/cloud",
			Why:  "the CLI is a client of the cloud: it speaks the fleet API and links none of the cloud's own packages",
		}, {
			Main: "cmd/outpost-cloud",
			Path: Server,
			Why:  "the cloud relays signaling and never serves a part's control plane",
		}, {
			Main: "cmd/outpost-cloud",
			Path: Chromedp,
			Why:  "webtest drives a browser for tests: only tests import it, and no binary links it or its driver",
		}, {
			Main: "cmd/outpostd",
			Path: Chromedp,
			Why:  "webtest drives a browser for tests: only tests import it, and no binary links it or its driver",
		}, {
			Main: "cmd/outpost",
			Path: Chromedp,
			Why:  "webtest drives a browser for tests: only tests import it, and no binary links it or its driver",
		}, {
			Main: "cmd/outpostd",
			Path: "text/template",
			Why: "its reflection (reflect.Value.Method) makes the linker keep every exported method of every type in the binary: " +
				"5.5 MB of outpostd's 28.6 MB when cobra's help templates brought it in, and a robot keeps the binary's pages resident",
		}, {
			Main: "packages",
			Path: "github.com/outpost-robotics/outpost/cloud",
			Why:  "packages is the part's package cache: it links none of the cloud's code, and meets the cloud only through the Fetcher the daemon gives it",
		}, {
			Main: "packages",
			Path: "github.com/outpost-robotics/outpost/cloudsync",
			Why:  "packages knows no sync loop: the daemon wires its sync client in as the Fetcher, so the cache stays testable against any chunk server",
		}, {
			Main: "packages",
			Path: "github.com/outpost-robotics/outpost/daemon",
			Why:  "the daemon wires packages, never the other way: the cache knows neither the store, the robot nor the sync loop",
		}},
		Listen: []ListenRule{{
			Main: "cmd/outpostd",
			Only: []string{"control"},
			Why:  "control is the daemon's only package that listens, so a robot's network surface is one package to audit",
		}},
		Pure: []PureRule{{
			Package: "rbac",
			Std: []string{
				"bytes", "cmp", "errors", "fmt", "iter", "maps", "math", "math/bits", "slices",
				"sort", "strconv", "strings", "sync", "sync/atomic", "unicode", "unicode/utf16", "unicode/utf8",
			},
			Why: "rbac decides from what it is given, the same on the cloud and the part, and is tested exhaustively only because it does no I/O",
		}},
		Leaves: []LeafRule{{
			Package: "authz",
			Only:    []string{"rbac", "api/gen"},
			Why: "authz is what the cloud and the parts share about who calls and how a call is answered: it reads the contracts' rules and spells rbac's subjects, " +
				"and imports nothing else of the module, so both sides link it without linking each other's code, and it cannot come to depend on either side's store or transport",
		}, {
			Package: "pkgformat",
			Only:    []string{"api/gen"},
			Why: "pkgformat is the package content format the CLI, the cloud and the parts share (the tar stream, its chunking, a manifest's limits): " +
				"it imports nothing else of the module, so every side links it without linking another's code",
		}, {
			Package: "pkgupload",
			Only:    []string{"api/gen", "pkgformat"},
			Why: "pkgupload is the CLI's upload of a package: it speaks the fleet API through the client it is given and cuts content with pkgformat, " +
				"so the CLI links it without linking the cloud's or the part's code",
		}, {
			Package: "durable",
			Why: "durable is how every side writes a file that must survive a crash (the part's store and budget, the cloud's files, the CLI's credentials): " +
				"it imports none of the module, so the part's store links it without linking the cloud's code, which is where it was",
		}},
	}
}
