package cli

import (
	"errors"
	"io"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
)

// fleetFlags are the flags that turn a data or logs command from one
// machine to a fleet: an organization or a location's subtree, narrowed
// to parts, methods and media types.
type fleetFlags struct {
	org, location, method, mime string
	parts                       []string
}

func (f *fleetFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.org, "org", "", "every machine of this organization (nested and shared locations)")
	cmd.Flags().StringVar(&f.location, "location", "", "every machine of this location and the locations inside it")
	if cmd.Name() != "logs" { // logs has its own --part
		cmd.Flags().StringSliceVar(&f.parts, "part", nil, "with --org or --location: only these parts (repeat or comma-separate)")
		cmd.Flags().StringVar(&f.method, "method", "", "with --org or --location: only this method, such as readings or image")
		cmd.Flags().StringVar(&f.mime, "mime", "", "with --org or --location: only this media type, such as image/jpeg or image/*")
	}
}

// fleet says whether the command reads a fleet rather than one machine.
func (f *fleetFlags) fleet() bool { return f.org != "" || f.location != "" }

// scope names the fleet for messages.
func (f *fleetFlags) scope() string {
	if f.org != "" {
		return "org/" + f.org
	}
	return "location/" + f.location
}

// machineOnly checks a one-machine command's flags.
func (f *fleetFlags) machineOnly(machine string) error {
	switch {
	case machine == "":
		return errors.New("one of --machine, --org or --location is required")
	case len(f.parts) > 0 || f.method != "" || f.mime != "":
		return errors.New("--part, --method and --mime go with --org or --location")
	}
	return nil
}

// query is the fleet query of the flags.
func (f *fleetFlags) query(machine, component, tag string, from, to *timestamppb.Timestamp) (*fleetv1.FleetDataQuery, error) {
	if f.org != "" && f.location != "" {
		return nil, errors.New("--org and --location: give one")
	}
	q := &fleetv1.FleetDataQuery{OrgId: f.org, LocationId: f.location, PartIds: f.parts, Component: component, Method: f.method,
		Tag: tag, MimeType: f.mime, From: from, To: to}
	if machine != "" {
		q.MachineIds = []string{machine}
	}
	return q, nil
}

// nameOrID is a part's name, or its ID when the cloud sent none.
func nameOrID(name, id string) string {
	if name != "" {
		return name
	}
	return id
}

func fleetCaptureTable(w io.Writer, cs []*fleetv1.CaptureRecord) error {
	var rows [][]string
	for _, c := range cs {
		rows = append(rows, append([]string{when(c.GetTime()), c.GetMachineId(), nameOrID(c.GetPartName(), c.GetPartId())}, captureCells(c)...))
	}
	return table(w, []string{"TIME", "MACHINE", "PART", "CAPTURE", "COMPONENT", "METHOD", "TYPE", "DATA", "TAGS"}, rows)
}
