package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/control/v1/controlv1connect"
	"github.com/outpost-robotics/outpost/controlwire"
	"github.com/outpost-robotics/outpost/partfile"
)

// doctorOptions are where `outpost doctor` looks; the defaults are the
// packaged daemon's.
type doctorOptions struct {
	config, dataDir, socket, controlAddr string
	timeout                              time.Duration
	// now is the part's clock; the command uses time.Now, tests inject.
	now func() time.Time
}

// doctorResult is one check's outcome.
type doctorResult struct {
	level  string // "ok", "warn", "FAIL"
	name   string
	detail string
	fix    string
}

func newDoctorCmd(g *globals) *cobra.Command {
	o := doctorOptions{now: time.Now}
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check this robot part's daemon and say what to fix",
		Long: `Run on the part itself (as root, or a member of the outpost group). Checks the
bootstrap file, the cloud's reachability and TLS, the clock against the cloud and
the last time it confirmed, the store's budget and free disk, the control
certificate, and the expiry of the grants and config. Every problem comes with
what to do about it. The exit code is 1 when something failed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			results := runDoctor(cmd.Context(), o)
			failed := printDoctor(cmd.OutOrStdout(), results)
			if failed > 0 {
				return fmt.Errorf("%d check(s) failed", failed)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.config, "config", partfile.DefaultBootstrapPath, "the part's bootstrap file")
	f.StringVar(&o.dataDir, "data-dir", partfile.DefaultDataDir, "the daemon's data folder")
	f.StringVar(&o.socket, "socket", controlwire.DefaultSocketPath, "the daemon's break-glass socket")
	f.StringVar(&o.controlAddr, "control", fmt.Sprintf("127.0.0.1:%d", controlwire.DefaultPort), "the daemon's control port")
	f.DurationVar(&o.timeout, "timeout", 10*time.Second, "how long each network check may take")
	_ = g // doctor runs on the part: it needs no cloud login
	return cmd
}

func printDoctor(w io.Writer, results []doctorResult) (failed int) {
	for _, r := range results {
		fmt.Fprintf(w, "%-4s  %s: %s\n", r.level, r.name, printable(r.detail))
		if r.fix != "" {
			fmt.Fprintf(w, "      fix: %s\n", r.fix)
		}
		if r.level == "FAIL" {
			failed++
		}
	}
	return failed
}

// runDoctor runs every check it can; a check whose input is missing (no
// bootstrap file, no daemon) is reported once, where it is missing.
func runDoctor(ctx context.Context, o doctorOptions) []doctorResult {
	var out []doctorResult
	add := func(level, name, detail, fix string) {
		out = append(out, doctorResult{level: level, name: name, detail: detail, fix: fix})
	}

	boot, err := partfile.LoadBootstrap(o.config)
	if err != nil {
		fix := "write it with `outpost part bootstrap PART_ID | sudo install -m 0640 -g outpost /dev/stdin " + o.config + "`, then `sudo systemctl restart outpostd`"
		if errors.Is(err, fs.ErrPermission) {
			fix = "run outpost doctor with sudo; if outpostd cannot read it either, do what the message says"
		}
		add("FAIL", "bootstrap file", err.Error(), fix)
	} else {
		add("ok", "bootstrap file", fmt.Sprintf("%s: part %s, cloud %s, %d signing key(s)", o.config, boot.File.GetPartId(), boot.File.GetCloudUrl(), len(boot.Keys)), "")
	}

	var cloudTime time.Time
	if boot != nil {
		var r doctorResult
		r, cloudTime = checkCloud(ctx, o, boot)
		out = append(out, r)
	}

	st, stErr := daemonStatus(ctx, o)
	if stErr != nil {
		add("FAIL", "daemon", fmt.Sprintf("no answer on %s: %v", o.socket, stErr),
			"start it with `sudo systemctl start outpostd`; see why it stopped with `journalctl -u outpostd -e`")
	} else {
		add("ok", "daemon", fmt.Sprintf("%s, cloud sync %s", st.GetVersion(), syncStateName(st.GetSyncState())), "")
	}

	out = append(out, checkClock(o, cloudTime, st)...)
	out = append(out, checkDisk(o)...)
	if st != nil {
		out = append(out, checkControlCert(ctx, o, st))
		out = append(out, checkExpiry(o, st)...)
	}
	return out
}

func syncStateName(s controlv1.SyncState) string {
	if s == controlv1.SyncState_SYNC_STATE_UNSPECIFIED {
		return "not tried yet"
	}
	return strings.ToLower(strings.TrimPrefix(s.String(), "SYNC_STATE_"))
}

// checkCloud connects to the cloud as the daemon does (system roots, or the
// bootstrap file's CA) and returns the cloud's time from its Date header.
func checkCloud(ctx context.Context, o doctorOptions, boot *partfile.Bootstrap) (doctorResult, time.Time) {
	name := "cloud " + boot.File.GetCloudUrl()
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca := boot.File.GetCaFile(); ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return doctorResult{"FAIL", name, fmt.Sprintf("the CA file %s cannot be read: %v", ca, err), "put the cloud's CA bundle at " + ca + " or remove caFile from " + o.config}, time.Time{}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return doctorResult{"FAIL", name, "the CA file " + ca + " holds no PEM certificate", "replace it with the cloud's CA bundle (PEM)"}, time.Time{}
		}
		tc.RootCAs = pool
	} else if ca := boot.File.GetCaPem(); ca != "" {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM([]byte(ca)) // partfile checked it holds one
		tc.RootCAs = pool
	}
	tr := &http.Transport{TLSClientConfig: tc, Proxy: http.ProxyFromEnvironment}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: o.timeout}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(boot.File.GetCloudUrl(), "/")+"/", nil)
	if err != nil {
		return doctorResult{"FAIL", name, err.Error(), "fix cloudUrl in " + o.config}, time.Time{}
	}
	resp, err := hc.Do(req)
	if err != nil {
		var uae x509.UnknownAuthorityError
		var cie x509.CertificateInvalidError
		var hne x509.HostnameError
		switch {
		case errors.As(err, &cie) && cie.Reason == x509.Expired:
			return doctorResult{"FAIL", name, "TLS: " + cie.Error(), "if the part's clock is wrong, fix it (`timedatectl`); otherwise the cloud's certificate has expired: tell its operator"}, time.Time{}
		case errors.As(err, &uae):
			return doctorResult{"FAIL", name, "TLS: the cloud's certificate is not signed by a trusted CA", "set caFile in " + o.config + " to the cloud's CA bundle, or install the CA in the system store"}, time.Time{}
		case errors.As(err, &hne):
			return doctorResult{"FAIL", name, "TLS: " + hne.Error(), "cloudUrl in " + o.config + " must name a host the cloud's certificate covers"}, time.Time{}
		}
		return doctorResult{"FAIL", name, "unreachable: " + err.Error(), "check the network, DNS and any proxy (HTTPS_PROXY) from the part: `curl -v " + boot.File.GetCloudUrl() + "`"}, time.Time{}
	}
	resp.Body.Close()
	cloudTime, _ := http.ParseTime(resp.Header.Get("Date"))
	detail := fmt.Sprintf("reachable (HTTP %d)", resp.StatusCode)
	if resp.TLS != nil && len(resp.TLS.PeerCertificates) > 0 {
		c := resp.TLS.PeerCertificates[0]
		detail += fmt.Sprintf(", TLS certificate valid until %s", c.NotAfter.UTC().Format(time.DateOnly))
	} else {
		return doctorResult{"warn", name, detail + " over plain HTTP", "use an https:// cloudUrl outside a lab: the part secret travels in every request"}, cloudTime
	}
	return doctorResult{"ok", name, detail, ""}, cloudTime
}

// daemonStatus asks the daemon over its break-glass socket.
func daemonStatus(ctx context.Context, o doctorOptions) (*controlv1.StatusResponse, error) {
	hc := &http.Client{Timeout: o.timeout, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", o.socket)
	}}}
	res, err := controlv1connect.NewControlServiceClient(hc, "http://outpostd").Status(ctx, connect.NewRequest(&controlv1.StatusRequest{}))
	if err != nil {
		return nil, err
	}
	return res.Msg, nil
}

// maxSkew is how far the part's clock may be from the cloud's.
const maxSkew = 2 * time.Minute

func checkClock(o doctorOptions, cloudTime time.Time, st *controlv1.StatusResponse) []doctorResult {
	now := o.now()
	var out []doctorResult
	if !cloudTime.IsZero() {
		skew := now.Sub(cloudTime)
		if skew > maxSkew || skew < -maxSkew {
			out = append(out, doctorResult{"FAIL", "clock", fmt.Sprintf("%s off the cloud's clock (part %s, cloud %s)", skew.Abs().Round(time.Second), now.UTC().Format(time.RFC3339), cloudTime.UTC().Format(time.RFC3339)),
				"turn on time sync: `sudo timedatectl set-ntp true` (a Raspberry Pi has no battery clock)"})
		} else {
			out = append(out, doctorResult{"ok", "clock", fmt.Sprintf("within %s of the cloud's", maxSkew), ""})
		}
	}
	if st != nil && st.GetLastContact() != nil {
		last := st.GetLastContact().AsTime()
		if now.Before(last) {
			out = append(out, doctorResult{"FAIL", "clock", fmt.Sprintf("the part's clock (%s) is before the last time the cloud confirmed (%s)", now.UTC().Format(time.RFC3339), last.UTC().Format(time.RFC3339)),
				"turn on time sync (`sudo timedatectl set-ntp true`); grant expiry is judged by the offline clock, so this cannot extend access"})
		} else {
			out = append(out, doctorResult{"ok", "last cloud contact", fmt.Sprintf("%s (%s ago by the offline clock)", last.UTC().Format(time.RFC3339), st.GetOfflineFor().AsDuration().Round(time.Second)), ""})
		}
	}
	return out
}

// checkDisk compares the store with its budget and the disk's free space.
func checkDisk(o doctorOptions) []doctorResult {
	budget, _ := partfile.ReadBudget(o.dataDir) // the default when unreadable, as the daemon does
	var sfs syscall.Statfs_t
	if err := syscall.Statfs(o.dataDir, &sfs); err != nil {
		return []doctorResult{{"FAIL", "disk", fmt.Sprintf("cannot read %s: %v", o.dataDir, err), "the data folder should exist once outpostd has started: `sudo systemctl start outpostd`"}}
	}
	free := int64(sfs.Bavail) * sfs.Bsize
	var used int64
	_ = filepath.WalkDir(filepath.Join(o.dataDir, "store"), func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			// Blocks, not sizes: Badger's files are sparse and preallocated.
			if fi, err := d.Info(); err == nil {
				if st, ok := fi.Sys().(*syscall.Stat_t); ok {
					used += st.Blocks * 512
				} else {
					used += fi.Size()
				}
			}
		}
		return nil
	})
	var out []doctorResult
	switch {
	case budget.MinFreeBytes > 0 && free < budget.MinFreeBytes:
		out = append(out, doctorResult{"FAIL", "disk", fmt.Sprintf("%s free on %s, below the store's minimum of %s: new logs and captures are refused", mib(free), o.dataDir, mib(budget.MinFreeBytes)),
			"free space on that disk, or lower store_budget.min_free_bytes in the machine's config"})
	case budget.MinFreeBytes > 0 && free < 2*budget.MinFreeBytes:
		out = append(out, doctorResult{"warn", "disk", fmt.Sprintf("%s free on %s, close to the store's minimum of %s", mib(free), o.dataDir, mib(budget.MinFreeBytes)), "free space on that disk"})
	default:
		out = append(out, doctorResult{"ok", "disk", fmt.Sprintf("%s free on %s", mib(free), o.dataDir), ""})
	}
	if budget.MaxBytes > 0 && used > budget.MaxBytes*9/10 {
		out = append(out, doctorResult{"warn", "store budget", fmt.Sprintf("the store takes %s of its %s budget: old debug and info logs, then low-priority captures, are being evicted", mib(used), mib(budget.MaxBytes)),
			"check that the part syncs (see cloud above), or raise store_budget.max_bytes in the machine's config"})
	} else {
		out = append(out, doctorResult{"ok", "store budget", fmt.Sprintf("the store takes %s of its %s budget", mib(used), mib(budget.MaxBytes)), ""})
	}
	return out
}

func mib(n int64) string { return fmt.Sprintf("%d MiB", n>>20) }

// checkControlCert checks that the control port serves the certificate the
// daemon reports to the cloud (what clients pin), and that it is in date.
func checkControlCert(ctx context.Context, o doctorOptions, st *controlv1.StatusResponse) doctorResult {
	name := "control certificate"
	d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}} // reads the certificate only; compared below
	dctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	c, err := d.DialContext(dctx, "tcp", o.controlAddr)
	if err != nil {
		return doctorResult{"FAIL", name, fmt.Sprintf("the control port %s does not answer: %v", o.controlAddr, err), "field techs cannot connect: check outpostd's --listen and the firewall (`journalctl -u outpostd -e`)"}
	}
	defer c.Close()
	certs := c.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return doctorResult{"FAIL", name, "the control port presented no certificate", "restart outpostd"}
	}
	fp := controlwire.Fingerprint(certs[0].Raw)
	want, _ := controlwire.NormalizeFingerprint(st.GetCertSha256())
	if got, _ := controlwire.NormalizeFingerprint(fp); want != "" && got != want {
		return doctorResult{"FAIL", name, fmt.Sprintf("%s serves %s but the daemon reports %s", o.controlAddr, fp, st.GetCertSha256()), "another program answers on that port: stop it, or give outpostd another --listen"}
	}
	now := o.now()
	if now.After(certs[0].NotAfter) || now.Before(certs[0].NotBefore) {
		return doctorResult{"FAIL", name, fmt.Sprintf("valid %s to %s, not now", certs[0].NotBefore.UTC().Format(time.DateOnly), certs[0].NotAfter.UTC().Format(time.DateOnly)), "fix the clock first; if it is right, restart outpostd"}
	}
	return doctorResult{"ok", name, fmt.Sprintf("SHA-256 %s, valid until %s", fp, certs[0].NotAfter.UTC().Format(time.DateOnly)), ""}
}

// expirySoon is when a coming expiry is worth a warning.
const expirySoon = 7 * 24 * time.Hour

func checkExpiry(o doctorOptions, st *controlv1.StatusResponse) []doctorResult {
	var out []doctorResult
	reconnect := "connect the part to the network so it reaches the cloud (sync renews them)"
	switch {
	case st.GetSyncState() == controlv1.SyncState_SYNC_STATE_EXPIRED:
		out = append(out, doctorResult{"FAIL", "grants and config", "expired: components are stopped and remote credentials refused", reconnect + "; meanwhile the break-glass socket works"})
	case st.GetTimeLeft() == nil:
		out = append(out, doctorResult{"FAIL", "grants", "the part holds no grant bundle: field techs cannot connect", reconnect + "; check the part is registered in the cloud"})
	case st.GetTimeLeft().AsDuration() < expirySoon:
		out = append(out, doctorResult{"warn", "grants", fmt.Sprintf("expire in %s (at %s)", st.GetTimeLeft().AsDuration().Round(time.Minute), st.GetGrantsExpireAt().AsTime().UTC().Format(time.RFC3339)), reconnect})
	default:
		out = append(out, doctorResult{"ok", "grants", fmt.Sprintf("version %d, %s left", st.GetGrantsVersion(), st.GetTimeLeft().AsDuration().Round(time.Hour)), ""})
	}
	if st.GetConfigVersion() == 0 {
		out = append(out, doctorResult{"warn", "config", "the part runs no config from the cloud yet", reconnect + "; give the machine a config in the cloud"})
	} else {
		out = append(out, doctorResult{"ok", "config", fmt.Sprintf("version %d", st.GetConfigVersion()), ""})
	}
	_ = o
	return out
}
