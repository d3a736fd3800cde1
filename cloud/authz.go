package cloud

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/outpost-robotics/outpost/authz"
	"github.com/outpost-robotics/outpost/cloud/store"
	"github.com/outpost-robotics/outpost/credential"
	"github.com/outpost-robotics/outpost/rbac"
)

// rulesFor reads the rules of every method of the services (authz.Read).
// On the cloud an action other than org.create also needs a request field
// naming its resource: a rule it could not decide on is an error, so a new
// RPC cannot ship undecided.
func rulesFor(services ...protoreflect.ServiceDescriptor) (authz.Rules, error) {
	rules, err := authz.Read(services...)
	if err != nil {
		return nil, err
	}
	for proc, r := range rules {
		if r.Marker == authz.NoMarker && r.Action != rbac.OrgCreate && len(r.Resources) == 0 {
			return nil, fmt.Errorf("rule of %s: action %s needs a request field marked with a resource", proc, r.Action)
		}
	}
	return rules, nil
}

// principal is who called, as authenticated.
type principal struct {
	kind   rbac.SubjectKind
	id     string
	email  string
	admin  bool
	grants []store.Grant
	// tokenID and tokenExpires describe a user's access token, for SignOut.
	tokenID      string
	tokenExpires time.Time
	// browser is set when the call came with a browser session's cookie.
	browser bool
}

// subject is the principal's subject; the zero Subject for nobody.
func (p *principal) subject() authz.Subject {
	if p == nil {
		return authz.Subject{}
	}
	return authz.FromRBAC(p.kind, p.id)
}

// ref is the principal's subject as grants and audit records spell it.
func (p *principal) ref() string { return p.subject().String() }

// call is what the interceptor learned about one call; handlers read it.
type call struct {
	principal *principal
	subject   *rbac.Subject
	snap      *snapshot
	rule      *authz.Rule
	audit     *auditRecord
}

type callKey struct{}

func callFrom(ctx context.Context) *call {
	c, _ := ctx.Value(callKey{}).(*call)
	return c
}

// visible is the list filter of a rule's list_action: may the caller see r?
func (c *call) visible(r rbac.Resource) bool {
	if c == nil || c.rule == nil || c.rule.ListAction == "" || c.subject == nil {
		return false
	}
	return c.snap.engine.Decide(c.subject, c.rule.ListAction, r).Allowed
}

// setAuditResource names the resource of a call that creates it, once its ID exists.
func (c *call) setAuditResource(resource, org string) {
	if c != nil && c.audit != nil {
		c.audit.event.Resource, c.audit.event.OrgID = resource, org
	}
}

// auditRecord is the audit event of a call, written once: by the handler's
// transaction on success (so the change and its record commit together), or
// by the interceptor otherwise.
type auditRecord struct {
	event   store.AuditEvent
	written atomic.Bool
}

// rbacSubject turns a principal into rbac's subject. The admin also holds
// owner on every organization: it acts as owner everywhere, decided by the
// same rules as anyone.
func rbacSubject(p *principal, snap *snapshot) *rbac.Subject {
	s := &rbac.Subject{Kind: p.kind, ID: p.id}
	for _, g := range p.grants {
		if rg, err := toRBACGrant(g); err == nil {
			s.Grants = append(s.Grants, rg)
		}
	}
	if p.admin {
		for id := range snap.orgs {
			s.Grants = append(s.Grants, rbac.Grant{Role: rbac.Owner, Scope: rbac.Org(id)})
		}
	}
	return s
}

func toRBACGrant(g store.Grant) (rbac.Grant, error) {
	role, err := rbac.ParseRole(g.Role)
	if err != nil {
		return rbac.Grant{}, err
	}
	scope, err := rbac.ParseResource(g.Scope)
	if err != nil {
		return rbac.Grant{}, err
	}
	return rbac.Grant{Role: role, Scope: scope}, nil
}

// interceptor decides every call from the rules, with rbac.
func (s *Server) interceptor() connect.Interceptor { return authzInterceptor{s} }

type authzInterceptor struct{ s *Server }

func (i authzInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

// WrapStreamingHandler refuses streams: the fleet API has none, and a
// stream would need its own decision per message.
func (i authzInterceptor) WrapStreamingHandler(connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(context.Context, connect.StreamingHandlerConn) error {
		return connect.NewError(connect.CodeUnimplemented, errors.New("streaming calls are not served"))
	}
}

func (i authzInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		s := i.s
		proc := req.Spec().Procedure
		rule, ok := s.rules[proc]
		if !ok {
			// Fail closed: a procedure without a rule is never served.
			return nil, connect.NewError(connect.CodePermissionDenied, fmt.Errorf("%s has no access rule", proc))
		}
		c := &call{rule: rule}
		if rule.Marker != authz.Public {
			p, err := s.authenticateCall(ctx, req)
			if err != nil {
				s.log.Info("call refused", zap.String("procedure", proc), zap.String("code", "unauthenticated"))
				return nil, err
			}
			c.principal = p
			snap, err := s.snaps.get(ctx)
			if err != nil {
				return nil, s.errs.Internal("load hierarchy", err)
			}
			c.snap = snap
			c.subject = rbacSubject(p, snap)
		}
		msg, ok := req.Any().(proto.Message)
		if !ok || msg == nil {
			return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("empty request"))
		}
		v, err := s.authorize(ctx, c, msg)
		if err != nil {
			return nil, err
		}
		if rule.Audit {
			c.audit = &auditRecord{event: store.AuditEvent{
				ID: s.auditID(), Time: s.clock.Now().UTC(), Subject: c.principal.ref(), Procedure: proc,
				Action: v.action, Resource: v.resource, Allowed: v.allowed, Reason: v.reason, OrgID: v.org,
			}}
		}
		if !v.allowed {
			s.log.Info("call denied", zap.String("procedure", proc), zap.String("subject", c.principal.ref()),
				zap.String("action", v.action), zap.String("resource", v.resource), zap.String("reason", v.reason))
			s.writeAudit(ctx, c.audit, "denied")
			return nil, connect.NewError(v.code, errors.New(v.reason))
		}
		res, err := next(context.WithValue(ctx, callKey{}, c), req)
		if err != nil {
			// The one place a handler's error is answered: by the
			// error policy, named by the method that failed.
			res, err = nil, s.errs.Answer(proc[strings.LastIndexByte(proc, '/')+1:], err)
		}
		if c.audit != nil && !c.audit.written.Load() {
			outcome := "ok"
			if err != nil {
				outcome = connect.CodeOf(err).String()
			}
			s.writeAudit(ctx, c.audit, outcome)
		}
		code := "ok"
		if err != nil {
			code = connect.CodeOf(err).String()
		}
		// Only names and codes are logged: never a header, a request or a response.
		s.log.Debug("call", zap.String("procedure", proc), zap.String("subject", c.principal.ref()), zap.String("code", code))
		return res, err
	}
}

// writeAudit stores an audit event outside the handler's transaction.
func (s *Server) writeAudit(ctx context.Context, rec *auditRecord, outcome string) {
	if rec == nil || rec.written.Load() {
		return
	}
	e := rec.event
	e.Outcome = outcome
	err := s.st.Update(context.WithoutCancel(ctx), func(tx store.Tx) error { return tx.AppendAudit(ctx, e) })
	if err != nil {
		s.log.Error("write audit event", zap.String("procedure", e.Procedure), zap.Error(err))
		return
	}
	rec.written.Store(true)
}

// verdict is the interceptor's decision on a call.
type verdict struct {
	allowed  bool
	action   string
	resource string
	reason   string
	org      string
	code     connect.Code
}

// authorize decides a call by its rule. Errors are for requests that cannot
// be decided (a malformed or unknown resource); denials are verdicts.
func (s *Server) authorize(ctx context.Context, c *call, msg proto.Message) (verdict, error) {
	r := c.rule
	switch r.Marker {
	case authz.Public:
		return verdict{allowed: true, action: r.Name(), reason: "public call"}, nil
	case authz.Authenticated:
		return verdict{allowed: true, action: r.Name(), reason: "any signed-in subject may"}, nil
	case authz.Admin:
		if c.principal.admin {
			return verdict{allowed: true, action: r.Name(), reason: "the cloud's admin may"}, nil
		}
		return verdict{action: r.Name(), code: connect.CodePermissionDenied,
			reason: fmt.Sprintf("denied: %s: only the cloud's admin may do this", c.principal.ref())}, nil
	}
	m := msg.ProtoReflect()
	if r.Self != nil {
		if ref := m.Get(r.Self).String(); ref != "" {
			// An unknown subject is not the caller: the normal decision
			// follows, so a caller without rights cannot probe which
			// emails have accounts.
			subj, err := s.resolveSubject(ctx, ref)
			if err == nil && subj == c.principal.subject() {
				return verdict{allowed: true, action: string(r.Action), reason: fmt.Sprintf("allowed: %s asks about itself", c.principal.ref())}, nil
			}
		}
	}
	engine := c.snap.engine
	if r.Action == rbac.OrgCreate {
		d := engine.Decide(c.subject, rbac.OrgCreate, rbac.Resource{})
		return fromDecision(d, ""), nil
	}
	var targets []rbac.Resource
	for _, rf := range r.Resources {
		var values []string
		if rf.Field.IsList() {
			l := m.Get(rf.Field).List()
			if l.Len() > maxLimitTo {
				return verdict{}, invalid("%s: at most %d entries", rf.Field.Name(), maxLimitTo)
			}
			for j := range l.Len() {
				values = append(values, l.Get(j).String())
			}
		} else {
			values = []string{m.Get(rf.Field).String()}
		}
		for _, v := range values {
			if rf.Kind == "scope" && r.GrantRole != nil {
				if err := grantScope(rf, v); err != nil {
					return verdict{}, err
				}
			}
			res, err := s.resolveResource(ctx, c.snap, rf, v, r.Action)
			if err != nil {
				return verdict{}, err
			}
			targets = append(targets, res)
			if rf.Kind == "apikey" {
				// Revoking a key takes away every grant it holds, not only
				// the one it was created with: each is decided.
				more, err := s.keyGrantScopes(ctx, c.snap, v, r.Action)
				if err != nil {
					return verdict{}, err
				}
				targets = append(targets, more...)
			}
		}
	}
	if len(targets) == 0 {
		return verdict{}, invalid("the request names no resource")
	}
	var grantee *rbac.Subject
	if r.GrantSubject != nil {
		g, err := s.resolveSubject(ctx, m.Get(r.GrantSubject).String())
		if err != nil {
			// Say "no such subject" only to whoever may change roles here,
			// so others cannot probe which emails have accounts.
			for _, t := range targets {
				if v := fromDecision(engine.Decide(c.subject, r.Action, t), c.snap.orgOf(t)); !v.allowed {
					return v, nil
				}
			}
			return verdict{}, err
		}
		grantee = &rbac.Subject{Kind: g.RBACKind(), ID: g.ID}
	} else if r.Action != rbac.InviteManage {
		// A new API key: a subject holding nothing yet.
		grantee = &rbac.Subject{Kind: rbac.APIKey, ID: "new"}
	}
	var role rbac.Role
	if r.GrantRole != nil {
		var err error
		if role, err = rbac.ParseRole(m.Get(r.GrantRole).String()); err != nil {
			return verdict{}, invalid("%s: want owner or operator", r.GrantRole.Name())
		}
	}
	var last verdict
	for _, t := range targets {
		var d rbac.Decision
		switch {
		case r.Destination != nil:
			dest := rbac.Org(c.snap.locations[t.ID].OrgID)
			if v := m.Get(r.Destination).String(); v != "" {
				dest = rbac.Location(v)
				if !c.snap.exists(dest) {
					return verdict{}, connect.NewError(connect.CodeNotFound, fmt.Errorf("%s: no location %q", r.Destination.Name(), v))
				}
			}
			d = engine.DecideMove(c.subject, t, dest)
		case r.GrantRole != nil:
			// A nil grantee (an invitation) is decided as invite.manage.
			d = engine.CanGrant(c.subject, grantee, rbac.Grant{Role: role, Scope: t})
		case r.GrantSubject != nil:
			d = engine.CanRevoke(c.subject, grantee, rbac.Grant{Role: rbac.Operator, Scope: t})
		default:
			d = engine.Decide(c.subject, r.Action, t)
		}
		last = fromDecision(d, c.snap.orgOf(t))
		if !last.allowed {
			return last, nil
		}
	}
	return last, nil
}

// fromDecision turns rbac's decision into a verdict with the Connect code a
// person can act on.
func fromDecision(d rbac.Decision, org string) verdict {
	v := verdict{allowed: d.Allowed, action: string(d.Action), resource: d.Resource.String(), reason: d.String(), org: org}
	if d.Resource.IsZero() {
		v.resource = ""
	}
	switch d.Reason {
	case rbac.ReasonNoSubject:
		v.code = connect.CodeUnauthenticated
	case rbac.ReasonUnknownResource, rbac.ReasonBadDestination:
		v.code = connect.CodeNotFound
	case rbac.ReasonMoveIntoItself, rbac.ReasonMoveAcrossOrgs:
		v.code = connect.CodeFailedPrecondition
	case rbac.ReasonWrongKind, rbac.ReasonUnknownAction, rbac.ReasonBadGrant:
		v.code = connect.CodeInvalidArgument
	default:
		v.code = connect.CodePermissionDenied
	}
	return v
}

// resolveResource turns a marked field's value into the resource to decide
// on. Resources the action cannot name climb to the nearest kind it can (a
// part's machine for role.view.others), so a check on a part is a check on
// its machine.
func (s *Server) resolveResource(ctx context.Context, snap *snapshot, rf authz.ResourceField, v string, action rbac.Action) (rbac.Resource, error) {
	if v == "" {
		return rbac.Resource{}, invalid("%s is required", rf.Field.Name())
	}
	var res rbac.Resource
	var err error
	switch rf.Kind {
	case "scope":
		res, err = rbac.ParseResource(v)
		if err != nil {
			return res, invalid("%s: want kind/ID such as org/ID, location/ID or machine/ID", rf.Field.Name())
		}
		if res.Kind == rbac.KindFragment {
			if res, err = s.fragmentOrg(ctx, res.ID); err != nil {
				return res, err
			}
		}
	case "invite":
		if !validID(v) {
			return res, invalid("%s: not an invitation ID", rf.Field.Name())
		}
		err = s.st.View(ctx, func(tx store.Tx) error {
			inv, err := tx.GetInvite(ctx, v)
			if err != nil {
				return err
			}
			res, err = rbac.ParseResource(inv.Scope)
			return err
		})
	case "apikey":
		if !validID(v) {
			return res, invalid("%s: not an API key ID", rf.Field.Name())
		}
		err = s.st.View(ctx, func(tx store.Tx) error {
			k, err := tx.GetAPIKey(ctx, v)
			if err != nil {
				return err
			}
			res, err = rbac.ParseResource(k.Scope)
			return err
		})
	case "alert":
		// An alert rule is decided on its scope.
		if !validID(v) {
			return res, invalid("%s: not an alert rule ID", rf.Field.Name())
		}
		err = s.st.View(ctx, func(tx store.Tx) error {
			r, err := tx.GetAlertRule(ctx, v)
			if err != nil {
				return err
			}
			res, err = rbac.ParseResource(r.Scope)
			return err
		})
	case "fragment":
		// A fragment is decided on its organization: every fragment row
		// of the seed is an organization-wide permission.
		if !validID(v) {
			return res, invalid("%s: not a fragment ID", rf.Field.Name())
		}
		res, err = s.fragmentOrg(ctx, v)
		if err != nil {
			return res, err
		}
	case "dataset":
		// A dataset is decided on its organization: the seed's dataset
		// rows are organization-wide, and the data inside is filtered
		// machine by machine by the handlers.
		if !validID(v) {
			return res, invalid("%s: not a dataset ID", rf.Field.Name())
		}
		err = s.st.View(ctx, func(tx store.Tx) error {
			d, err := tx.GetDataset(ctx, v)
			res = rbac.Org(d.OrgID)
			return err
		})
	default:
		kind, _ := rbac.ParseResourceKind(rf.Kind)
		res = rbac.Resource{Kind: kind, ID: v}
		if !validID(v) {
			return res, invalid("%s: not a %s ID", rf.Field.Name(), rf.Kind)
		}
	}
	if err != nil {
		return res, s.errs.Answer("resolve "+rf.Kind, authz.Explain(err, store.ErrNotFound, "no %s %q", rf.Kind, v))
	}
	if !snap.exists(res) {
		return res, connect.NewError(connect.CodeNotFound, fmt.Errorf("no %s: check the ID (list with `outpost %s list`)", res, res.Kind))
	}
	for !accepts(action, res.Kind) {
		up := snap.parent(res)
		if up.IsZero() {
			break
		}
		res = up
	}
	return res, nil
}

// grantScope refuses a scope a role cannot be given on. Roles are held on
// an org, a location or a machine; a part has no grants of its own (its
// machine's reach it), so a grant on it would be stored and never match.
func grantScope(rf authz.ResourceField, v string) error {
	res, err := rbac.ParseResource(v)
	if err != nil {
		return nil // resolveResource says what is wrong with it
	}
	switch res.Kind {
	case rbac.KindOrg, rbac.KindLocation, rbac.KindMachine:
		return nil
	case rbac.KindPart:
		return invalid("%s %s: roles are given on an org, location or machine, never on a part: give it on the part's machine (machine/ID, see `outpost machine get`)", rf.Field.Name(), res)
	}
	return invalid("%s %s: roles are given on an org, location or machine (org/ID, location/ID or machine/ID)", rf.Field.Name(), res)
}

// keyGrantScopes returns the scopes of an API key's grants, each climbed
// to a kind the action names. Grants on scopes that no longer exist reach
// nothing and are left out.
func (s *Server) keyGrantScopes(ctx context.Context, snap *snapshot, keyID string, action rbac.Action) ([]rbac.Resource, error) {
	var gs []store.Grant
	err := s.st.View(ctx, func(tx store.Tx) error {
		var err error
		gs, err = grantsOf(ctx, tx, authz.APIKey(keyID))
		return err
	})
	if err != nil {
		return nil, s.errs.Internal("resolve apikey", err)
	}
	var out []rbac.Resource
	for _, g := range gs {
		res, err := rbac.ParseResource(g.Scope)
		if err != nil || !snap.exists(res) {
			continue
		}
		for !accepts(action, res.Kind) {
			up := snap.parent(res)
			if up.IsZero() {
				break
			}
			res = up
		}
		if !slices.Contains(out, res) {
			out = append(out, res)
		}
	}
	return out, nil
}

func accepts(a rbac.Action, k rbac.ResourceKind) bool {
	for _, x := range a.ResourceKinds() {
		if x == k {
			return true
		}
	}
	return false
}

// resolveSubject reads a subject a request names: user/EMAIL, user/ID or
// apikey/ID (or the old spelling with ':'), as the subject it is.
func (s *Server) resolveSubject(ctx context.Context, ref string) (authz.Subject, error) {
	const want = "want user/EMAIL, user/ID or apikey/ID"
	subj, err := authz.Parse(ref)
	if err != nil || subj.Kind == authz.KindLocal {
		return authz.Subject{}, invalid("subject %q: %s", ref, want)
	}
	var out authz.Subject
	err = s.st.View(ctx, func(tx store.Tx) error {
		switch subj.Kind {
		case authz.KindUser:
			var u store.User
			var err error
			if strings.Contains(subj.ID, "@") {
				u, err = tx.GetUserByEmail(ctx, normalizeEmail(subj.ID))
			} else if validID(subj.ID) {
				u, err = tx.GetUser(ctx, subj.ID)
			} else {
				return invalid("subject %q: want user/EMAIL or user/ID", ref)
			}
			if err != nil {
				return err
			}
			out = authz.User(u.ID)
		default:
			if !validID(subj.ID) {
				return invalid("subject %q: not an API key ID", ref)
			}
			k, err := tx.GetAPIKey(ctx, subj.ID)
			if err != nil {
				return err
			}
			out = authz.APIKey(k.ID)
		}
		return nil
	})
	return out, s.errs.Answer("resolve subject", authz.Explain(err, store.ErrNotFound,
		"no subject %s: create a user with `outpost user create` or a key with `outpost apikey create`", ref))
}

var errTokenRevoked = errors.New("access token revoked")

// authenticateCall authenticates a call by its Authorization and DPoP
// headers or, when it has neither, by a browser session's cookie.
func (s *Server) authenticateCall(ctx context.Context, req connect.AnyRequest) (*principal, error) {
	h := req.Header()
	if h.Get("Authorization") == "" && h.Get(credential.ProofHeader) == "" {
		tok, err := sessionCookieValue(ctx, h)
		if err != nil {
			return nil, err
		}
		if tok != "" {
			return s.browserPrincipal(ctx, req.HTTPMethod(), h, tok)
		}
	}
	return s.authenticate(ctx, h)
}

// sessionPrincipal loads the user a verified session (an access token or a
// browser session) names, refusing it if the user is gone or the session
// was revoked; again says how to sign in again.
func (s *Server) sessionPrincipal(ctx context.Context, claims *credential.Claims, again string) (*principal, error) {
	var p *principal
	err := s.st.View(ctx, func(tx store.Tx) error {
		u, err := tx.GetUser(ctx, claims.Subject)
		if err != nil {
			return err
		}
		if tokenRevoked(u, claims) {
			return errTokenRevoked
		}
		gs, err := grantsOf(ctx, tx, authz.User(u.ID))
		p = &principal{kind: rbac.User, id: u.ID, email: u.Email, admin: u.Admin, grants: gs,
			tokenID: claims.ID, tokenExpires: claims.ExpiresAt.Time}
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, connect.NewError(connect.CodeUnauthenticated, errors.New("the account of this session no longer exists"))
	}
	if errors.Is(err, errTokenRevoked) {
		return nil, connect.NewError(connect.CodeUnauthenticated, fmt.Errorf("this session was revoked (signed out, or the password changed): %s", again))
	}
	if err != nil {
		return nil, s.errs.Internal("load user", err)
	}
	return p, nil
}

// authenticate reads the Authorization and DPoP headers into a principal:
// an API key or a user's session, each proving possession of its private
// key with a proof whose audience is the cloud, so a proof made for a part
// is refused here.
func (s *Server) authenticate(ctx context.Context, h http.Header) (*principal, error) {
	pr, err := credential.Parse(h.Get("Authorization"), h.Get(credential.ProofHeader))
	if err != nil {
		return nil, connect.NewError(connect.CodeUnauthenticated, err)
	}
	now := s.clock.Now()
	refuse := func(err error) error { return connect.NewError(connect.CodeUnauthenticated, err) }
	switch {
	case pr.Token != "":
		claims, err := s.signer.Verify(pr.Token, now)
		if errors.Is(err, credential.ErrLegacyToken) {
			return nil, refuse(err)
		}
		if err != nil {
			return nil, refuse(errors.New("access token is invalid or expired: sign in again with `outpost login EMAIL`"))
		}
		pc, err := credential.VerifySessionProof(pr.Proof, pr.Token, claims, credential.AudienceCloud)
		if err == nil {
			err = pc.Fresh(now)
		}
		if err != nil {
			return nil, refuse(err)
		}
		return s.sessionPrincipal(ctx, claims, "sign in again with `outpost login EMAIL`")
	case pr.KeyID != "":
		var p *principal
		var perr error
		err = s.st.View(ctx, func(tx store.Tx) error {
			k, err := tx.GetAPIKey(ctx, pr.KeyID)
			if err != nil {
				return err
			}
			pc, err := credential.VerifyKeyProof(pr.Proof, k.ID, k.PublicKey, credential.AudienceCloud)
			if err == nil {
				err = pc.Fresh(now)
			}
			if err != nil {
				perr = err
				return nil
			}
			gs, err := grantsOf(ctx, tx, authz.APIKey(k.ID))
			p = &principal{kind: rbac.APIKey, id: k.ID, grants: gs}
			return err
		})
		if errors.Is(err, store.ErrNotFound) {
			return nil, refuse(errors.New("unknown or revoked API key"))
		}
		if err != nil {
			return nil, s.errs.Internal("load API key", err)
		}
		if perr != nil {
			return nil, refuse(perr)
		}
		return p, nil
	case pr.Delegation != "":
		return nil, refuse(errors.New("a delegation (`outpost robot console`) works only on the part it was made for, never at the cloud"))
	}
	return nil, refuse(errors.New("no credentials: sign in with `outpost login EMAIL`, or pass --token or --api-key"))
}

func invalid(format string, args ...any) error {
	return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf(format, args...))
}

// fragmentOrg is the resource a fragment is decided on: its organization
// (every fragment row of the seed is an organization-wide permission).
func (s *Server) fragmentOrg(ctx context.Context, id string) (rbac.Resource, error) {
	if !validID(id) {
		return rbac.Resource{}, invalid("not a fragment ID: %q", id)
	}
	var res rbac.Resource
	err := s.st.View(ctx, func(tx store.Tx) error {
		f, err := tx.GetFragment(ctx, id)
		res = rbac.Org(f.OrgID)
		return err
	})
	if err != nil {
		return res, s.errs.Answer("resolve fragment", authz.Explain(err, store.ErrNotFound, "no fragment %q", id))
	}
	return res, nil
}
