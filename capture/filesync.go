package capture

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	"github.com/outpost-robotics/outpost/clock"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
)

// DefaultQuietPeriod is how long a file must keep the same size and mtime
// before it is taken, when its folder says nothing.
const DefaultQuietPeriod = 5 * time.Second

// Folder is a sync folder.
type Folder struct {
	Path            string
	DeleteAfterSync bool
	Quiet           time.Duration
	Tags            []string
	Priority        uint8
}

// FolderFromConfig converts a validated config folder.
func FolderFromConfig(c *configv1.SyncFolder) Folder {
	f := Folder{Path: filepath.Clean(c.GetPath()), DeleteAfterSync: c.GetDeleteAfterSync(), Tags: c.GetTags(), Priority: uint8(c.GetPriority()), Quiet: DefaultQuietPeriod}
	if c.GetQuietPeriod() != nil {
		f.Quiet = c.GetQuietPeriod().AsDuration()
	}
	return f
}

// FileEventKind says what happened to a file.
type FileEventKind int

// The file events, for FileSyncOptions.OnEvent.
const (
	// FileSeen: a file is waiting to be quiet (its size is in the event).
	FileSeen FileEventKind = iota + 1
	// FileTaken: a file is stored as a blob and its record appended.
	FileTaken
	// FileDeleted: a file was deleted after the cloud confirmed it.
	FileDeleted
	// FileFailed: taking a file failed (it is retried at its next change
	// or rescan); Err says why.
	FileFailed
)

// FileEvent is one thing that happened to a file.
type FileEvent struct {
	Kind   FileEventKind
	Path   string // absolute
	Size   int64
	BlobID string
	Err    error
}

// FileSyncOptions are the file sync's collaborators.
type FileSyncOptions struct {
	Clock clock.Clock
	Log   *zap.Logger
	Sink  Sink
	// OnEvent, when set, sees every file event, from the folder's goroutine.
	OnEvent func(FileEvent)
}

// ignored says whether a name is a temporary or hidden file, which writers
// rename into place when done (editors, rsync, browsers, most recorders).
func ignored(name string) bool {
	if strings.HasPrefix(name, ".") || strings.HasSuffix(name, "~") {
		return true
	}
	switch strings.ToLower(filepath.Ext(name)) {
	case ".tmp", ".part", ".partial", ".swp", ".crdownload":
		return true
	}
	return false
}

// taken is what the store remembers of a taken file, under stateKey.
type taken struct {
	Path    string    `json:"path"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mod_time"`
}

// pendingFile is a file waiting to be quiet.
type pendingFile struct {
	size    int64
	mtime   time.Time
	changed time.Duration // uptime of the last change seen
}

// FolderWatcher syncs one folder. fsnotify is not
// recursive: every directory gets its own watch, new directories are
// watched (and scanned, for files made before the watch) as they appear,
// and the whole tree is rescanned on start and when the kernel's event queue
// overflowed. A file is taken when it was renamed into place, or when it
// kept the same size and mtime for the folder's quiet period. Files are
// never deleted unless the folder opted in and the cloud confirmed them.
type FolderWatcher struct {
	folder Folder
	opts   FileSyncOptions
	log    *zap.Logger
	w      *fsnotify.Watcher
	cancel context.CancelFunc
	done   chan struct{}

	// Owned by the loop goroutine.
	pending map[string]*pendingFile

	mu        sync.Mutex
	confirmed map[string]taken // blob id -> file, for delete-after-sync
}

// WatchFolder starts syncing folder; Close stops it.
func WatchFolder(ctx context.Context, opts FileSyncOptions, folder Folder) (*FolderWatcher, error) {
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	if folder.Quiet <= 0 {
		folder.Quiet = DefaultQuietPeriod
	}
	fi, err := os.Stat(folder.Path)
	if err != nil {
		return nil, fmt.Errorf("sync folder: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("sync folder %s: not a directory", folder.Path)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("sync folder %s: %w", folder.Path, err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	fw := &FolderWatcher{
		folder: folder, opts: opts, log: opts.Log.With(zap.String("folder", folder.Path)),
		w: w, cancel: cancel, done: make(chan struct{}),
		pending: map[string]*pendingFile{}, confirmed: map[string]taken{},
	}
	// Watch before scanning, so nothing made in between is missed.
	fw.addTree(ctx, folder.Path)
	go fw.loop(ctx)
	return fw, nil
}

// Close stops watching; files are left alone.
func (fw *FolderWatcher) Close() error {
	fw.cancel()
	<-fw.done
	return fw.w.Close()
}

func (fw *FolderWatcher) emit(e FileEvent) {
	if fw.opts.OnEvent != nil {
		fw.opts.OnEvent(e)
	}
}

// addTree watches dir and every directory under it, and notes every file in
// it: the start-up rescan, the overflow rescan, and a new subdirectory all
// come here.
func (fw *FolderWatcher) addTree(ctx context.Context, dir string) {
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			// A directory that vanished or cannot be read: skip it,
			// keep the rest.
			fw.log.Warn("sync folder scan", zap.String("path", path), zap.Error(err))
			return nil
		}
		if d.IsDir() {
			if path != dir && ignored(d.Name()) {
				return filepath.SkipDir
			}
			if err := fw.w.Add(path); err != nil {
				fw.log.Warn("watch directory", zap.String("path", path), zap.Error(err))
			}
			return nil
		}
		if d.Type().IsRegular() && !ignored(d.Name()) {
			fw.note(ctx, path)
		}
		return nil
	})
	if err != nil {
		fw.log.Warn("sync folder scan", zap.Error(err))
	}
}

// note records a file as changed now if its size or mtime differ from what
// was recorded (repeated events for the same state do not restart its quiet
// period). A file already taken in this state is remembered, not re-taken.
func (fw *FolderWatcher) note(ctx context.Context, path string) {
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() {
		delete(fw.pending, path)
		return
	}
	if p := fw.pending[path]; p != nil && p.size == fi.Size() && p.mtime.Equal(fi.ModTime()) {
		return
	}
	if id := fw.blobID(path, fi); fw.alreadyTaken(ctx, id, path, fi) {
		delete(fw.pending, path)
		return
	}
	fw.pending[path] = &pendingFile{size: fi.Size(), mtime: fi.ModTime(), changed: fw.opts.Clock.Uptime()}
	fw.emit(FileEvent{Kind: FileSeen, Path: path, Size: fi.Size()})
}

// blobID names a file's content by folder, path, size and mtime, so taking
// the same file twice (after a crash) writes the same blob.
func (fw *FolderWatcher) blobID(path string, fi fs.FileInfo) string {
	h := sha256.New()
	for _, s := range []string{fw.folder.Path, path, strconv.FormatInt(fi.Size(), 10), strconv.FormatInt(fi.ModTime().UnixNano(), 10)} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return "file/" + hex.EncodeToString(h.Sum(nil)[:16])
}

func stateKey(blobID string) string { return "capture/" + blobID }

func (fw *FolderWatcher) alreadyTaken(ctx context.Context, id, path string, fi fs.FileInfo) bool {
	if _, err := fw.opts.Sink.GetState(ctx, stateKey(id)); err != nil {
		if !errors.Is(err, ErrNotFound) {
			fw.log.Warn("read taken-file index", zap.Error(err))
		}
		return false
	}
	if fw.folder.DeleteAfterSync {
		// Taken before a restart and not yet confirmed: still deletable.
		fw.mu.Lock()
		fw.confirmed[id] = taken{Path: path, Size: fi.Size(), ModTime: fi.ModTime()}
		fw.mu.Unlock()
	}
	return true
}

func (fw *FolderWatcher) loop(ctx context.Context) {
	defer close(fw.done)
	clk := fw.opts.Clock
	var timer clock.Timer
	var armedFor time.Duration = -1
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	renamed := false // the previous event was a rename away from a name
	for {
		// Arm the timer for the earliest file to turn quiet.
		var timerC <-chan time.Time
		if due, ok := fw.nextDue(); ok {
			if timer == nil {
				timer = clk.NewTimer(max(due-clk.Uptime(), 0))
			} else if due != armedFor {
				timer.Stop()
				timer.Reset(max(due-clk.Uptime(), 0))
			}
			armedFor = due
			timerC = timer.C()
		} else if timer != nil && armedFor >= 0 {
			timer.Stop()
			armedFor = -1
		}
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-fw.w.Events:
			if !ok {
				return
			}
			renamed = fw.handle(ctx, ev, renamed)
		case err, ok := <-fw.w.Errors:
			if !ok {
				return
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				fw.log.Warn("file events overflowed; rescanning the folder")
				fw.addTree(ctx, fw.folder.Path)
			} else {
				fw.log.Warn("file watch error", zap.Error(err))
			}
		case <-timerC:
			armedFor = -1
			fw.takeQuiet(ctx)
		}
	}
}

func (fw *FolderWatcher) nextDue() (time.Duration, bool) {
	var due time.Duration
	found := false
	for _, p := range fw.pending {
		if d := p.changed + fw.folder.Quiet; !found || d < due {
			due, found = d, true
		}
	}
	return due, found
}

// handle processes one event and reports whether it was a rename away,
// which makes an immediately following create a rename into place.
func (fw *FolderWatcher) handle(ctx context.Context, ev fsnotify.Event, prevRenamed bool) bool {
	name := filepath.Base(ev.Name)
	switch {
	case ev.Has(fsnotify.Create):
		fi, err := os.Lstat(ev.Name)
		if err != nil {
			return false
		}
		if fi.IsDir() {
			if !ignored(name) {
				fw.addTree(ctx, ev.Name)
			}
			return false
		}
		if ignored(name) || !fi.Mode().IsRegular() {
			return false
		}
		if prevRenamed {
			// Renamed into place: the writer says it is complete.
			delete(fw.pending, ev.Name)
			fw.take(ctx, ev.Name)
			return false
		}
		fw.note(ctx, ev.Name)
	case ev.Has(fsnotify.Write):
		if !ignored(name) {
			fw.note(ctx, ev.Name)
		}
	case ev.Has(fsnotify.Rename):
		delete(fw.pending, ev.Name)
		return true
	case ev.Has(fsnotify.Remove):
		delete(fw.pending, ev.Name)
	}
	return false
}

// takeQuiet takes every pending file quiet for the folder's quiet period.
func (fw *FolderWatcher) takeQuiet(ctx context.Context) {
	now := fw.opts.Clock.Uptime()
	var due []string
	for path, p := range fw.pending {
		if p.changed+fw.folder.Quiet <= now {
			due = append(due, path)
		}
	}
	sort.Strings(due)
	for _, path := range due {
		p := fw.pending[path]
		fi, err := os.Lstat(path)
		if err != nil || !fi.Mode().IsRegular() {
			delete(fw.pending, path)
			continue
		}
		if fi.Size() != p.size || !fi.ModTime().Equal(p.mtime) {
			// Changed without an event reaching us yet: start over.
			p.size, p.mtime, p.changed = fi.Size(), fi.ModTime(), now
			continue
		}
		delete(fw.pending, path)
		fw.take(ctx, path)
	}
}

// errChanged is returned when a file changed while it was being stored.
var errChanged = errors.New("file changed while it was stored")

// take stores a file as a blob and appends its record.
func (fw *FolderWatcher) take(ctx context.Context, path string) {
	id, size, err := fw.store(ctx, path)
	if errors.Is(err, errChanged) {
		fw.note(ctx, path) // it is being written after all: wait again
		return
	}
	if err != nil {
		fw.log.Warn("sync file failed", zap.String("path", path), zap.Error(err))
		fw.emit(FileEvent{Kind: FileFailed, Path: path, Err: err})
		return
	}
	if id == "" {
		return // taken before
	}
	fw.emit(FileEvent{Kind: FileTaken, Path: path, Size: size, BlobID: id})
}

func (fw *FolderWatcher) store(ctx context.Context, path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, fmt.Errorf("open: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", 0, fmt.Errorf("stat: %w", err)
	}
	id := fw.blobID(path, fi)
	if fw.alreadyTaken(ctx, id, path, fi) {
		return "", 0, nil
	}
	buf := make([]byte, blobChunk)
	var off int64
	for {
		n, rerr := io.ReadFull(f, buf)
		if n > 0 {
			if err := fw.opts.Sink.PutBlobChunk(ctx, id, off, buf[:n]); err != nil {
				return "", 0, fmt.Errorf("store blob: %w", err)
			}
			off += int64(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return "", 0, fmt.Errorf("read: %w", rerr)
		}
	}
	// Seal only what is still the file we started reading; a file that
	// grew meanwhile gets a new blob id once it is quiet again.
	after, err := os.Lstat(path)
	if err != nil || off != fi.Size() || after.Size() != fi.Size() || !after.ModTime().Equal(fi.ModTime()) {
		return "", 0, errChanged
	}
	if err := fw.opts.Sink.SealBlob(ctx, id); err != nil {
		return "", 0, fmt.Errorf("seal blob: %w", err)
	}
	rel, _ := filepath.Rel(fw.folder.Path, path)
	info := &FileInfo{Folder: fw.folder.Path, Path: filepath.ToSlash(rel), Size: fi.Size(), ModTime: fi.ModTime().UTC()}
	now := fw.opts.Clock.Now()
	payload, err := json.Marshal(Capture{Kind: "file", Time: now, Tags: fw.folder.Tags, BlobID: id, File: info})
	if err != nil {
		return "", 0, fmt.Errorf("encode record: %w", err)
	}
	if _, err := fw.opts.Sink.Append(ctx, StreamCaptures, Record{Payload: payload, Priority: fw.folder.Priority, Time: now}); err != nil {
		return "", 0, fmt.Errorf("append record: %w", err)
	}
	t := taken{Path: path, Size: fi.Size(), ModTime: fi.ModTime()}
	state, _ := json.Marshal(t)
	if err := fw.opts.Sink.PutState(ctx, stateKey(id), state); err != nil {
		return "", 0, fmt.Errorf("remember taken file: %w", err)
	}
	if fw.folder.DeleteAfterSync {
		fw.mu.Lock()
		fw.confirmed[id] = t
		fw.mu.Unlock()
	}
	return id, fi.Size(), nil
}

// Confirmed tells the folder the cloud holds blob id. If the folder opted
// into delete-after-sync and the file is unchanged since it was taken, the
// file is deleted; otherwise nothing happens. It reports whether it deleted.
func (fw *FolderWatcher) Confirmed(id string) (bool, error) {
	if !fw.folder.DeleteAfterSync {
		return false, nil
	}
	fw.mu.Lock()
	t, ok := fw.confirmed[id]
	delete(fw.confirmed, id)
	fw.mu.Unlock()
	if !ok {
		return false, nil
	}
	fi, err := os.Lstat(t.Path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, fmt.Errorf("delete synced file %s: %w", t.Path, err)
	}
	if fi.Size() != t.Size || !fi.ModTime().Equal(t.ModTime) {
		// Rewritten since: the new content is not in the cloud yet.
		return false, nil
	}
	if err := os.Remove(t.Path); err != nil {
		return false, fmt.Errorf("delete synced file: %w", err)
	}
	fw.log.Info("deleted synced file", zap.String("path", t.Path), zap.String("blob", id))
	fw.emit(FileEvent{Kind: FileDeleted, Path: t.Path, BlobID: id, Size: t.Size})
	return true, nil
}

// FileSync runs the configured sync folders.
type FileSync struct {
	opts FileSyncOptions

	mu      sync.Mutex
	folders map[string]*runningFolder
}

type runningFolder struct {
	cfg *configv1.SyncFolder
	w   *FolderWatcher
}

// NewFileSync returns a file sync syncing nothing.
func NewFileSync(opts FileSyncOptions) *FileSync {
	return &FileSync{opts: opts, folders: map[string]*runningFolder{}}
}

// Apply syncs exactly folders from now on; unchanged folders keep running.
// A folder that cannot be watched (missing) is skipped and reported in the
// joined error; the others run.
func (s *FileSync) Apply(ctx context.Context, folders []*configv1.SyncFolder) error {
	want := map[string]*configv1.SyncFolder{}
	for _, f := range folders {
		want[filepath.Clean(f.GetPath())] = f
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for path, rf := range s.folders {
		if f, ok := want[path]; !ok || !proto.Equal(f, rf.cfg) {
			_ = rf.w.Close()
			delete(s.folders, path)
		}
	}
	var errs []error
	for path, f := range want {
		if _, ok := s.folders[path]; ok {
			continue
		}
		w, err := WatchFolder(ctx, s.opts, FolderFromConfig(f))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.folders[path] = &runningFolder{cfg: f, w: w}
	}
	return errors.Join(errs...)
}

// Confirmed passes the cloud's confirmation of a blob to the folders.
func (s *FileSync) Confirmed(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rf := range s.folders {
		if deleted, err := rf.w.Confirmed(id); deleted || err != nil {
			return err
		}
	}
	return nil
}

// Close stops every folder.
func (s *FileSync) Close() { _ = s.Apply(context.Background(), nil) }
