package cli

import (
	"context"
	"io"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"
)

// rpc is one unary method of the fleet API as a method expression on api,
// such as (*api).CreateOrg.
type rpc[Req, Res any] func(*api, context.Context, *connect.Request[Req]) (*connect.Response[Res], error)

// call is what most commands of the fleet API are: it connects, calls
// method with req, and prints the answer as JSON (--json) or with show
// (nil shows JSON too). M is Res's pointer type, the message show gets.
func call[Req, Res any, M interface {
	*Res
	proto.Message
}](g *globals, cmd *cobra.Command, method rpc[Req, Res], req *Req, show func(w io.Writer, res M) error) error {
	c, err := g.client()
	if err != nil {
		return err
	}
	if m, ok := any(req).(proto.Message); ok {
		if err := g.resolve(cmd.Context(), c, m); err != nil {
			return err
		}
	}
	res, err := method(c, cmd.Context(), connect.NewRequest(req))
	if err != nil {
		return err
	}
	msg := M(res.Msg)
	var plain func(io.Writer) error
	if show != nil {
		plain = func(w io.Writer) error { return show(w, msg) }
	}
	return g.output(cmd.OutOrStdout(), msg, plain)
}
