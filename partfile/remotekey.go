package partfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/outpost-robotics/outpost/credential"
)

// RemotesDir is the directory, next to the bootstrap file, that holds the
// private halves of the API keys the main part calls remotes with: one
// file per key, "<key id>.key", holding the key's printed form
// ("opk_<key id>_<private key>"), owned by the daemon's user, mode 0600
// (docs/CREDENTIALS.md, remotes).
const RemotesDir = "remotes"

// maxRemoteKeyFile bounds a key file: a printed API key is under 100 bytes.
const maxRemoteKeyFile = 4 << 10

// RemoteKeyPath is where the key keyID is kept for a part whose bootstrap
// file is bootstrapPath.
func RemoteKeyPath(bootstrapPath, keyID string) string {
	return filepath.Join(filepath.Dir(bootstrapPath), RemotesDir, keyID+".key")
}

// ReadRemoteKey reads the key keyID kept next to the bootstrap file
// bootstrapPath, refusing a file that others than the daemon's user may
// read or write, or that holds another key. Errors never quote the key.
func ReadRemoteKey(bootstrapPath, keyID string) (*credential.Key, error) {
	if !credential.IsID(keyID) {
		return nil, errors.New("not a key id")
	}
	path := RemoteKeyPath(bootstrapPath, keyID)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s is mode %04o: a key file must be readable by the daemon's user only (0600)", path, st.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxRemoteKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxRemoteKeyFile {
		return nil, fmt.Errorf("%s is larger than %d bytes: not a key file", path, maxRemoteKeyFile)
	}
	key, err := credential.ParseKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if key.KeyID != keyID {
		return nil, fmt.Errorf("%s holds another key than apikey/%s", path, keyID)
	}
	return key, nil
}
