package cloud

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"connectrpc.com/connect"

	"github.com/outpost-robotics/outpost/cloud/ingest"
	"github.com/outpost-robotics/outpost/cloud/store"
)

// machineParts returns a machine's parts, main part first, or the one named
// by partID, which must be the machine's.
func machineParts(snap *snapshot, machineID, partID string) ([]store.Part, error) {
	var out []store.Part
	for _, p := range snap.parts {
		if p.MachineID == machineID && (partID == "" || p.ID == partID) {
			out = append(out, p)
		}
	}
	if partID != "" && len(out) == 0 {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("machine/%s has no part %q", machineID, partID))
	}
	slices.SortFunc(out, func(a, b store.Part) int {
		if a.Main != b.Main {
			if a.Main {
				return -1
			}
			return 1
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

func (s *Server) ingestStore() (ingest.Store, error) {
	if s.ingest == nil {
		return nil, connect.NewError(connect.CodeUnimplemented, errors.New("this cloud keeps no part data (it was started without an ingest store)"))
	}
	return s.ingest, nil
}
