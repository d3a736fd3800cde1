package cloud

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud/ingest"
	"github.com/outpost-robotics/outpost/cloud/store"
	"github.com/outpost-robotics/outpost/rbac"
)

// AlertOptions configures the evaluation of fleet alert rules and the
// delivery of their transitions to webhooks.
type AlertOptions struct {
	// Interval is how often the rules are evaluated; 0 means 30 s.
	Interval time.Duration
	// AllowLoopbackHTTP accepts http:// webhooks on a loopback address
	// (labs and tests). Off, only https is accepted, and never to loopback.
	AllowLoopbackHTTP bool
	// AllowPrivate accepts webhooks on private addresses (10/8, 172.16/12,
	// 192.168/16, fc00::/7, 100.64/10): a cloud inside a private network
	// that posts to its own services. Link-local addresses (cloud metadata
	// services), unspecified and multicast ones are refused regardless.
	AllowPrivate bool
	// RetryMax is how many times a failed delivery is retried; 0 means 4.
	RetryMax int
	// RetryWaitMin and RetryWaitMax bound the exponential backoff between
	// attempts; 0 means 1 s and 30 s.
	RetryWaitMin, RetryWaitMax time.Duration
	// Timeout bounds one attempt; 0 means 10 s.
	Timeout time.Duration
}

// Alert kinds, as AlertRule.kind names them.
const (
	alertOffline        = "offline"
	alertFailing        = "failing"
	alertErrorLogs      = "error_logs"
	alertCaptureBacklog = "capture_backlog"
	alertStoreBytes     = "store_bytes"
	alertRolloutFailed  = "rollout_failed"
)

// Bounds of rule input and evaluation, so a hostile rule stays cheap.
const (
	maxWebhookURL     = 2048
	minAlertWindow    = time.Minute
	maxAlertWindow    = 30 * 24 * time.Hour
	maxRulesPerOrg    = 200
	alertSecretBytes  = 32
	maxAlertDetail    = 300
	maxDeliveryBody   = 4 << 10
	deliveryWorkers   = 8
	statusesChunk     = 1000
	maxErrorLogsRead  = 100_000 // per error_logs rule and round
	signatureHeader   = "Outpost-Signature"
	signatureMaxSkew  = 5 * time.Minute
	alertEventsPage   = 100
	maxAlertEventPage = 1000
)

// alertKinds says what each kind needs: a threshold, a window.
var alertKinds = map[string]struct{ threshold, window bool }{
	alertOffline:        {window: true},
	alertFailing:        {},
	alertErrorLogs:      {threshold: true, window: true},
	alertCaptureBacklog: {threshold: true},
	alertStoreBytes:     {threshold: true},
	alertRolloutFailed:  {},
}

// errorLevels are the log levels an error_logs rule counts.
var errorLevels = []string{"error", "dpanic", "panic", "fatal"}

// validateWebhookURL accepts what the cloud may post to: https, or http to
// a loopback address when allowed; never user info, a fragment, or an
// address literal the policy refuses. Names are checked again when they
// resolve, at each connection (webhookDialer), so a name that points at a
// refused address later is refused then.
func validateWebhookURL(raw string, opts AlertOptions) error {
	bad := func(why string) error {
		return invalid("webhook_url: %s (want https://HOST/PATH)", why)
	}
	if raw == "" {
		return bad("required")
	}
	if len(raw) > maxWebhookURL {
		return bad(fmt.Sprintf("at most %d bytes", maxWebhookURL))
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return bad("not an absolute URL")
	}
	if u.User != nil {
		return bad("no user or password in the URL")
	}
	if u.Fragment != "" {
		return bad("no #fragment")
	}
	host := u.Hostname()
	if host == "" {
		return bad("no host")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return bad("port out of range")
		}
	}
	loopback := host == "localhost"
	if ip, err := netip.ParseAddr(host); err == nil {
		if why := refusedAddr(ip.Unmap(), opts); why != "" {
			return bad(why)
		}
		loopback = ip.Unmap().IsLoopback()
	}
	switch u.Scheme {
	case "https":
		if loopback && !opts.AllowLoopbackHTTP {
			return bad("a loopback address is this cloud itself")
		}
	case "http":
		if !opts.AllowLoopbackHTTP || !loopback {
			return bad("http is accepted only to a loopback address on a cloud set up for labs")
		}
	default:
		return bad(fmt.Sprintf("scheme %q", u.Scheme))
	}
	return nil
}

// refusedAddr says why the cloud does not post to ip, or "".
func refusedAddr(ip netip.Addr, opts AlertOptions) string {
	cgnat := netip.MustParsePrefix("100.64.0.0/10")
	switch {
	case !ip.IsValid() || ip.IsUnspecified():
		return "an unspecified address"
	case ip.IsMulticast() || ip.IsInterfaceLocalMulticast():
		return "a multicast address"
	case ip.IsLinkLocalUnicast():
		return "a link-local address (such as a cloud metadata service)"
	case ip.IsLoopback():
		if !opts.AllowLoopbackHTTP {
			return "a loopback address"
		}
	case ip.IsPrivate() || cgnat.Contains(ip):
		if !opts.AllowPrivate {
			return "a private address (the cloud is not set up to post inside its network)"
		}
	}
	return ""
}

// webhookHTTP is the HTTP client deliveries go through: no proxy, no
// redirects (a redirect could lead anywhere the URL check refused), every
// connection's address checked after it resolved, each attempt bounded.
func webhookHTTP(opts AlertOptions) *http.Client {
	dialer := &net.Dialer{Timeout: cmp.Or(opts.Timeout, 10*time.Second), Control: func(_, address string, _ syscall.RawConn) error {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return err
		}
		ip, err := netip.ParseAddr(host)
		if err != nil {
			return fmt.Errorf("webhook address %q: %w", host, err)
		}
		if why := refusedAddr(ip.Unmap(), opts); why != "" {
			return fmt.Errorf("webhook host resolves to %s, which the cloud does not post to", why)
		}
		return nil
	}}
	transport := &http.Transport{DialContext: dialer.DialContext, TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 2, IdleConnTimeout: 90 * time.Second, ForceAttemptHTTP2: true}
	return &http.Client{Transport: transport, Timeout: cmp.Or(opts.Timeout, 10*time.Second),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// retrying is a retrying client over the shared HTTP client; before is
// called before each attempt (to sign it with the attempt's time).
func (a *alerts) retrying(before func(*http.Request)) *retryablehttp.Client {
	return &retryablehttp.Client{
		HTTPClient:   a.http,
		RetryMax:     cmp.Or(a.opts.RetryMax, 4),
		RetryWaitMin: cmp.Or(a.opts.RetryWaitMin, time.Second),
		RetryWaitMax: cmp.Or(a.opts.RetryWaitMax, 30*time.Second),
		CheckRetry:   retryablehttp.DefaultRetryPolicy,
		// A webhook's Retry-After may not hold the evaluator longer than
		// the cloud's own bound.
		Backoff: func(lo, hi time.Duration, n int, resp *http.Response) time.Duration {
			return min(retryablehttp.DefaultBackoff(lo, hi, n, resp), hi)
		},
		ErrorHandler:   retryablehttp.PassthroughErrorHandler,
		RequestLogHook: func(_ retryablehttp.Logger, req *http.Request, _ int) { before(req) },
	}
}

// SignAlert is the Outpost-Signature header of body sent at t:
// "t=UNIX,v1=HEX", HEX the HMAC-SHA256 with the rule's secret of "UNIX."
// followed by the body. The time is signed so a receiver can refuse a
// replayed request.
func SignAlert(secret []byte, t time.Time, body []byte) string {
	unix := strconv.FormatInt(t.Unix(), 10)
	return "t=" + unix + ",v1=" + hex.EncodeToString(alertMAC(secret, unix, body))
}

func alertMAC(secret []byte, unix string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(unix))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// ErrAlertSignature is wrapped by VerifyAlert for a request whose
// signature is missing, malformed, wrong or too old.
var ErrAlertSignature = errors.New("alert signature")

// VerifyAlert checks an Outpost-Signature header as a webhook receiver
// should: a well-formed header, a v1 MAC of the body with secret (compared
// in constant time), and a time within maxSkew of now, so a captured
// request replayed later is refused. Several v1 entries are accepted, any
// one matching.
func VerifyAlert(secret []byte, header string, body []byte, now time.Time, maxSkew time.Duration) error {
	if len(header) > 1024 {
		return fmt.Errorf("%w: header of %d bytes", ErrAlertSignature, len(header))
	}
	var unix string
	var macs [][]byte
	for _, kv := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return fmt.Errorf("%w: %q is not key=value", ErrAlertSignature, kv)
		}
		switch k {
		case "t":
			if unix != "" {
				return fmt.Errorf("%w: two times", ErrAlertSignature)
			}
			unix = v
		case "v1":
			mac, err := hex.DecodeString(v)
			if err != nil || len(mac) != sha256.Size {
				return fmt.Errorf("%w: v1 is not a SHA-256 MAC in hex", ErrAlertSignature)
			}
			macs = append(macs, mac)
		}
	}
	sec, err := strconv.ParseInt(unix, 10, 64)
	if err != nil || strconv.FormatInt(sec, 10) != unix {
		return fmt.Errorf("%w: no t=UNIX", ErrAlertSignature)
	}
	if len(macs) == 0 {
		return fmt.Errorf("%w: no v1 MAC", ErrAlertSignature)
	}
	want := alertMAC(secret, unix, body)
	ok := false
	for _, m := range macs {
		ok = hmac.Equal(m, want) || ok
	}
	if !ok {
		return fmt.Errorf("%w: no MAC matches the body", ErrAlertSignature)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > maxSkew || d < -maxSkew {
		return fmt.Errorf("%w: signed at %s, %s from now: a replay or a wrong clock", ErrAlertSignature, time.Unix(sec, 0).UTC().Format(time.RFC3339), d)
	}
	return nil
}

// AlertPayload is the JSON body posted to a webhook.
type AlertPayload struct {
	// ID is the event's ID: a receiver may drop a repeat it already handled.
	ID string `json:"id"`
	// State is "firing", "resolved" or "test".
	State string    `json:"state"`
	Time  time.Time `json:"time"`
	Rule  struct {
		ID    string `json:"id"`
		Name  string `json:"name"`
		Kind  string `json:"kind"`
		Scope string `json:"scope"`
	} `json:"rule"`
	OrgID        string       `json:"org_id"`
	Part         *AlertTarget `json:"part,omitempty"`
	Machine      *AlertTarget `json:"machine,omitempty"`
	LocationPath string       `json:"location_path,omitempty"`
	Detail       string       `json:"detail"`
}

// AlertTarget names a part or a machine in an AlertPayload.
type AlertTarget struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// alerts is the evaluator and deliverer of the fleet alert rules.
type alerts struct {
	opts AlertOptions
	http *http.Client
}

func newAlerts(opts AlertOptions) *alerts {
	return &alerts{opts: opts, http: webhookHTTP(opts)}
}

// newAlertSecret is a rule's signing key.
func newAlertSecret() []byte {
	b := make([]byte, alertSecretBytes)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return b
}

// alertScopeParts is the parts a rule covers now: its scope's machines, as
// the fleet views see them (a location's subtree; an organization's own
// locations and those shared with it). A scope that is gone covers none.
func alertScopeParts(snap *snapshot, scope string) []string {
	res, err := rbac.ParseResource(scope)
	if err != nil {
		return nil
	}
	var org, loc string
	switch res.Kind {
	case rbac.KindOrg:
		org = res.ID
	case rbac.KindLocation:
		loc = res.ID
	default:
		return nil
	}
	locs, err := fleetScope(snap, org, loc)
	if err != nil {
		return nil
	}
	var out []string
	in := snap.fleet().machinesIn
	for _, l := range locs {
		for _, m := range in[l] {
			out = append(out, snap.partsOf[m]...)
		}
	}
	return out
}

// alertTransition is a change the evaluator saw: rule for part should now
// be firing, or not.
type alertTransition struct {
	rule   store.AlertRule
	partID string
	firing bool
	detail string
}

// EvaluateAlerts runs one evaluation round: every rule over the last
// status of every part it covers. A (rule, part) whose condition changed
// is recorded, state and event in one transaction that first checks the
// state is still the old one, so of several replicas evaluating at once
// one records it and delivers it; the others find it done. The recorded
// events are delivered before it returns.
func (s *Server) EvaluateAlerts(ctx context.Context) error {
	now := s.clock.Now().UTC()
	snap, err := s.snaps.get(ctx)
	if err != nil {
		return fmt.Errorf("evaluate alerts: load hierarchy: %w", err)
	}
	var rules []store.AlertRule
	var states []store.AlertState
	err = s.st.View(ctx, func(tx store.Tx) error {
		var err error
		if rules, err = tx.ListAlertRules(ctx, ""); err != nil {
			return err
		}
		states, err = tx.ListAlertStates(ctx, "")
		return err
	})
	if err != nil {
		return fmt.Errorf("evaluate alerts: %w", err)
	}
	if len(rules) == 0 {
		return nil
	}
	firing := map[[2]string]bool{}
	for _, st := range states {
		firing[[2]string{st.RuleID, st.PartID}] = st.Firing
	}
	covered := make([][]string, len(rules))
	need := map[string]bool{}
	for i, r := range rules {
		covered[i] = alertScopeParts(snap, r.Scope)
		for _, p := range covered[i] {
			need[p] = true
		}
	}
	statuses, err := s.alertStatuses(ctx, need)
	if err != nil {
		return err
	}
	var changes []alertTransition
	for i, r := range rules {
		var errorCounts map[string]uint64
		if r.Kind == alertErrorLogs {
			if errorCounts, err = s.countErrorLogs(ctx, covered[i], now.Add(-r.Window)); err != nil {
				return err
			}
		}
		in := make(map[string]bool, len(covered[i]))
		for _, p := range covered[i] {
			in[p] = true
			st, ok := statuses[p]
			want, detail := false, ""
			if ok {
				want, detail = s.alertHolds(r, snap.parts[p], st, now, errorCounts[p])
			}
			if want != firing[[2]string{r.ID, p}] {
				changes = append(changes, alertTransition{rule: r, partID: p, firing: want, detail: detail})
			}
		}
		for _, st := range states {
			if st.RuleID == r.ID && st.Firing && !in[st.PartID] {
				changes = append(changes, alertTransition{rule: r, partID: st.PartID, detail: "no longer in the rule's scope"})
			}
		}
	}
	var recorded []alertDelivery
	for _, c := range changes {
		ev, ok, err := s.recordTransition(ctx, snap, c, now)
		if err != nil {
			return err
		}
		if ok {
			recorded = append(recorded, alertDelivery{rule: c.rule, event: ev})
		}
	}
	s.deliverAll(ctx, snap, recorded)
	return nil
}

// alertStatuses reads the last status of each part, a chunk at a time.
func (s *Server) alertStatuses(ctx context.Context, need map[string]bool) (map[string]ingest.PartStatus, error) {
	out := map[string]ingest.PartStatus{}
	if s.ingest == nil || len(need) == 0 {
		return out, nil
	}
	ids := make([]string, 0, len(need))
	for id := range need {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for chunk := range slices.Chunk(ids, statusesChunk) {
		got, err := s.ingest.Statuses(ctx, chunk)
		if err != nil {
			return nil, fmt.Errorf("evaluate alerts: statuses of %d parts: %w", len(chunk), err)
		}
		for id, st := range got {
			out[id] = st
		}
	}
	return out, nil
}

// countErrorLogs counts, per part, the error-level logs timed from from on
// by the parts' clocks, reading at most maxErrorLogsRead records: a flood
// counts as at least that many.
func (s *Server) countErrorLogs(ctx context.Context, parts []string, from time.Time) (map[string]uint64, error) {
	out := map[string]uint64{}
	if s.ingest == nil || len(parts) == 0 {
		return out, nil
	}
	q := ingest.Query{PartIDs: parts, Stream: "logs.warn", From: from, Limit: ingest.MaxLimit}
	for read := 0; read < maxErrorLogsRead; {
		recs, next, err := s.ingest.Records(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("evaluate alerts: count error logs: %w", err)
		}
		read += len(recs)
		for _, r := range recs {
			e := &syncv1.LogEntry{}
			if proto.Unmarshal(r.Payload, e) == nil && slices.Contains(errorLevels, e.GetLevel()) {
				out[r.PartID]++
			}
		}
		if next == "" || len(recs) == 0 {
			break
		}
		q.After = next
	}
	return out, nil
}

// alertHolds says whether r holds for part p given its last status, and
// why, using the fleet views' own reading of a status (fillFleetPart:
// online within 2.5 sync intervals, a failed resource, a crash-looping
// process among them, is failing).
func (s *Server) alertHolds(r store.AlertRule, p store.Part, st ingest.PartStatus, now time.Time, errorLogs uint64) (bool, string) {
	fp := &fleetv1.FleetPart{}
	fillFleetPart(fp, st, now, s.pollInterval(p))
	status := st.Status
	switch r.Kind {
	case alertOffline:
		silent := now.Sub(st.At)
		if !fp.GetOnline() && silent > r.Window {
			return true, fmt.Sprintf("silent for %s (last contact %s)", silent.Round(time.Second), st.At.UTC().Format(time.RFC3339))
		}
	case alertFailing:
		if len(fp.GetFailing()) > 0 {
			return true, cut("failing: " + strings.Join(fp.GetFailing(), ", "))
		}
	case alertErrorLogs:
		if errorLogs > r.Threshold {
			return true, fmt.Sprintf("%d error logs in the last %s (more than %d)", errorLogs, r.Window, r.Threshold)
		}
	case alertCaptureBacklog:
		var n uint64
		for _, b := range status.GetBacklog() {
			if b.GetStream() == "captures" {
				n += b.GetRecords()
			}
		}
		if n > r.Threshold {
			return true, fmt.Sprintf("%d captures waiting to upload (more than %d)", n, r.Threshold)
		}
	case alertStoreBytes:
		if b := status.GetStoreBytes(); b > r.Threshold {
			return true, fmt.Sprintf("the store holds %d bytes (more than %d)", b, r.Threshold)
		}
	case alertRolloutFailed:
		var bad []string
		for _, pkg := range status.GetPackages() {
			if st := pkg.GetState(); st == "failed" || st == "rolled_back" {
				bad = append(bad, fmt.Sprintf("%s %s %s", pkg.GetName(), pkg.GetIssuedVersion(), strings.ReplaceAll(st, "_", " ")))
			}
		}
		if len(bad) > 0 {
			return true, cut("package " + strings.Join(bad, ", "))
		}
	}
	return false, ""
}

// cut bounds a detail built from what a part reported.
func cut(s string) string {
	if len(s) <= maxAlertDetail {
		return s
	}
	i := maxAlertDetail
	for i > 0 && s[i]&0xc0 == 0x80 {
		i--
	}
	return s[:i] + "…"
}

// recordTransition writes c's state and event if the state is still the
// one the round read; ok says this call recorded it.
func (s *Server) recordTransition(ctx context.Context, snap *snapshot, c alertTransition, now time.Time) (ev store.AlertEvent, ok bool, err error) {
	state := "resolved"
	if c.firing {
		state = "firing"
	}
	detail := c.detail
	if !c.firing && detail == "" {
		detail = "the condition no longer holds"
	}
	ev = store.AlertEvent{ID: s.auditID(), RuleID: c.rule.ID, OrgID: c.rule.OrgID, PartID: c.partID,
		MachineID: snap.parts[c.partID].MachineID, State: state, Time: now, Detail: detail}
	err = s.st.Update(ctx, func(tx store.Tx) error {
		ok = false
		cur, err := tx.GetAlertState(ctx, c.rule.ID, c.partID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if cur.Firing == c.firing {
			return nil // another replica recorded it
		}
		if _, err := tx.GetAlertRule(ctx, c.rule.ID); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil // deleted meanwhile
			}
			return err
		}
		if c.firing {
			err = tx.PutAlertState(ctx, store.AlertState{RuleID: c.rule.ID, PartID: c.partID, Firing: true, Since: now, EventID: ev.ID})
		} else {
			err = tx.DeleteAlertState(ctx, c.rule.ID, c.partID)
		}
		if err != nil {
			return err
		}
		ok = true
		return tx.PutAlertEvent(ctx, ev)
	})
	if err != nil {
		return ev, false, fmt.Errorf("evaluate alerts: record rule %s for part %s: %w", c.rule.ID, c.partID, err)
	}
	return ev, ok, nil
}

// alertDelivery is one event to post.
type alertDelivery struct {
	rule  store.AlertRule
	event store.AlertEvent
}

// deliverAll posts the events, a few at a time, and records each outcome.
func (s *Server) deliverAll(ctx context.Context, snap *snapshot, ds []alertDelivery) {
	sem := make(chan struct{}, deliveryWorkers)
	var wg sync.WaitGroup
	for _, d := range ds {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			ev := s.deliver(ctx, snap, d.rule, d.event)
			err := s.st.Update(ctx, func(tx store.Tx) error { return tx.PutAlertEvent(ctx, ev) })
			if err != nil {
				s.log.Error("record alert delivery", zap.String("rule", d.rule.ID), zap.String("event", ev.ID), zap.Error(err))
			}
		})
	}
	wg.Wait()
}

// payload is what the webhook receives for ev.
func alertPayload(snap *snapshot, r store.AlertRule, ev store.AlertEvent) AlertPayload {
	p := AlertPayload{ID: ev.ID, State: ev.State, Time: ev.Time, OrgID: r.OrgID, Detail: ev.Detail}
	p.Rule.ID, p.Rule.Name, p.Rule.Kind, p.Rule.Scope = r.ID, r.Name, r.Kind, r.Scope
	if ev.PartID != "" {
		part := snap.parts[ev.PartID]
		p.Part = &AlertTarget{ID: ev.PartID, Name: part.Name}
		if m, ok := snap.machines[ev.MachineID]; ok {
			p.Machine = &AlertTarget{ID: m.ID, Name: m.Name}
			p.LocationPath = locationPath(snap, m.LocationID, map[string]string{})
		}
	}
	return p
}

// deliver posts ev to the rule's webhook, retrying with backoff, and
// returns ev with the outcome. Nothing about the request reaches the log
// but the rule, the event and the outcome: the URL may hold a token and
// the secret never leaves the signature.
func (s *Server) deliver(ctx context.Context, snap *snapshot, r store.AlertRule, ev store.AlertEvent) store.AlertEvent {
	body, err := json.Marshal(alertPayload(snap, r, ev))
	if err != nil {
		ev.Delivery = store.AlertDelivery{Error: "encode the event: " + err.Error(), At: s.clock.Now().UTC()}
		return ev
	}
	attempts := 0
	sign := func(req *http.Request) {
		attempts++
		req.Header.Set(signatureHeader, SignAlert(r.Secret, s.clock.Now(), body))
	}
	rc := s.alerts.retrying(sign)
	var d store.AlertDelivery
	if err := validateWebhookURL(r.WebhookURL, s.alerts.opts); err != nil {
		d.Error = "the webhook URL is no longer accepted: " + err.Error()
	} else if req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, r.WebhookURL, bytes.NewReader(body)); err != nil {
		d.Error = "build the request: " + err.Error()
	} else {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "outpost-cloud alerts")
		req.Header.Set("Outpost-Event", ev.ID)
		resp, err := rc.Do(req)
		switch {
		case err != nil:
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err // without the URL, which may hold a token
			}
			d.Error = cut(err.Error())
		default:
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDeliveryBody))
			resp.Body.Close()
			d.StatusCode = resp.StatusCode
			d.Delivered = resp.StatusCode/100 == 2
			if !d.Delivered {
				d.Error = fmt.Sprintf("the webhook answered %s", resp.Status)
			}
		}
	}
	d.Attempts, d.At = attempts, s.clock.Now().UTC()
	ev.Delivery = d
	s.log.Info("alert delivered", zap.String("rule", r.ID), zap.String("event", ev.ID), zap.String("state", ev.State),
		zap.Bool("delivered", d.Delivered), zap.Int("attempts", d.Attempts), zap.Int("status", d.StatusCode))
	return ev
}

// sweepAlerts evaluates the rules every interval until ctx ends.
func sweepAlerts(ctx context.Context, clk clock.Clock, s *Server) {
	t := clk.NewTicker(cmp.Or(s.alerts.opts.Interval, 30*time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			if err := s.EvaluateAlerts(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("evaluate alerts", zap.Error(err))
			}
		}
	}
}
