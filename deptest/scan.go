package deptest

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// anyNetwork marks an API in listenAPIs that listens whatever its arguments.
const anyNetwork = -1

// listenAPIs are the functions and types that open a listening socket, by
// import path: for each, the index of the argument naming the network, or
// anyNetwork. A call whose network argument is a string literal starting
// with "unix" opens a Unix socket, which is local IPC and not the network
// (module sockets in robot); any other value, a variable included, counts.
// Third-party code is not scanned, so the libraries that listen (mDNS,
// WebRTC's ICE agents) are listed by their entry points. Adopting a socket
// someone else opened (net.FileListener) is not listening.
var listenAPIs = map[string]map[string]int{
	"net": {
		"Listen": 0, "ListenPacket": 0, "ListenConfig": anyNetwork,
		"ListenTCP": anyNetwork, "ListenUDP": anyNetwork, "ListenIP": anyNetwork, "ListenMulticastUDP": anyNetwork,
	},
	"crypto/tls":                {"Listen": 0},
	"net/http":                  {"ListenAndServe": anyNetwork, "ListenAndServeTLS": anyNetwork},
	"net/http/httptest":         {"NewServer": anyNetwork, "NewTLSServer": anyNetwork, "NewUnstartedServer": anyNetwork},
	"syscall":                   {"Listen": anyNetwork, "Bind": anyNetwork},
	"golang.org/x/sys/unix":     {"Listen": anyNetwork, "Bind": anyNetwork},
	"github.com/hashicorp/mdns": {"NewServer": anyNetwork},
	"github.com/pion/mdns/v2":   {"Server": anyNetwork},
	"github.com/pion/webrtc/v4": {"NewPeerConnection": anyNetwork},
	"github.com/pion/ice/v4":    {"NewAgent": anyNetwork, "NewAgentWithOptions": anyNetwork},
}

// listenMethods are methods that listen, whatever their receiver
// (http.Server's, webrtc.API's): the parser does not know types, so any
// method of these names counts.
var listenMethods = []string{"ListenAndServe", "ListenAndServeTLS", "NewPeerConnection"}

// ioFuncs are fmt's functions that read or write a stream; fmt is allowed
// to pure packages for Sprintf and Errorf only.
var ioFuncs = map[string][]string{
	"fmt": {"Print", "Printf", "Println", "Fprint", "Fprintf", "Fprintln", "Scan", "Scanf", "Scanln", "Fscan", "Fscanf", "Fscanln"},
}

// use is one reference in source to a package's identifier or to a method.
type use struct {
	pkg  string // import path; "" for a method or a builtin
	name string
	call *ast.CallExpr // nil when referenced without a call
	pos  token.Position
}

// uses parses p's files (not its tests) and returns every qualified
// identifier, method selector and call of the print builtins.
func (g *Graph) uses(p *Package) ([]use, error) {
	var out []use
	fset := token.NewFileSet()
	for _, name := range append(slices.Clone(p.GoFiles), p.CgoFiles...) {
		f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", name, err)
		}
		out = append(out, g.fileUses(fset, f)...)
	}
	return out, nil
}

func (g *Graph) fileUses(fset *token.FileSet, f *ast.File) []use {
	names := map[string]string{} // local name → import path
	for _, is := range f.Imports {
		path, _ := strconv.Unquote(is.Path.Value)
		name := ""
		switch {
		case is.Name != nil:
			name = is.Name.Name
		case g.Packages[path] != nil:
			name = g.Packages[path].Name
		default:
			name = path[strings.LastIndex(path, "/")+1:]
		}
		names[name] = path
	}
	calls := map[ast.Expr]*ast.CallExpr{}
	ast.Inspect(f, func(n ast.Node) bool {
		if c, ok := n.(*ast.CallExpr); ok {
			calls[c.Fun] = c
		}
		return true
	})
	var out []use
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.SelectorExpr:
			u := use{name: n.Sel.Name, call: calls[n], pos: fset.Position(n.Sel.Pos())}
			if id, ok := n.X.(*ast.Ident); ok {
				u.pkg = names[id.Name]
			}
			out = append(out, u)
		case *ast.Ident:
			if c := calls[n]; c != nil && (n.Name == "print" || n.Name == "println") {
				out = append(out, use{name: n.Name, call: c, pos: fset.Position(n.Pos())})
			}
		}
		return true
	})
	return out
}

// where is a position relative to the module, for messages.
func (g *Graph) where(pos token.Position) string {
	rel, err := filepath.Rel(g.Dir, pos.Filename)
	if err != nil {
		rel = pos.Filename
	}
	return fmt.Sprintf("%s:%d", filepath.ToSlash(rel), pos.Line)
}

// listens returns where p's code listens on the network.
func (g *Graph) listens(p *Package) ([]string, error) {
	uses, err := g.uses(p)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, u := range uses {
		if u.pkg == "" {
			if u.call != nil && slices.Contains(listenMethods, u.name) {
				out = append(out, fmt.Sprintf("calls a method %s at %s", u.name, g.where(u.pos)))
			}
			continue
		}
		arg, ok := listenAPIs[u.pkg][u.name]
		if !ok || (arg != anyNetwork && u.call != nil && len(u.call.Args) > arg && isUnixLiteral(u.call.Args[arg])) {
			continue
		}
		out = append(out, fmt.Sprintf("uses %s.%s at %s", u.pkg, u.name, g.where(u.pos)))
	}
	return out, nil
}

// isUnixLiteral reports whether e is a string literal naming a Unix socket
// network ("unix", "unixgram", "unixpacket").
func isUnixLiteral(e ast.Expr) bool {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return false
	}
	s, err := strconv.Unquote(lit.Value)
	return err == nil && strings.HasPrefix(s, "unix")
}

// doesIO returns where p's code calls fmt's stream functions or the print
// builtins.
func (g *Graph) doesIO(p *Package) ([]string, error) {
	uses, err := g.uses(p)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, u := range uses {
		switch {
		case u.pkg == "" && u.call != nil && (u.name == "print" || u.name == "println"):
			out = append(out, fmt.Sprintf("calls the builtin %s at %s", u.name, g.where(u.pos)))
		case u.pkg != "" && slices.Contains(ioFuncs[u.pkg], u.name):
			out = append(out, fmt.Sprintf("uses %s.%s at %s", u.pkg, u.name, g.where(u.pos)))
		}
	}
	return out, nil
}
