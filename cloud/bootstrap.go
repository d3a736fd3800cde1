package cloud

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud/auth"
	"github.com/outpost-robotics/outpost/cloud/store"
	"github.com/outpost-robotics/outpost/credential"
	"github.com/outpost-robotics/outpost/durable"
)

// AdminEmail is the cloud-wide admin's account, created on first start.
const AdminEmail = "admin@localhost"

// AdminTokenFile is the file in the data folder holding the admin's session:
// its private key and access token, in the printed form of credential.Key
// ("ops_..."), which the CLI takes as --token or $OUTPOST_TOKEN.
const AdminTokenFile = "admin.token"

// Meta keys of the store.
const (
	metaSigningKey   = "signing-key"
	metaAdminUser    = "admin-user"
	metaAdminSession = "admin-session"
)

// adminTokenRefresh: a start rewrites admin.token when its token expires sooner.
const adminTokenRefresh = 7 * 24 * time.Hour

// Bootstrap readies a store for serving and returns the token signer. On an
// empty store it creates the Ed25519 signing key and the admin account (its
// password is random and never shown: the admin signs in with the token).
// It writes the admin's session (a token valid 60 days and the private key
// it is bound to) to dataDir/admin.token,
// mode 0600, when the file is missing or its token expires within 7 days,
// and returns that file's path when it wrote it.
func Bootstrap(ctx context.Context, st store.Store, dataDir string, clk clock.Clock, log *zap.Logger) (*auth.Signer, string, error) {
	return bootstrap(ctx, st, dataDir, clk, log, false)
}

// BootstrapShared is Bootstrap for replicas sharing a store: the admin's
// session is kept in the store beside the signing key, minted once by
// whichever replica finds it missing or expiring first (in a transaction,
// so replicas starting together agree on one), and each replica writes
// that same session to its dataDir/admin.token.
func BootstrapShared(ctx context.Context, st store.Store, dataDir string, clk clock.Clock, log *zap.Logger) (*auth.Signer, string, error) {
	return bootstrap(ctx, st, dataDir, clk, log, true)
}

func bootstrap(ctx context.Context, st store.Store, dataDir string, clk clock.Clock, log *zap.Logger, shared bool) (*auth.Signer, string, error) {
	var seed []byte
	var adminID string
	err := st.Update(ctx, func(tx store.Tx) error {
		var err error
		seed, err = tx.GetMeta(ctx, metaSigningKey)
		if errors.Is(err, store.ErrNotFound) {
			seed = auth.GenerateKey().Seed()
			err = tx.PutMeta(ctx, metaSigningKey, seed)
		}
		if err != nil {
			return err
		}
		id, err := tx.GetMeta(ctx, metaAdminUser)
		if err == nil {
			adminID = string(id)
			return nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		adminID = auth.NewID()
		if err := tx.PutUser(ctx, store.User{ID: adminID, Email: AdminEmail, Admin: true,
			PasswordHash: auth.HashPassword(auth.NewSecret()), CreatedAt: clk.Now().UTC()}); err != nil {
			return err
		}
		log.Info("created the cloud's admin account", zap.String("email", AdminEmail))
		return tx.PutMeta(ctx, metaAdminUser, []byte(adminID))
	})
	if err != nil {
		return nil, "", fmt.Errorf("bootstrap the cloud store: %w", err)
	}
	if len(seed) != ed25519.SeedSize {
		return nil, "", fmt.Errorf("bootstrap the cloud store: signing key is %d bytes, want %d", len(seed), ed25519.SeedSize)
	}
	signer, err := auth.NewSigner(ed25519.NewKeyFromSeed(seed))
	if err != nil {
		return nil, "", fmt.Errorf("bootstrap the cloud store: %w", err)
	}
	// current says a printed session is the admin's and lasts long enough.
	current := func(session string) bool {
		k, err := credential.ParseKey(session)
		if err != nil || k.Token == "" {
			return false
		}
		claims, err := signer.Verify(k.Token, clk.Now())
		return err == nil && claims.Subject == adminID && claims.ExpiresAt.Sub(clk.Now()) > adminTokenRefresh
	}
	// A session: the private key and the token bound to it, in the
	// printed form the CLI takes (--token, $OUTPOST_TOKEN).
	mint := func() (string, error) {
		sk := credential.NewPrivateKey()
		tok, _, err := signer.Issue(adminID, sk.Public().(ed25519.PublicKey), clk.Now(), auth.MaxTokenTTL)
		if err != nil {
			return "", err
		}
		return credential.Session(tok, sk).String(), nil
	}
	path := filepath.Join(dataDir, AdminTokenFile)
	old, _ := os.ReadFile(path)
	if !shared {
		if current(string(old)) {
			return signer, "", nil
		}
		session, err := mint()
		if err != nil {
			return nil, "", err
		}
		if err := durable.WriteFile(path, []byte(session+"\n"), 0o600); err != nil {
			return nil, "", err
		}
		return signer, path, nil
	}
	var session string
	err = st.Update(ctx, func(tx store.Tx) error {
		held, err := tx.GetMeta(ctx, metaAdminSession)
		if err == nil && current(string(held)) {
			session = string(held)
			return nil
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if session, err = mint(); err != nil {
			return err
		}
		return tx.PutMeta(ctx, metaAdminSession, []byte(session))
	})
	if err != nil {
		return nil, "", fmt.Errorf("bootstrap the admin's session: %w", err)
	}
	if string(old) == session+"\n" {
		return signer, "", nil
	}
	if err := durable.WriteFile(path, []byte(session+"\n"), 0o600); err != nil {
		return nil, "", err
	}
	return signer, path, nil
}
