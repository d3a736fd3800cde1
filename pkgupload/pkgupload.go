// Package pkgupload uploads a file or a directory to an organization's
// package registry as one package version: it writes the content stream
// (pkgformat) to a temporary file, cuts it into chunks, asks the cloud which
// chunks the organization lacks, uploads only those, and creates the
// version from the chunk list. A rerun after a cut uploads only what is
// still missing, and a new version that shares most bytes with an old one
// uploads only the difference. The CLI and the tests share it.
package pkgupload

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"connectrpc.com/connect"
	"golang.org/x/sync/errgroup"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1/fleetv1connect"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/pkgformat"
)

// Request is one version to upload.
type Request struct {
	OrgID, Name, Version, Type, Platform string
	// Path is the file or directory to upload.
	Path string
	// Progress, when set, hears the bytes uploaded so far of the bytes to
	// upload (the chunks the cloud lacked), after each chunk.
	Progress func(done, total uint64)
}

// Result is what Upload did.
type Result struct {
	// Version is the version as the cloud stored it.
	Version *fleetv1.PackageVersion
	// Chunks and Uploaded count the content's chunks and those sent.
	Chunks, Uploaded int
	// UploadedBytes counts the bytes sent.
	UploadedBytes uint64
}

// Upload uploads r.Path as version r.Version of package r.Name.
func Upload(ctx context.Context, c fleetv1connect.PackageServiceClient, r Request) (Result, error) {
	var res Result
	for _, check := range []func() error{
		func() error { return pkgformat.ValidName(r.Name) },
		func() error { return pkgformat.ValidVersion(r.Version) },
		func() error { return pkgformat.ValidType(r.Type) },
		func() error { return pkgformat.ValidPlatform(r.Platform) },
	} {
		if err := check(); err != nil {
			return res, err
		}
	}
	f, err := os.CreateTemp("", "outpost-package-*.tar")
	if err != nil {
		return res, fmt.Errorf("upload package: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	contents, err := pkgformat.WriteTar(ctx, f, r.Path)
	if err != nil {
		return res, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return res, fmt.Errorf("upload package: %w", err)
	}
	chunks, size, sum, err := pkgformat.Split(ctx, f, nil)
	if err != nil {
		return res, err
	}
	res.Chunks = len(chunks)
	offsets := make([]int64, len(chunks))
	var off int64
	for i, ch := range chunks {
		offsets[i] = off
		off += int64(ch.GetSize())
	}
	missing, err := Missing(ctx, c, r.OrgID, chunks)
	if err != nil {
		return res, err
	}
	var total uint64
	for i := range chunks {
		if missing[i] {
			total += uint64(chunks[i].GetSize())
		}
	}
	// A few chunks at once, so a link's round trip is paid once per few
	// chunks; after a failure no other starts.
	var (
		g      errgroup.Group
		mu     sync.Mutex // guards res and Progress's order
		failed atomic.Bool
	)
	g.SetLimit(uploads)
	for i, ch := range chunks {
		if !missing[i] {
			continue
		}
		if failed.Load() || ctx.Err() != nil {
			break
		}
		g.Go(func() error {
			if failed.Load() {
				return nil
			}
			if err := uploadChunk(ctx, c, r.OrgID, f, ch, offsets[i]); err != nil {
				failed.Store(true)
				return fmt.Errorf("upload chunk %d of %d: %w", i+1, len(chunks), err)
			}
			mu.Lock()
			defer mu.Unlock()
			res.Uploaded++
			res.UploadedBytes += uint64(ch.GetSize())
			if r.Progress != nil {
				r.Progress(res.UploadedBytes, total)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return res, err
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	v, err := c.CreateVersion(ctx, connect.NewRequest(&fleetv1.CreateVersionRequest{
		OrgId: r.OrgID, Name: r.Name, Version: r.Version, Type: r.Type, Platform: r.Platform,
		Size: size, Sha256: sum, Chunks: chunks, UnpackedSize: contents.UnpackedSize,
	}))
	if err != nil {
		return res, fmt.Errorf("create version %s of %s: %w", r.Version, r.Name, err)
	}
	res.Version = v.Msg.GetVersion()
	return res, nil
}

// uploads is how many chunks an upload sends at once.
const uploads = 3

// uploadChunk reads the chunk ch at off of the content stream f, checks
// it is still the chunk that was cut, and uploads it.
func uploadChunk(ctx context.Context, c fleetv1connect.PackageServiceClient, orgID string, f *os.File, ch *syncv1.PackageChunk, off int64) error {
	data := make([]byte, ch.GetSize())
	if _, err := f.ReadAt(data, off); err != nil {
		return fmt.Errorf("read it: %w", err)
	}
	if got := sha256.Sum256(data); string(got[:]) != string(ch.GetSha256()) {
		return errors.New("it changed on disk while it was uploaded")
	}
	_, err := c.UploadChunk(ctx, connect.NewRequest(&fleetv1.UploadChunkRequest{OrgId: orgID, Data: data}))
	return err
}

// Missing asks which chunks the organization lacks, in batches the cloud
// accepts, and returns one flag per chunk.
func Missing(ctx context.Context, c fleetv1connect.PackageServiceClient, orgID string, chunks []*syncv1.PackageChunk) ([]bool, error) {
	const batch = 1024
	out := make([]bool, len(chunks))
	for start := 0; start < len(chunks); start += batch {
		end := min(start+batch, len(chunks))
		req := &fleetv1.MissingChunksRequest{OrgId: orgID}
		for _, ch := range chunks[start:end] {
			req.Sha256 = append(req.Sha256, ch.GetSha256())
		}
		res, err := c.MissingChunks(ctx, connect.NewRequest(req))
		if err != nil {
			return nil, fmt.Errorf("ask which chunks the cloud lacks: %w", err)
		}
		lacks := map[string]bool{}
		for _, s := range res.Msg.GetMissing() {
			lacks[string(s)] = true
		}
		for i := start; i < end; i++ {
			out[i] = lacks[string(chunks[i].GetSha256())]
		}
	}
	return out, nil
}
