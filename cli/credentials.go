package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/outpost-robotics/outpost/durable"
)

// saved is what `outpost login` keeps between runs: the cloud and the
// session (its private key and token, credential.Key's printed form).
type saved struct {
	Cloud string `json:"cloud"`
	Token string `json:"token"`
	// CAFile is the PEM bundle of a private CA the cloud's TLS is signed
	// by, as --ca-file gave it at login (an absolute path).
	CAFile string `json:"ca_file,omitempty"`
}

func (g *globals) credentialsPath() (string, error) {
	dir := g.env.configDir
	if dir == "" {
		base, err := os.UserConfigDir()
		if err != nil {
			return "", fmt.Errorf("find the config folder: %w", err)
		}
		dir = filepath.Join(base, "outpost")
	}
	return filepath.Join(dir, "credentials.json"), nil
}

func (g *globals) loadSaved() saved {
	var s saved
	path, err := g.credentialsPath()
	if err != nil {
		return s
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return s
	}
	_ = json.Unmarshal(b, &s) // a damaged file is the same as none: log in again
	return s
}

// save writes the credentials readable by the user only.
func (g *globals) save(s saved) (string, error) {
	path, err := g.credentialsPath()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("save credentials: %w", err)
	}
	if s.CAFile == "" && g.caFlag() != "" {
		// Remembered with the cloud it is for, so later commands need
		// no --ca-file.
		if abs, err := filepath.Abs(g.caFlag()); err == nil {
			s.CAFile = abs
		}
	}
	b, _ := json.Marshal(s)
	if err := durable.WriteFile(path, b, 0o600); err != nil {
		return "", fmt.Errorf("save credentials: %w", err)
	}
	return path, nil
}
