package demo

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
)

// maxOutput bounds what the demo reads of one command's output; the
// largest answer it asks for (a thousand captures) is far below it.
const maxOutput = 32 << 20

// decode reads a command's --json output into m. The CLI prints the API's
// answer as protobuf JSON, so the generated types check its shape; fields
// a newer CLI adds are ignored.
func decode(what string, b []byte, m proto.Message) error {
	if len(b) > maxOutput {
		return fmt.Errorf("read %s: %d bytes of output, more than %d", what, len(b), maxOutput)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return fmt.Errorf("read %s: no output", what)
	}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, m); err != nil {
		// protojson puts a no-break space in its messages on purpose.
		return fmt.Errorf("read %s: %s", what, strings.ReplaceAll(err.Error(), "\u00a0", " "))
	}
	return nil
}

// needID checks that an id the demo goes on to use is one.
func needID(what, id string) error {
	if !isHexID(id) {
		return fmt.Errorf("%s: %q is not an id (32 hex digits)", what, clip(id, 40))
	}
	return nil
}

// cliErrorLine is how the outpost CLI reports a failed call on stderr:
// "outpost: MESSAGE [code]" (the code only for API errors).
var cliErrorLine = regexp.MustCompile(`^outpost: (.*?)(?: \[([a-z_]+)\])?$`)

// refusal is a failed CLI call as the CLI reported it.
type refusal struct {
	Message string // the error, written for a person
	Code    string // the Connect code ("permission_denied"), if any
}

// parseRefusal reads the CLI's error line from its stderr (the last line
// starting "outpost: "); ok is false when there is none.
func parseRefusal(stderr []byte) (refusal, bool) {
	if len(stderr) > maxOutput {
		stderr = stderr[len(stderr)-maxOutput:]
	}
	lines := strings.Split(strings.TrimRight(string(stderr), "\r\n"), "\n")
	for _, l := range slices.Backward(lines) {
		m := cliErrorLine.FindStringSubmatch(strings.TrimRight(l, "\r"))
		if m != nil {
			return refusal{Message: m[1], Code: m[2]}, true
		}
	}
	return refusal{}, false
}

// trustLine is how `outpost robot trust` shows a part's certificate.
var trustLine = regexp.MustCompile(`(?m)^(\S+) presents certificate SHA-256 ([0-9a-f]{64})\s*$`)

// parseTrust reads the fingerprint `outpost robot trust ADDR` printed for addr.
func parseTrust(out []byte, addr string) (string, error) {
	if len(out) > maxOutput {
		return "", errors.New("read the fingerprint: output too long")
	}
	for _, m := range trustLine.FindAllSubmatch(out, -1) {
		if string(m[1]) == addr {
			return string(m[2]), nil
		}
	}
	return "", fmt.Errorf("read the fingerprint of %s: no %q line in %q", addr, "presents certificate SHA-256", clip(string(out), 200))
}

// heldCaptures is the capture sequences a part lists, checked: each once,
// each from 1.
func heldCaptures(res *controlv1.ListCapturesResponse) ([]uint64, error) {
	seqs := make([]uint64, 0, len(res.GetCaptures()))
	for _, c := range res.GetCaptures() {
		if c.GetId() == 0 {
			return nil, errors.New("the part listed a capture without an id")
		}
		seqs = append(seqs, c.GetId())
	}
	slices.Sort(seqs)
	if i := firstRepeat(seqs); i >= 0 {
		return nil, fmt.Errorf("the part listed capture %d twice", seqs[i])
	}
	return seqs, nil
}

// firstRepeat is the index of the first element of sorted s equal to the
// one before it, or -1.
func firstRepeat(s []uint64) int {
	for i := 1; i < len(s); i++ {
		if s[i] == s[i-1] {
			return i
		}
	}
	return -1
}

// arrived counts how many of held (a part's capture sequences) the cloud
// lists for partID, and which are still missing.
func arrived(held []uint64, partID string, cloud []*fleetv1.CaptureRecord) (n int, missing []uint64) {
	have := make(map[uint64]bool, len(cloud))
	for _, c := range cloud {
		if c.GetPartId() == partID {
			have[c.GetSeq()] = true
		}
	}
	for _, s := range held {
		if have[s] {
			n++
		} else {
			missing = append(missing, s)
		}
	}
	return n, missing
}

// duplicate names the first capture the cloud lists twice (by part, store
// and sequence: the cloud keeps each once), or "".
func duplicate(recs []*fleetv1.CaptureRecord) string {
	type key struct {
		part, store string
		seq         uint64
	}
	seen := make(map[key]bool, len(recs))
	for _, c := range recs {
		k := key{c.GetPartId(), c.GetStoreId(), c.GetSeq()}
		if seen[k] {
			return fmt.Sprintf("%s:%s:%d", k.part, k.store, k.seq)
		}
		seen[k] = true
	}
	return ""
}

// stillHeld counts how many of held the part still lists.
func stillHeld(held []uint64, now []uint64) int {
	n := 0
	for _, s := range now {
		if _, ok := slices.BinarySearch(held, s); ok {
			n++
		}
	}
	return n
}

// seqRange prints sorted sequences as "a-b" (or "a", or "none").
func seqRange(seqs []uint64) string {
	switch len(seqs) {
	case 0:
		return "none"
	case 1:
		return fmt.Sprint(seqs[0])
	}
	return fmt.Sprintf("%d-%d", seqs[0], seqs[len(seqs)-1])
}
