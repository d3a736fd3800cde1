package cloud

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/wneessen/go-mail"
)

// Mailer sends an invitation's code to the invited mailbox, and only there:
// the cloud never shows the code to anyone else, so only whoever reads
// that mailbox can accept the invitation and own the account.
type Mailer interface {
	SendInvite(ctx context.Context, m InviteMail) error
}

// InviteMail is what an invitation mail says.
type InviteMail struct {
	// To is the invited address.
	To string
	// InvitedBy names who invited: an email or "apikey/ID".
	InvitedBy string
	// Role and Scope are the role offered.
	Role, Scope string
	// Code is the invitation code.
	Code string
	// ExpiresAt is when the code stops working.
	ExpiresAt time.Time
}

// SMTPConfig is the relay invitation mails go through.
type SMTPConfig struct {
	// Host and Port are the relay's (Port 0: 587, or 465 for TLS "tls").
	Host string
	Port int
	// From is the sender address.
	From string
	// Username and Password authenticate to the relay (PLAIN, only over
	// TLS); no Username means no authentication.
	Username, Password string
	// TLS is "starttls" (the default: STARTTLS is required), "tls" (TLS
	// from the first byte, as on port 465) or "none" (cleartext, allowed
	// only to a relay on loopback).
	TLS string
	// TLSConfig verifies the relay's certificate; nil means the system's
	// roots and Host as the name.
	TLSConfig *tls.Config
	// CloudURL, when set, is named in the mail so the invitee knows where
	// to accept: a link to the fleet app's invitation page, and the CLI's
	// --cloud.
	CloudURL string
}

// smtpMailer sends through an SMTP relay with go-mail.
type smtpMailer struct {
	cfg  SMTPConfig
	opts []mail.Option
}

// NewSMTPMailer checks cfg and returns a Mailer sending through it. It
// does not connect: a relay that is down fails the invitation, not the start.
func NewSMTPMailer(cfg SMTPConfig) (Mailer, error) {
	if cfg.Host == "" || cfg.From == "" {
		return nil, errors.New("smtp: --smtp-host and --smtp-from are both required")
	}
	if err := validEmail(cfg.From); err != nil {
		return nil, fmt.Errorf("smtp: --smtp-from %q is not an address like outpost@example.com", cfg.From)
	}
	opts := []mail.Option{mail.WithTimeout(30 * time.Second)}
	switch cfg.TLS {
	case "", "starttls":
		opts = append(opts, mail.WithTLSPortPolicy(mail.TLSMandatory), mail.WithPort(portOr(cfg.Port, 587)))
	case "tls":
		opts = append(opts, mail.WithSSLPort(false), mail.WithPort(portOr(cfg.Port, 465)))
	case "none":
		if ip := net.ParseIP(cfg.Host); cfg.Host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return nil, fmt.Errorf("smtp: --smtp-tls none sends invitation codes in clear: only to a relay on loopback, not %s", cfg.Host)
		}
		opts = append(opts, mail.WithTLSPortPolicy(mail.NoTLS), mail.WithPort(portOr(cfg.Port, 25)))
	default:
		return nil, fmt.Errorf("smtp: --smtp-tls %q: want starttls, tls or none", cfg.TLS)
	}
	if cfg.TLSConfig != nil {
		opts = append(opts, mail.WithTLSConfig(cfg.TLSConfig))
	} else {
		opts = append(opts, mail.WithTLSConfig(&tls.Config{ServerName: cfg.Host, MinVersion: tls.VersionTLS12}))
	}
	if cfg.Username != "" {
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthPlain), mail.WithUsername(cfg.Username), mail.WithPassword(cfg.Password))
	}
	return &smtpMailer{cfg: cfg, opts: opts}, nil
}

func portOr(p, def int) int {
	if p == 0 {
		return def
	}
	return p
}

func (m *smtpMailer) SendInvite(ctx context.Context, inv InviteMail) error {
	msg := mail.NewMsg()
	if err := msg.From(m.cfg.From); err != nil {
		return fmt.Errorf("invitation mail: sender: %w", err)
	}
	if err := msg.To(inv.To); err != nil {
		return fmt.Errorf("invitation mail: recipient: %w", err)
	}
	msg.Subject("Your invitation to Outpost")
	msg.SetBodyString(mail.TypeTextPlain, inviteBody(inv, m.cfg.CloudURL))
	c, err := mail.NewClient(m.cfg.Host, m.opts...)
	if err != nil {
		return fmt.Errorf("invitation mail: %w", err)
	}
	if err := c.DialAndSendWithContext(ctx, msg); err != nil {
		// go-mail's errors name the server's reply, never the message.
		return fmt.Errorf("invitation mail through %s: %w", m.cfg.Host, err)
	}
	return nil
}

// InviteURL is the fleet app's invitation page under the cloud's public
// URL; the mail's link is it with "#" and the code appended.
func InviteURL(cloudURL string) string {
	return strings.TrimRight(cloudURL, "/") + "/invite"
}

// inviteBody is the mail's text. The code is on a line of its own after
// "Code: ", so people (and tests) find it.
func inviteBody(inv InviteMail, cloudURL string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s invited you to be %s of %s in Outpost.\n\n", inv.InvitedBy, inv.Role, inv.Scope)
	fmt.Fprintf(&b, "Code: %s\n\n", inv.Code)
	cloud := ""
	if cloudURL != "" {
		cloud = " --cloud " + cloudURL
		// The code rides in the fragment: a browser never sends it to a
		// server, so no access log or Referer holds it.
		fmt.Fprintf(&b, "Accept it in your browser, where you choose your password:\n\n%s#%s\n\nor with the CLI:\n\n", InviteURL(cloudURL), inv.Code)
	} else {
		fmt.Fprintf(&b, "Accept it with:\n\n")
	}
	fmt.Fprintf(&b, "    outpost user accept-invite%s --password-stdin CODE\n\n", cloud)
	fmt.Fprintf(&b, "giving your new password on stdin (or your current one if you have an account).\n")
	fmt.Fprintf(&b, "The code works until %s. Nobody else has it; if you did not expect\nthis invitation, ignore this mail.\n", inv.ExpiresAt.UTC().Format(time.RFC3339))
	return b.String()
}
