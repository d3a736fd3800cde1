package cloud

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/cloud/ingest"
	"github.com/outpost-robotics/outpost/cloud/ingest/badgeringest"
	"github.com/outpost-robotics/outpost/cloud/ingest/pgingest"
	"github.com/outpost-robotics/outpost/cloud/partsync"
	"github.com/outpost-robotics/outpost/cloud/pgshared"
	"github.com/outpost-robotics/outpost/cloud/store"
	"github.com/outpost-robotics/outpost/cloud/store/badgerstore"
	"github.com/outpost-robotics/outpost/cloud/store/pgstore"
)

// CopiedKind is one kind of record a copy moved: how many, and the SHA-256
// over them in the stores' order, as read back from the destination (equal
// to the source's, or the copy failed).
type CopiedKind struct {
	Kind   string
	Count  int
	SHA256 string
}

// CopyReport is what CopyToPostgres moved, kind by kind.
type CopyReport struct {
	Kinds []CopiedKind
	// Skipped says what was left behind on purpose, for people.
	Skipped []string
}

// ErrTargetNotEmpty refuses a copy into a database that already holds a
// cloud: a copy merges nothing.
var ErrTargetNotEmpty = errors.New("the database already holds a cloud")

// Migrate applies every PostgreSQL migration the database at url lacks
// (the fleet store's, the ingest store's, the blobs' and the replicas'
// shared tables), as serving would at start.
func Migrate(ctx context.Context, url string) error {
	st, err := pgstore.Open(ctx, url)
	if err != nil {
		return err
	}
	defer st.Close()
	blobs, err := pgingest.OpenBlobStore(ctx, url)
	if err != nil {
		return err
	}
	defer blobs.Close()
	ing, err := pgingest.Open(ctx, pgingest.Options{URL: url, Blobs: blobs})
	if err != nil {
		return err
	}
	defer ing.Close()
	sh, err := pgshared.Open(ctx, pgshared.Options{URL: url})
	if err != nil {
		return err
	}
	return sh.Close()
}

// CopyToPostgres copies the state of the embedded cloud in dataDir (which
// must not be serving: Badger locks its folders) into the empty PostgreSQL
// database at url: the fleet store (signing key and admin included), every
// record parts handed over with the ranges they declared lost and the
// deleted ones' tombstones, parts' last statuses, and finished blobs. Each
// kind is then read back from the database and compared with the source by
// count and SHA-256; any difference fails the copy.
//
// Left behind: unfinished blobs (their parts send them again from the
// start).
func CopyToPostgres(ctx context.Context, dataDir, url string, log *zap.Logger) (CopyReport, error) {
	var rep CopyReport
	src, err := badgerstore.Open(filepath.Join(dataDir, "store"), log)
	if err != nil {
		return rep, fmt.Errorf("open the embedded store (is its cloud still serving?): %w", err)
	}
	defer src.Close()
	srcBlobs, err := ingest.NewFileBlobStore(filepath.Join(dataDir, "blobs"))
	if err != nil {
		return rep, err
	}
	srcIng, err := badgeringest.Open(badgeringest.Options{Dir: filepath.Join(dataDir, "ingest"), Blobs: srcBlobs, Logger: log})
	if err != nil {
		return rep, fmt.Errorf("open the embedded ingest store: %w", err)
	}
	defer srcIng.Close()
	if err := Migrate(ctx, url); err != nil {
		return rep, err
	}
	dst, err := pgstore.Open(ctx, url)
	if err != nil {
		return rep, err
	}
	defer dst.Close()
	dstBlobs, err := pgingest.OpenBlobStore(ctx, url)
	if err != nil {
		return rep, err
	}
	defer dstBlobs.Close()
	dstIng, err := pgingest.Open(ctx, pgingest.Options{URL: url, Blobs: dstBlobs})
	if err != nil {
		return rep, err
	}
	defer dstIng.Close()

	if err := dst.View(ctx, func(tx store.Tx) error {
		_, err := tx.GetMeta(ctx, metaSigningKey)
		if err == nil {
			return ErrTargetNotEmpty
		}
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	}); err != nil {
		return rep, fmt.Errorf("copy to PostgreSQL: %w", err)
	}

	// What parts handed over comes first: the capture tags and the
	// proposals' records are keyed by it.
	srcRecs, captures, err := copyRecords(ctx, srcIng, dstIng)
	if err != nil {
		return rep, err
	}
	dump, err := dumpFleet(ctx, src, captures)
	if err != nil {
		return rep, fmt.Errorf("read the embedded store: %w", err)
	}
	if err := loadFleet(ctx, dst, dump); err != nil {
		return rep, fmt.Errorf("write the fleet store to PostgreSQL: %w", err)
	}
	back, err := dumpFleet(ctx, dst, captures)
	if err != nil {
		return rep, fmt.Errorf("read the fleet store back from PostgreSQL: %w", err)
	}
	want, got := dump.sums(), back.sums()
	for i := range want {
		if want[i] != got[i] {
			return rep, fmt.Errorf("copy to PostgreSQL: %s differ: the embedded store holds %d (SHA-256 %s), PostgreSQL %d (%s)",
				want[i].Kind, want[i].Count, want[i].SHA256, got[i].Count, got[i].SHA256)
		}
	}
	rep.Kinds = append(rep.Kinds, got...)

	dstRecs, _, err := sumRecords(ctx, dstIng)
	if err != nil {
		return rep, fmt.Errorf("read the records back from PostgreSQL: %w", err)
	}
	if srcRecs != dstRecs {
		return rep, fmt.Errorf("copy to PostgreSQL: records differ: the embedded store holds %d (SHA-256 %s), PostgreSQL %d (%s)",
			srcRecs.Count, srcRecs.SHA256, dstRecs.Count, dstRecs.SHA256)
	}
	rep.Kinds = append(rep.Kinds, dstRecs)

	statuses, err := copyStatuses(ctx, dump.parts, srcIng, dstIng)
	if err != nil {
		return rep, err
	}
	rep.Kinds = append(rep.Kinds, statuses)
	blobs, partial, err := copyBlobs(ctx, captures, srcIng, srcBlobs, dstIng)
	if err != nil {
		return rep, err
	}
	rep.Kinds = append(rep.Kinds, blobs)
	if partial > 0 {
		rep.Skipped = append(rep.Skipped, fmt.Sprintf("%d unfinished blobs (their parts send them again)", partial))
	}
	return rep, nil
}

// streams are every stream a part uploads.
var streams = []string{partsync.StreamLogsDebug, partsync.StreamLogsInfo, partsync.StreamLogsWarn, partsync.StreamCaptures,
	partsync.StreamAudit, partsync.StreamGaps, partsync.StreamProposals}

// captureRef is a capture record's key and the blob it names.
type captureRef struct {
	id     string // "PART|STORE_ID|SEQ", the capture tags' key
	partID string
	blobID string
}

// recordSummer hashes records in the stores' order.
type recordSummer struct {
	h hash.Hash
	n int
}

func (s *recordSummer) add(r ingest.StoredRecord) {
	fmt.Fprintf(s.h, "%s|%s|%s|%d|%d|%d|", r.PartID, r.StoreID, r.Stream, r.Seq, r.Time.UnixNano(), len(r.Payload))
	s.h.Write(r.Payload)
	s.n++
}

func (s *recordSummer) kind(k string) CopiedKind {
	return CopiedKind{Kind: k, Count: s.n, SHA256: hex.EncodeToString(s.h.Sum(nil))}
}

// copyRecords copies every record, stream by stream, then each stream's
// lost ranges and the tombstones of deleted records, so the destination's
// watermarks equal the source's: a part never sends again what it was told
// is held.
func copyRecords(ctx context.Context, src, dst ingest.Store) (CopiedKind, []captureRef, error) {
	sum := &recordSummer{h: sha256.New()}
	var captures []captureRef
	keys := map[[2]string]bool{}
	var batch []ingest.Record
	var batchKey ingest.StreamKey
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if _, err := dst.PutRecords(ctx, batchKey, batch); err != nil {
			return fmt.Errorf("copy records of %s: %w", batchKey, err)
		}
		batch = batch[:0]
		return nil
	}
	for after := ""; ; {
		recs, next, err := src.Records(ctx, ingest.Query{After: after, Limit: ingest.MaxLimit})
		if err != nil {
			return CopiedKind{}, nil, fmt.Errorf("read the embedded records: %w", err)
		}
		for _, r := range recs {
			if r.StreamKey != batchKey || len(batch) >= 500 {
				if err := flush(); err != nil {
					return CopiedKind{}, nil, err
				}
				batchKey = r.StreamKey
			}
			batch = append(batch, r.Record)
			sum.add(r)
			keys[[2]string{r.PartID, r.StoreID}] = true
			if r.Stream == partsync.StreamCaptures {
				var c syncv1.Capture
				if proto.Unmarshal(r.Payload, &c) == nil {
					captures = append(captures, captureRef{id: fmt.Sprintf("%s|%s|%d", r.PartID, r.StoreID, r.Seq), partID: r.PartID, blobID: c.GetBlobId()})
				}
			}
		}
		if next == "" {
			break
		}
		after = next
	}
	if err := flush(); err != nil {
		return CopiedKind{}, nil, err
	}
	for k := range keys {
		for _, s := range streams {
			key := ingest.StreamKey{PartID: k[0], StoreID: k[1], Stream: s}
			lost, err := src.Lost(ctx, key)
			if err != nil {
				return CopiedKind{}, nil, fmt.Errorf("read the lost ranges of %s: %w", key, err)
			}
			for _, l := range lost {
				if _, err := dst.DeclareLost(ctx, key, l.First, l.Last, l.Reason); err != nil {
					return CopiedKind{}, nil, fmt.Errorf("copy a lost range of %s: %w", key, err)
				}
			}
			if err := copyTombstones(ctx, src, dst, key); err != nil {
				return CopiedKind{}, nil, err
			}
		}
	}
	return sum.kind("records"), captures, nil
}

// copyTombstones writes, below the source's watermark, each sequence the
// destination lacks (a record people deleted) and erases it again: a
// tombstone, as DeleteRecords leaves.
func copyTombstones(ctx context.Context, src, dst ingest.Store, key ingest.StreamKey) error {
	want, err := src.AckedThrough(ctx, key)
	if err != nil {
		return fmt.Errorf("read the watermark of %s: %w", key, err)
	}
	for {
		have, err := dst.AckedThrough(ctx, key)
		if err != nil {
			return fmt.Errorf("read the copied watermark of %s: %w", key, err)
		}
		if have >= want {
			return nil
		}
		seq := have + 1
		if _, err := dst.PutRecords(ctx, key, []ingest.Record{{Seq: seq, Payload: []byte{0}}}); err != nil {
			return fmt.Errorf("copy the tombstone %d of %s: %w", seq, key, err)
		}
		if _, err := dst.DeleteRecords(ctx, key, []uint64{seq}); err != nil {
			return fmt.Errorf("copy the tombstone %d of %s: %w", seq, key, err)
		}
	}
}

// sumRecords hashes every record of st.
func sumRecords(ctx context.Context, st ingest.Store) (CopiedKind, int, error) {
	sum := &recordSummer{h: sha256.New()}
	for after := ""; ; {
		recs, next, err := st.Records(ctx, ingest.Query{After: after, Limit: ingest.MaxLimit})
		if err != nil {
			return CopiedKind{}, 0, err
		}
		for _, r := range recs {
			sum.add(r)
		}
		if next == "" {
			return sum.kind("records"), sum.n, nil
		}
		after = next
	}
}

// copyStatuses copies each part's last status.
func copyStatuses(ctx context.Context, parts []store.Part, src, dst ingest.Store) (CopiedKind, error) {
	h := sha256.New()
	n := 0
	for _, p := range parts {
		st, err := src.Status(ctx, p.ID)
		if errors.Is(err, ingest.ErrNotFound) {
			continue
		}
		if err != nil {
			return CopiedKind{}, fmt.Errorf("read the status of part %s: %w", p.ID, err)
		}
		if err := dst.PutStatus(ctx, p.ID, st.Status, st.At); err != nil {
			return CopiedKind{}, fmt.Errorf("copy the status of part %s: %w", p.ID, err)
		}
		back, err := dst.Status(ctx, p.ID)
		if err != nil || !proto.Equal(back.Status, st.Status) || !back.At.Equal(st.At) {
			return CopiedKind{}, fmt.Errorf("copy the status of part %s: it reads back different (%v)", p.ID, err)
		}
		b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(st.Status)
		fmt.Fprintf(h, "%s|%d|%d|", p.ID, st.At.UnixNano(), len(b))
		h.Write(b)
		n++
	}
	return CopiedKind{Kind: "part statuses", Count: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// blobChunk is the size of the chunks a blob is copied in.
const blobChunk = 1 << 20

// copyBlobs copies every finished blob a capture names, in chunks; the
// destination checks each against its SHA-256 when the last byte arrives.
// Deleted blobs stay deleted. It returns the unfinished ones' number.
func copyBlobs(ctx context.Context, captures []captureRef, src ingest.Store, srcBlobs ingest.BlobStore, dst ingest.Store) (CopiedKind, int, error) {
	h := sha256.New()
	n, partial := 0, 0
	seen := map[ingest.BlobKey]bool{}
	for _, c := range captures {
		key := ingest.BlobKey{PartID: c.partID, BlobID: c.blobID}
		if c.blobID == "" || seen[key] {
			continue
		}
		seen[key] = true
		info, err := src.Blob(ctx, c.partID, c.blobID)
		if errors.Is(err, ingest.ErrNotFound) {
			// Never sent, or deleted: deleted stays deleted.
			if err := dst.DeleteBlob(ctx, c.partID, c.blobID); err != nil {
				return CopiedKind{}, 0, fmt.Errorf("copy blob %s of part %s: %w", c.blobID, c.partID, err)
			}
			continue
		}
		if err != nil {
			return CopiedKind{}, 0, fmt.Errorf("read blob %s of part %s: %w", c.blobID, c.partID, err)
		}
		if !info.Complete {
			partial++
			continue
		}
		if err := copyBlob(ctx, info, srcBlobs, dst); err != nil {
			return CopiedKind{}, 0, err
		}
		fmt.Fprintf(h, "%s|%s|%d|%x|", c.partID, c.blobID, info.Size, info.SHA256)
		n++
	}
	return CopiedKind{Kind: "blobs", Count: n, SHA256: hex.EncodeToString(h.Sum(nil))}, partial, nil
}

func copyBlob(ctx context.Context, info ingest.BlobInfo, srcBlobs ingest.BlobStore, dst ingest.Store) error {
	what := fmt.Sprintf("copy blob %s of part %s", info.BlobID, info.PartID)
	r, err := srcBlobs.Open(ctx, info.BlobKey)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer r.Close()
	buf := make([]byte, blobChunk)
	var off uint64
	for {
		k, rerr := io.ReadFull(r, buf)
		if k > 0 || off == 0 {
			prog, err := dst.PutBlobChunk(ctx, ingest.BlobChunk{PartID: info.PartID, BlobID: info.BlobID, Offset: off, Data: buf[:k],
				Size: info.Size, SHA256: info.SHA256, Name: info.Name, Meta: info.Meta})
			if err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			off += uint64(k)
			if prog.Complete {
				return nil
			}
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%s: %d of %d bytes, and PostgreSQL did not find it complete", what, off, info.Size)
		}
		if rerr != nil {
			return fmt.Errorf("%s: %w", what, rerr)
		}
	}
}

// fleetDump is every record of a fleet store the copy moves, in a fixed
// order.
type fleetDump struct {
	orgs      []store.Org
	locations []store.Location
	machines  []store.Machine
	parts     []store.Part
	users     []store.User
	invites   []store.Invite
	apikeys   []store.APIKey
	grants    []store.Grant
	fragments []store.Fragment
	fragRevs  []store.FragmentRevision
	configs   []store.ConfigRevision
	docs      []store.PartDocuments
	proposals []store.Proposal
	tags      []store.CaptureTags
	audit     []store.AuditEvent
	rules     []store.AlertRule
	states    []store.AlertState
	events    []store.AlertEvent
	meta      map[string][]byte
}

// metaKeys are the store's meta keys.
var metaKeys = []string{metaSigningKey, metaAdminUser, metaAdminSession, metaDocsToken}

// dumpFleet reads every record of st in one snapshot.
func dumpFleet(ctx context.Context, st store.Store, captures []captureRef) (*fleetDump, error) {
	d := &fleetDump{meta: map[string][]byte{}}
	err := st.View(ctx, func(tx store.Tx) error {
		var err error
		if d.orgs, err = tx.ListOrgs(ctx); err != nil {
			return err
		}
		if d.locations, err = tx.ListLocations(ctx, ""); err != nil {
			return err
		}
		if d.machines, err = tx.ListMachines(ctx, ""); err != nil {
			return err
		}
		if d.parts, err = tx.ListParts(ctx, ""); err != nil {
			return err
		}
		if d.users, err = tx.ListUsers(ctx); err != nil {
			return err
		}
		if d.invites, err = tx.ListInvites(ctx); err != nil {
			return err
		}
		grants := map[[2]string]store.Grant{}
		addGrants := func(gs []store.Grant, err error) error {
			for _, g := range gs {
				grants[[2]string{g.Subject, g.Scope}] = g
			}
			return err
		}
		orgIDs := []string{""}
		for _, o := range d.orgs {
			orgIDs = append(orgIDs, o.ID)
		}
		keys := map[string]store.APIKey{}
		for _, o := range orgIDs {
			ks, err := tx.ListAPIKeys(ctx, o)
			if err != nil {
				return err
			}
			for _, k := range ks {
				keys[k.ID] = k
			}
			if err := addGrants(tx.ListGrantsByOrg(ctx, o)); err != nil {
				return err
			}
			fs, err := tx.ListFragments(ctx, o)
			if err != nil {
				return err
			}
			for _, f := range fs {
				if !slices.ContainsFunc(d.fragments, func(x store.Fragment) bool { return x.ID == f.ID }) {
					d.fragments = append(d.fragments, f)
				}
			}
			for before := ""; ; {
				es, err := tx.ListAudit(ctx, o, before, 1000)
				if err != nil {
					return err
				}
				d.audit = append(d.audit, es...)
				if len(es) < 1000 {
					break
				}
				before = es[len(es)-1].ID
			}
		}
		for _, id := range slices.Sorted(maps.Keys(keys)) {
			d.apikeys = append(d.apikeys, keys[id])
		}
		for _, u := range d.users {
			for _, s := range []string{"user/" + u.ID, "user:" + u.ID} {
				if err := addGrants(tx.ListGrantsBySubject(ctx, s)); err != nil {
					return err
				}
			}
		}
		for _, k := range d.apikeys {
			for _, s := range []string{"apikey/" + k.ID, "apikey:" + k.ID} {
				if err := addGrants(tx.ListGrantsBySubject(ctx, s)); err != nil {
					return err
				}
			}
		}
		for _, k := range slices.SortedFunc(maps.Keys(grants), func(a, b [2]string) int {
			return strings.Compare(a[0]+"\x00"+a[1], b[0]+"\x00"+b[1])
		}) {
			d.grants = append(d.grants, grants[k])
		}
		slices.SortFunc(d.fragments, func(a, b store.Fragment) int { return strings.Compare(a.ID, b.ID) })
		for _, f := range d.fragments {
			for rev := uint64(1); rev <= f.Revision; rev++ {
				r, err := tx.GetFragmentRevision(ctx, f.ID, rev)
				if errors.Is(err, store.ErrNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				d.fragRevs = append(d.fragRevs, r)
			}
		}
		for _, m := range d.machines {
			cs, err := tx.ListConfigRevisions(ctx, m.ID)
			if err != nil {
				return err
			}
			d.configs = append(d.configs, cs...)
			ps, err := tx.ListProposals(ctx, m.ID)
			if err != nil {
				return err
			}
			d.proposals = append(d.proposals, ps...)
		}
		for _, p := range d.parts {
			doc, err := tx.GetPartDocuments(ctx, p.ID)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			d.docs = append(d.docs, doc)
		}
		for _, c := range captures {
			t, err := tx.GetCaptureTags(ctx, c.id)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			d.tags = append(d.tags, t)
		}
		if d.rules, err = tx.ListAlertRules(ctx, ""); err != nil {
			return err
		}
		if d.states, err = tx.ListAlertStates(ctx, ""); err != nil {
			return err
		}
		for _, r := range d.rules {
			for before := ""; ; {
				es, err := tx.ListAlertEvents(ctx, r.ID, before, maxAlertEventPage)
				if err != nil {
					return err
				}
				d.events = append(d.events, es...)
				if len(es) < maxAlertEventPage {
					break
				}
				before = es[len(es)-1].ID
			}
		}
		for _, k := range metaKeys {
			v, err := tx.GetMeta(ctx, k)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			d.meta[k] = v
		}
		return nil
	})
	return d, err
}

// loadFleet writes d into st in one transaction: parents before children.
func loadFleet(ctx context.Context, st store.Store, d *fleetDump) error {
	locs := slices.Clone(d.locations)
	depth := map[string]int{}
	var depthOf func(id string, n int) int
	byID := map[string]store.Location{}
	for _, l := range locs {
		byID[l.ID] = l
	}
	depthOf = func(id string, n int) int {
		l, ok := byID[id]
		if !ok || l.ParentID == "" || n > maxDepth+2 {
			return n
		}
		return depthOf(l.ParentID, n+1)
	}
	for _, l := range locs {
		depth[l.ID] = depthOf(l.ID, 0)
	}
	slices.SortStableFunc(locs, func(a, b store.Location) int { return depth[a.ID] - depth[b.ID] })
	return st.Update(ctx, func(tx store.Tx) error {
		for _, o := range d.orgs {
			if err := tx.PutOrg(ctx, o); err != nil {
				return err
			}
		}
		for _, l := range locs {
			if err := tx.PutLocation(ctx, l); err != nil {
				return err
			}
		}
		for _, m := range d.machines {
			if err := tx.PutMachine(ctx, m); err != nil {
				return err
			}
		}
		for _, p := range d.parts {
			if err := tx.PutPart(ctx, p); err != nil {
				return err
			}
		}
		for _, u := range d.users {
			if err := tx.PutUser(ctx, u); err != nil {
				return err
			}
		}
		for _, inv := range d.invites {
			if err := tx.PutInvite(ctx, inv); err != nil {
				return err
			}
		}
		for _, k := range d.apikeys {
			if err := tx.PutAPIKey(ctx, k); err != nil {
				return err
			}
		}
		for _, g := range d.grants {
			if err := tx.PutGrant(ctx, g); err != nil {
				return err
			}
		}
		for _, f := range d.fragments {
			if err := tx.PutFragment(ctx, f); err != nil {
				return err
			}
		}
		for _, r := range d.fragRevs {
			if err := tx.PutFragmentRevision(ctx, r); err != nil {
				return err
			}
		}
		for _, r := range d.configs {
			if err := tx.PutConfigRevision(ctx, r); err != nil {
				return err
			}
		}
		for _, doc := range d.docs {
			if err := tx.PutPartDocuments(ctx, doc); err != nil {
				return err
			}
		}
		for _, p := range d.proposals {
			if err := tx.PutProposal(ctx, p); err != nil {
				return err
			}
		}
		for _, t := range d.tags {
			if err := tx.PutCaptureTags(ctx, t); err != nil {
				return err
			}
		}
		for _, e := range d.audit {
			if err := tx.AppendAudit(ctx, e); err != nil {
				return err
			}
		}
		for _, r := range d.rules {
			if err := tx.PutAlertRule(ctx, r); err != nil {
				return err
			}
		}
		for _, st := range d.states {
			if err := tx.PutAlertState(ctx, st); err != nil {
				return err
			}
		}
		for _, e := range d.events {
			if err := tx.PutAlertEvent(ctx, e); err != nil {
				return err
			}
		}
		for _, k := range metaKeys {
			if v, ok := d.meta[k]; ok {
				if err := tx.PutMeta(ctx, k, v); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// sums is the count and SHA-256 of each kind, over the records' JSON.
func (d *fleetDump) sums() []CopiedKind {
	kinds := []struct {
		name string
		n    int
		v    any
	}{
		{"organizations", len(d.orgs), d.orgs}, {"locations", len(d.locations), d.locations},
		{"machines", len(d.machines), d.machines}, {"parts", len(d.parts), d.parts},
		{"users", len(d.users), d.users}, {"invitations", len(d.invites), d.invites}, {"API keys", len(d.apikeys), d.apikeys},
		{"grants", len(d.grants), d.grants}, {"fragments", len(d.fragments), d.fragments},
		{"fragment revisions", len(d.fragRevs), d.fragRevs}, {"config revisions", len(d.configs), d.configs},
		{"part documents", len(d.docs), d.docs}, {"proposals", len(d.proposals), d.proposals},
		{"capture tags", len(d.tags), d.tags}, {"audit events", len(d.audit), d.audit},
		{"alert rules", len(d.rules), d.rules}, {"alert states", len(d.states), d.states}, {"alert events", len(d.events), d.events},
		{"meta", len(d.meta), d.meta},
	}
	out := make([]CopiedKind, 0, len(kinds))
	for _, k := range kinds {
		b, err := json.Marshal(k.v)
		if err != nil {
			b = []byte(err.Error())
		}
		sum := sha256.Sum256(b)
		out = append(out, CopiedKind{Kind: k.name, Count: k.n, SHA256: hex.EncodeToString(sum[:])})
	}
	return out
}
