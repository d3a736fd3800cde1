package deptest

// Badger is the store engine's module path.
const Badger = "github.com/dgraph-io/badger"

// Server is the package of a part's control server.
const Server = "github.com/outpost-robotics/outpost/control"

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
			Path: Server,
			Only: []string{"daemon", "cli", "cloud/relay"},
			Why:  "only the daemon serves the control plane; clients (the CLI, the sync loop's relay) speak to it through controlclient and controlwire. The CLI's and the relay's tests start a real part server; the link rules keep it out of their binaries",
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
			Main: "cmd/outpost-cloud",
			Path: Server,
			Why:  "the cloud relays signaling and never serves a part's control plane",
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
		}},
	}
}
