package partfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/outpost-robotics/outpost/credential"
)

func TestReadRemoteKey(t *testing.T) {
	const id, other = "a0000000000000000000000000000001", "a0000000000000000000000000000002"
	key := credential.APIKey(id, credential.NewPrivateKey())
	boot := filepath.Join(t.TempDir(), "outpostd.json")
	dir := filepath.Join(filepath.Dir(boot), RemotesDir)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	write := func(name, body string, mode os.FileMode) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	write(id+".key", key.String()+"\n", 0o600)
	got, err := ReadRemoteKey(boot, id)
	if err != nil || got.String() != key.String() {
		t.Fatalf("the key file: %v", err)
	}
	for _, tc := range []struct {
		name, id, body string
		mode           os.FileMode
		want           string
	}{
		{"readable by the group", id, key.String(), 0o640, "mode 0640"},
		{"readable by all", id, key.String(), 0o644, "mode 0644"},
		{"another key", other, key.String(), 0o600, "holds another key than apikey/" + other},
		{"not a key", other, "hunter2", 0o600, "key"},
		{"too large", other, strings.Repeat("a", maxRemoteKeyFile+1), 0o600, "larger than"},
		{"a path for an id", "../" + id, "", 0, "not a key id"},
		{"no file", "a0000000000000000000000000000003", "", 0, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.mode != 0 {
				write(tc.id+".key", tc.body, tc.mode)
			}
			_, err := ReadRemoteKey(boot, tc.id)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
			if strings.Contains(err.Error(), key.String()) {
				t.Fatal("the error quotes the key")
			}
		})
	}
}
