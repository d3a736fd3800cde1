package cli

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"runtime"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/control/v1/controlv1connect"
	"github.com/outpost-robotics/outpost/controlclient"
	"github.com/outpost-robotics/outpost/controlwire"
	"github.com/outpost-robotics/outpost/credential"
)

// consoleCmd opens a part's own web console, signed in with a delegation:
// a key made here for the page, and this credential's statement that the
// key may act as its holder on that one part for a shift. Nothing the page
// receives works at the cloud or on another part.
func (f *robotFlags) consoleCmd() *cobra.Command {
	var (
		ttl      time.Duration
		printURL bool
		qr       bool
		wait     time.Duration
	)
	cmd := &cobra.Command{
		Use:   "console [PART_ID]",
		Short: "Open a part's web console in the browser, signed in for that part only (no cloud needed)",
		Long: `Open the console a part serves on its control port, signed in with your API
key (--api-key) or session (outpost login), with no cloud. The part is found
with --robot HOST:PORT, else on this network by mDNS (give PART_ID when
several answer); its certificate must match the fingerprint pinned with
"outpost robot trust", or --fingerprint.

A key pair is made for the page, and a delegation signed with your
credential lets that key act as you on that one part, for --ttl (12 h at
most, never past your session). Both travel in the link's fragment, which
the browser never sends to a server; the page keeps the key where no script
can read it. For a phone, --qr prints the link as a QR code to scan, and
--print prints it.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			key, err := f.key()
			if err != nil {
				return err
			}
			partID := ""
			if len(args) == 1 {
				partID = args[0]
			}
			addr, fp, err := f.consoleTarget(ctx, partID, wait)
			if err != nil {
				return err
			}
			now := f.g.now()
			pub, priv, err := ed25519.GenerateKey(nil)
			if err != nil {
				return fmt.Errorf("make the page's key: %w", err)
			}
			del, until, err := key.Delegate(fp, pub, now, ttl, key.TokenExpiry())
			if err != nil {
				return err
			}
			who, err := consoleWhoAmI(ctx, addr, fp, del, priv, now)
			if err != nil {
				return fmt.Errorf("the part refuses the console's sign-in: %w", err)
			}
			url := "https://" + addr + "/#d=" + del + "&k=" + base64.RawURLEncoding.EncodeToString(priv.Seed())
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "the part at %s (certificate SHA-256 %s)\n", printable(addr), fp)
			fmt.Fprintf(w, "signed in as %s (%s), %s here, until %s\n", printable(who.GetDisplayName()), printable(who.GetSubject()), printable(who.GetRole()), until.Local().Format(time.RFC1123))
			fmt.Fprintln(w, "the browser warns that the certificate is self-signed: check that it shows the fingerprint above before you continue")
			switch {
			case qr:
				code, err := qrText(url)
				if err != nil {
					return err
				}
				fmt.Fprintln(w, "scan this with the phone's camera (it holds a key for this part: do not share it):")
				_, err = io.WriteString(w, code)
				return err
			case printURL:
				_, err := fmt.Fprintf(w, "open this link (it holds a key for this part: do not share it):\n%s\n", url)
				return err
			}
			open := f.g.env.openURL
			if open == nil {
				open = openInBrowser
			}
			if err := open(url); err != nil {
				return fmt.Errorf("open the browser (use --print or --qr instead): %w", err)
			}
			_, err = fmt.Fprintln(w, "opened the console in the browser")
			return err
		},
	}
	cmd.Flags().DurationVar(&ttl, "ttl", credential.MaxDelegationTTL, "how long the console stays signed in (at most 12h)")
	cmd.Flags().BoolVar(&printURL, "print", false, "print the link instead of opening the browser")
	cmd.Flags().BoolVar(&qr, "qr", false, "print the link as a QR code, for a phone")
	cmd.Flags().DurationVar(&wait, "wait", 3*time.Second, "how long to listen for parts on the network")
	return cmd
}

// consoleTarget finds the part's address and the fingerprint to trust: the
// flags', else the one part (or PART_ID) found by mDNS. What mDNS announces
// proves nothing, so the fingerprint must be the one pinned for that
// address (or --fingerprint), and the part must present it.
func (f *robotFlags) consoleTarget(ctx context.Context, partID string, wait time.Duration) (addr, fp string, err error) {
	if f.robot != "" {
		addr = robotAddr(f.robot)
	} else {
		parts, err := controlclient.Discover(ctx, wait)
		if err != nil {
			return "", "", err
		}
		if addr, err = pickDiscovered(parts, partID, wait); err != nil {
			return "", "", err
		}
	}
	fp = f.fingerprint
	if fp == "" {
		if fp, err = knownFingerprint(addr); err != nil {
			return "", "", err
		}
	}
	if fp == "" {
		return "", "", fmt.Errorf("%s is not a trusted robot: run `outpost robot trust %s`, compare the fingerprint it shows with the fleet app's SECURITY tab, and pin it with --yes", printable(addr), printable(addr))
	}
	if fp, err = controlwire.NormalizeFingerprint(fp); err != nil {
		return "", "", err
	}
	return addr, fp, nil
}

// consoleWhoAmI makes the page's first call itself, over TLS pinned to fp:
// the part checks the delegation, and a refusal (expired grants, a revoked
// key) is said here rather than in the browser.
func consoleWhoAmI(ctx context.Context, addr, fp, del string, priv ed25519.PrivateKey, now time.Time) (*controlv1.WhoAmIResponse, error) {
	tlsConf, err := controlclient.PinnedTLSConfig(fp)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{TLSClientConfig: tlsConf, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	base := "https://" + addr
	nonce, err := controlclient.HealthNonce(hc, base)(ctx)
	if err != nil {
		return nil, err
	}
	proof, err := credential.DelegatedProof(priv, del, credential.TLSAudience(fp), nonce, now)
	if err != nil {
		return nil, err
	}
	req := connect.NewRequest(&controlv1.WhoAmIRequest{})
	req.Header().Set("Authorization", credential.DelegationScheme+" "+del)
	req.Header().Set(credential.ProofHeader, proof)
	resp, err := controlv1connect.NewControlServiceClient(hc, base).WhoAmI(ctx, req)
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

// pickDiscovered is the address of the one part among those heard on the
// network (wait is how long the CLI listened), or of the one named partID;
// none, or several without a name, is an error saying what to give.
func pickDiscovered(parts []controlclient.DiscoveredPart, partID string, wait time.Duration) (string, error) {
	var found []controlclient.DiscoveredPart
	for _, p := range parts {
		if partID == "" || p.PartID == partID {
			found = append(found, p)
		}
	}
	switch {
	case len(found) == 0 && partID != "":
		return "", fmt.Errorf("no part %s answered on this network within %s: give --robot HOST:PORT", printable(partID), wait)
	case len(found) == 0:
		return "", fmt.Errorf("no part answered on this network within %s: give --robot HOST:PORT", wait)
	case len(found) > 1:
		msg := "several parts answered; name one: outpost robot console PART_ID"
		for _, p := range found {
			msg += fmt.Sprintf("\n  %s at %s", printable(p.PartID), printable(p.Addr))
		}
		return "", errors.New(msg)
	}
	return found[0].Addr, nil
}

// openInBrowser opens url with the system's opener. The URL is passed as
// one argument, never through a shell.
func openInBrowser(url string) error {
	var c *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		c = exec.Command("open", url)
	case "windows":
		c = exec.Command("rundll32", "url.dll,FileProtocolHandler", url)
	default:
		c = exec.Command("xdg-open", url)
	}
	if err := c.Start(); err != nil {
		return err
	}
	go func() { _ = c.Wait() }()
	return nil
}
