package demo

// The scenario's steps, in the order Run takes them.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
)

func (r *run) startCloud(ctx context.Context) error {
	if err := r.launchCloud(); err != nil {
		return err
	}
	var info fleetv1.GetServerInfoResponse
	r.rep.cmd(commandLine(nil, []string{binCLI, "cloud", "info", "--json"}) + "   # repeated until it answers")
	err := r.poll(ctx, "the cloud answering", 30*time.Second, func(ctx context.Context) error {
		if !r.cloud.running() {
			return fatal{fmt.Errorf("outpost-cloud exited: %s", r.cloud.exitDesc())}
		}
		return r.outpostJSONQuiet(ctx, who{}, &info, "cloud", "info")
	})
	if err != nil {
		return err
	}
	tok, err := os.ReadFile(filepath.Join(r.dir, "cloud", "admin.token"))
	if err != nil {
		return fmt.Errorf("read the admin's token the cloud wrote: %w", err)
	}
	r.adminToken = strings.TrimSpace(string(tok))
	r.rep.secret(r.adminToken)
	if r.adminToken == "" {
		return errors.New("the cloud wrote an empty admin token")
	}
	r.rep.result(fmt.Sprintf("cloud %s, version %s; the admin's token is in %s", r.cloudURL, orDash(info.GetVersion()),
		filepath.Join(r.dir, "cloud", "admin.token")))
	return nil
}

// launchCloud starts outpost-cloud on the demo's data folder and address.
func (r *run) launchCloud() error {
	args := []string{"serve", "--data-dir", filepath.Join(r.dir, "cloud"), "--listen", strings.TrimPrefix(r.cloudURL, "http://"),
		"--poll-interval", r.opts.SyncInterval.String()}
	env, show := r.env, []string(nil)
	if r.cloudDB != "" {
		// The URL goes by the environment, as in production, so it stays
		// out of ps.
		env = append(slices.Clip(r.env), "OUTPOST_DATABASE_URL="+r.cloudDB)
		show = []string{"OUTPOST_DATABASE_URL='" + r.cloudDB + "'"}
	}
	r.rep.cmd(commandLine(show, append([]string{binCloud}, args...)) + " &")
	c, err := r.kids.start(binCloud, r.cloudLog, env, filepath.Join(r.opts.Bin, binCloud), args...)
	if err != nil {
		return err
	}
	r.cloud = c
	return nil
}

func (r *run) createUsers(ctx context.Context) error {
	for _, u := range []struct{ email, variable string }{{"ann@example.com", "ANN_PASSWORD"}, {"bob@example.com", "BOB_PASSWORD"}} {
		pw := rand.Text() // a password for a demo user
		r.rep.secret(pw)
		if u.variable == "ANN_PASSWORD" {
			r.ownerPassword = pw
		}
		var res fleetv1.CreateUserResponse
		out, err := r.outpost(ctx, r.admin(), pw, `<<< "$`+u.variable+`"`, "user", "create", u.email, "--password-stdin", "--json")
		if err != nil {
			return err
		}
		if err := decode("outpost user create", out.stdout, &res); err != nil {
			return err
		}
		if res.GetUser().GetEmail() != u.email {
			return fmt.Errorf("created user %q, want %s", res.GetUser().GetEmail(), u.email)
		}
		r.rep.result(fmt.Sprintf("user %s, id %s", u.email, res.GetUser().GetId()))
	}
	// The fleet app signs in with a password, which the demo never
	// prints: it leaves the owner's in a file of its folder.
	pwFile := filepath.Join(r.dir, "ann.password")
	if err := os.WriteFile(pwFile, []byte(r.ownerPassword+"\n"), 0o600); err != nil {
		return fmt.Errorf("write the owner's password for the fleet app: %w", err)
	}
	r.rep.result(fmt.Sprintf("the fleet app: open %s/ in a browser and sign in as ann@example.com with the password in %s", r.cloudURL, pwFile))
	return nil
}

func (r *run) createOrg(ctx context.Context) error {
	out, err := r.outpost(ctx, r.owner(), r.ownerPassword, `<<< "$ANN_PASSWORD"`, "login", "ann@example.com", "--password-stdin", "--json")
	if err != nil {
		return err
	}
	var in fleetv1.SignInResponse
	if err := decode("outpost login", out.stdout, &in); err != nil {
		return err
	}
	r.ownerToken = in.GetAccessToken()
	r.rep.secret(r.ownerToken)
	if r.ownerToken == "" {
		return errors.New("outpost login returned no access token")
	}
	r.rep.result(fmt.Sprintf("signed in as %s until %s; the CLI saved the token for later commands",
		in.GetUser().GetEmail(), in.GetExpiresAt().AsTime().UTC().Format(time.RFC3339)))

	var org fleetv1.CreateOrgResponse
	if err := r.outpostJSON(ctx, r.owner(), &org, "org", "create", "Acme Robotics"); err != nil {
		return err
	}
	r.orgID = org.GetOrg().GetId()
	if err := needID("the new organization", r.orgID); err != nil {
		return err
	}
	r.rep.result(fmt.Sprintf("org/%s %q; its creator ann is its owner", r.orgID, org.GetOrg().GetName()))

	var loc fleetv1.CreateLocationResponse
	if err := r.outpostJSON(ctx, r.owner(), &loc, "location", "create", "Plant", "--org", r.orgID); err != nil {
		return err
	}
	r.locID = loc.GetLocation().GetId()
	if err := needID("the new location", r.locID); err != nil {
		return err
	}
	r.rep.result(fmt.Sprintf("location/%s %q", r.locID, loc.GetLocation().GetName()))
	return nil
}

func (r *run) createMachine(ctx context.Context) error {
	var m fleetv1.CreateMachineResponse
	if err := r.outpostJSON(ctx, r.owner(), &m, "machine", "create", "rover", "--location", r.locID); err != nil {
		return err
	}
	r.rep.secret(m.GetMainPartSecret())
	r.machineID = m.GetMachine().GetId()
	if err := needID("the new machine", r.machineID); err != nil {
		return err
	}
	if len(m.GetMachine().GetParts()) != 1 {
		return fmt.Errorf("the new machine has %d parts, want its main part", len(m.GetMachine().GetParts()))
	}
	r.parts[0].id = m.GetMachine().GetParts()[0].GetId()
	if err := needID("the main part", r.parts[0].id); err != nil {
		return err
	}
	r.rep.result(fmt.Sprintf("machine/%s %q with its main part %s (part/%s)", r.machineID, "rover", m.GetMachine().GetParts()[0].GetName(), r.parts[0].id))

	var p fleetv1.AddPartResponse
	if err := r.outpostJSON(ctx, r.owner(), &p, "part", "add", r.parts[1].name, "--machine", r.machineID); err != nil {
		return err
	}
	r.rep.secret(p.GetSecret())
	r.parts[1].id = p.GetPart().GetId()
	if err := needID("the added part", r.parts[1].id); err != nil {
		return err
	}
	r.rep.result(fmt.Sprintf("part/%s %q", r.parts[1].id, p.GetPart().GetName()))

	file := filepath.Join(r.dir, "rover.json")
	if err := os.WriteFile(file, []byte(machineConfig), 0o600); err != nil {
		return fmt.Errorf("write the machine config: %w", err)
	}
	var c fleetv1.UpdateMachineConfigResponse
	if err := r.outpostJSON(ctx, r.owner(), &c, "config", "set", r.machineID, "--file", file); err != nil {
		return err
	}
	if c.GetRevision().GetRevision() == 0 {
		return errors.New("config set returned no revision")
	}
	r.rep.result(fmt.Sprintf("revision %d: each part gets a fake motor and a fake sensor (main: \"motor\", \"sensor\"; arm: \"arm-motor\", \"arm-sensor\"), whose readings it captures at %d Hz",
		c.GetRevision().GetRevision(), captureHz))
	return nil
}

func (r *run) createOperator(ctx context.Context) error {
	scope := "machine/" + r.machineID
	var g fleetv1.GrantRoleResponse
	if err := r.outpostJSON(ctx, r.owner(), &g, "role", "grant", "--subject", "user/bob@example.com", "--role", "operator", "--scope", scope); err != nil {
		return err
	}
	if g.GetGrant().GetRole() != "operator" {
		return fmt.Errorf("granted role %q, want operator", g.GetGrant().GetRole())
	}
	r.rep.result(fmt.Sprintf("%s is operator of %s", orDash(g.GetGrant().GetEmail()), g.GetGrant().GetScope()))

	var k fleetv1.CreateAPIKeyResponse
	if err := r.outpostJSON(ctx, r.owner(), &k, "apikey", "create", "--name", "field-tech", "--role", "operator", "--scope", scope); err != nil {
		return err
	}
	r.apiKey, r.keyID = k.GetToken(), k.GetKey().GetId()
	r.rep.secret(r.apiKey)
	if err := needID("the new API key", r.keyID); err != nil {
		return err
	}
	if !strings.HasPrefix(r.apiKey, "opk_"+r.keyID+"_") {
		return errors.New("the new API key is not opk_<key id>_<private key>")
	}
	r.rep.result(fmt.Sprintf("API key %s, operator of %s (its secret is shown once; masked here)", r.apiKey, scope))
	return nil
}

func (r *run) startParts(ctx context.Context) error {
	for _, p := range r.parts {
		boot := filepath.Join(p.dir, "outpostd.json")
		out, err := r.outpost(ctx, r.owner(), "", "", "part", "bootstrap", p.id, "-o", boot)
		if err != nil {
			return err
		}
		r.rep.result(firstLine(string(out.stdout)))
	}
	for _, p := range r.parts {
		args := []string{"--config", filepath.Join(p.dir, "outpostd.json"), "--data-dir", filepath.Join(p.dir, "data"),
			"--runtime-dir", filepath.Join(p.dir, "run"), "--listen", p.addr, "--metrics", p.metrics, "--mdns", "-",
			"--sync-interval", r.opts.SyncInterval.String()}
		r.rep.cmd(commandLine(nil, append([]string{binDaemon}, args...)) + " &")
		c, err := r.kids.start(binDaemon+" ("+p.name+")", filepath.Join(p.dir, "outpostd.log"), r.env, filepath.Join(r.opts.Bin, binDaemon), args...)
		if err != nil {
			return err
		}
		p.proc = c
	}
	r.rep.cmd(commandLine(nil, []string{binCLI, "machine", "status", r.machineID, "--json"}) + "   # repeated until both parts run their config")
	var st fleetv1.GetMachineStatusResponse
	err := r.poll(ctx, "both parts running their config", 60*time.Second, func(ctx context.Context) error {
		for _, p := range r.parts {
			if !p.proc.running() {
				return fatal{fmt.Errorf("outpostd of part %s exited: %s", p.name, p.proc.exitDesc())}
			}
		}
		if err := r.outpostJSONQuiet(ctx, r.owner(), &st, "machine", "status", r.machineID); err != nil {
			return err
		}
		return partsReady(&st, r.parts)
	})
	if err != nil {
		return err
	}
	for _, ps := range st.GetParts() {
		p := r.partByID(ps.GetPart().GetId())
		p.certHex = hex.EncodeToString(ps.GetStatus().GetControlCertSha256())
		var res []string
		for _, rs := range ps.GetStatus().GetResources() {
			res = append(res, rs.GetName()+" "+rs.GetState())
		}
		r.rep.result(fmt.Sprintf("%-4s online, config %d/%d, %s; control on %s, metrics on http://%s/metrics", p.name,
			ps.GetStatus().GetConfigVersion(), ps.GetIssuedConfigVersion(), strings.Join(res, ", "), p.addr, p.metrics))
	}
	return nil
}

// partsReady says whether every part reported running the config the
// cloud issued it, with every resource running.
func partsReady(st *fleetv1.GetMachineStatusResponse, parts []*part) error {
	seen := 0
	for _, ps := range st.GetParts() {
		var p *part
		for _, q := range parts {
			if q.id == ps.GetPart().GetId() {
				p = q
			}
		}
		if p == nil {
			continue
		}
		s := ps.GetStatus()
		if ps.GetLastSeen() == nil || s == nil {
			return pending("part %s has not reported yet", p.name)
		}
		if s.GetConfigVersion() == 0 || s.GetConfigVersion() != ps.GetIssuedConfigVersion() {
			return pending("part %s runs config %d of %d", p.name, s.GetConfigVersion(), ps.GetIssuedConfigVersion())
		}
		if len(s.GetResources()) == 0 {
			return pending("part %s reports no components", p.name)
		}
		for _, rs := range s.GetResources() {
			if rs.GetState() != "running" {
				return pending("part %s: %s is %s %s", p.name, rs.GetName(), rs.GetState(), rs.GetError())
			}
		}
		if len(s.GetControlCertSha256()) != 32 {
			return pending("part %s reported no certificate fingerprint", p.name)
		}
		seen++
	}
	if seen != len(parts) {
		return pending("%d of %d parts reported", seen, len(parts))
	}
	return nil
}

func (r *run) partByID(id string) *part {
	for _, p := range r.parts {
		if p.id == id {
			return p
		}
	}
	return &part{name: id}
}

func (r *run) pinParts(ctx context.Context) error {
	for _, p := range r.parts {
		out, err := r.outpost(ctx, who{}, "", "", "robot", "trust", p.addr)
		if err != nil {
			return err
		}
		fp, err := parseTrust(out.stdout, p.addr)
		if err != nil {
			return err
		}
		if fp != p.certHex {
			return fmt.Errorf("part %s presents certificate %s, but reported %s to the cloud", p.name, fp, p.certHex)
		}
		r.rep.result(fmt.Sprintf("%s presents SHA-256 %s…, the fingerprint part %s reported to the cloud", p.addr, fp[:16], p.name))
		if _, err := r.outpost(ctx, who{}, "", "", "robot", "trust", p.addr, "--fingerprint", fp, "--yes"); err != nil {
			return err
		}
		r.rep.result("pinned: later commands refuse any other certificate at " + p.addr)
	}
	return nil
}

func (r *run) operatorDrives(ctx context.Context) error {
	main, arm := r.parts[0], r.parts[1]
	var me controlv1.WhoAmIResponse
	if err := r.outpostJSON(ctx, r.operator(), &me, robot(main, "whoami")...); err != nil {
		return err
	}
	if me.GetRole() != "operator" {
		return fmt.Errorf("the part sees the API key as %q, want operator", me.GetRole())
	}
	r.rep.result(fmt.Sprintf("%s (%s), %s through %q; may %s", me.GetSubject(), me.GetDisplayName(), me.GetRole(), me.GetGrant(),
		strings.Join(me.GetAllowedActions(), ", ")))
	if err := r.driveMotor(ctx, main, 0.5); err != nil {
		return err
	}
	return r.readSensor(ctx, arm)
}

func (r *run) driveMotor(ctx context.Context, p *part, power float64) error {
	var res controlv1.MotorIsMovingResponse
	if err := r.outpostJSON(ctx, r.operator(), &res, robot(p, "motor", p.motor, "--power", fmt.Sprint(power))...); err != nil {
		return err
	}
	if res.GetMoving() != (power != 0) {
		return fmt.Errorf("after power %g the motor says moving=%t", power, res.GetMoving())
	}
	r.rep.result(fmt.Sprintf("part %s: motor at power %g, moving: %t", p.name, power, res.GetMoving()))
	return nil
}

func (r *run) readSensor(ctx context.Context, p *part) error {
	var res structpb.Struct
	if err := r.outpostJSON(ctx, r.operator(), &res, robot(p, "readings", p.sensor)...); err != nil {
		return err
	}
	if _, ok := res.GetFields()["temperature_c"]; !ok {
		return fmt.Errorf("the sensor read %s, want temperature_c", compactJSON(&res))
	}
	r.rep.result(fmt.Sprintf("part %s: %s", p.name, compactJSON(&res)))
	return nil
}

func (r *run) operatorRefused(ctx context.Context) error {
	ref, err := r.refused(ctx, r.operator(), "permission_denied", robot(r.parts[0], "config")...)
	if err != nil {
		return err
	}
	if !strings.Contains(ref.Message, "machine.view") {
		return fmt.Errorf("refused without naming machine.view: %s", describe(ref))
	}
	r.sum.Refused = ref.Message
	r.rep.result("refused: " + describe(ref))
	r.rep.note("(the seed's row for machine.view, \"See all tabs (such as CONFIGURE and LOGS)\", is for owners only)")
	return nil
}

func (r *run) ownerReads(ctx context.Context) error {
	main := r.parts[0]
	var cfg controlv1.GetConfigResponse
	if err := r.outpostJSON(ctx, r.ownerOnRobot(), &cfg, robot(main, "config")...); err != nil {
		return err
	}
	var comps, caps []string
	for _, c := range cfg.GetConfig().GetComponents() {
		comps = append(comps, fmt.Sprintf("%s (%s %s)", c.GetName(), c.GetModel(),
			strings.ToLower(strings.TrimPrefix(c.GetType().String(), "COMPONENT_TYPE_"))))
	}
	for _, c := range cfg.GetConfig().GetCaptures() {
		caps = append(caps, fmt.Sprintf("%s.%s at %g Hz", c.GetComponent(), c.GetMethod(), c.GetFrequencyHz()))
	}
	if len(comps) != 2 || len(caps) != 1 {
		return fmt.Errorf("the part runs %d components and %d captures, want the demo's 2 and 1", len(comps), len(caps))
	}
	r.rep.result(fmt.Sprintf("config version %d (machine revision %d): %s; capture %s", cfg.GetVersion(), cfg.GetMachineRevision(),
		strings.Join(comps, ", "), strings.Join(caps, ", ")))

	var logs controlv1.TailLogsResponse
	if err := r.outpostJSON(ctx, r.ownerOnRobot(), &logs, robot(main, "logs", "-n", "3")...); err != nil {
		return err
	}
	if len(logs.GetEntries()) == 0 {
		return errors.New("the part's log is empty")
	}
	var lines []string
	for _, e := range logs.GetEntries() {
		msg := e.GetMessage()
		if e.GetLogger() != "" {
			msg = e.GetLogger() + ": " + msg
		}
		lines = append(lines, clip(fmt.Sprintf("%s %-5s %s", e.GetTime().AsTime().UTC().Format("15:04:05.000"), e.GetLevel(), msg), 110))
	}
	r.rep.result(strings.Join(lines, "\n"))

	var cl fleetv1.ListLogsResponse
	if err := r.outpostJSON(ctx, r.owner(), &cl, "logs", "--machine", r.machineID, "--level", "info"); err != nil {
		return err
	}
	perPart := map[string]int{}
	for _, e := range cl.GetEntries() {
		perPart[r.partByID(e.GetPartId()).name]++
	}
	if len(cl.GetEntries()) == 0 {
		return errors.New("the cloud holds no log entries of the machine")
	}
	more := ""
	if cl.GetNextPageToken() != "" {
		more = " (and more pages)"
	}
	first := cl.GetEntries()[0]
	r.rep.result(fmt.Sprintf("the cloud holds %d entries the parts uploaded (main %d, arm %d)%s, such as: %s", len(cl.GetEntries()),
		perPart["main"], perPart["arm"], more, clip(first.GetEntry().GetMessage(), 60)))

	args := []string{"data", "captures", "--machine", r.machineID, "--limit", "1000"}
	r.rep.cmd(commandLine(nil, append([]string{binCLI}, append(args, "--json")...)) + "   # repeated until both parts uploaded some")
	perPart = map[string]int{}
	err := r.poll(ctx, "captures of both parts in the cloud", 60*time.Second, func(ctx context.Context) error {
		recs, err := r.cloudCaptures(ctx, args)
		if err != nil {
			return err
		}
		clear(perPart)
		for _, c := range recs {
			perPart[r.partByID(c.GetPartId()).name]++
		}
		r.sum.Online = len(recs)
		for _, p := range r.parts {
			if perPart[p.name] == 0 {
				return pending("no captures of part %s in the cloud yet", p.name)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.rep.result(fmt.Sprintf("the cloud holds %d captures of the sensor so far (main %d, arm %d)", r.sum.Online, perPart["main"], perPart["arm"]))
	return nil
}

func (r *run) stopCloud(ctx context.Context) error {
	r.rep.cmd(fmt.Sprintf("kill -TERM %d   # outpost-cloud", r.cloud.cmd.Process.Pid))
	took, err := r.cloud.stop(ctx, r.clk, 30*time.Second)
	r.offlineSince = r.clk.Uptime()
	if err != nil {
		return err
	}
	r.rep.result(fmt.Sprintf("outpost-cloud exited 0 after %s", took.Round(10*time.Millisecond)))

	main := r.parts[0]
	r.rep.cmd(commandLine(r.ownerOnRobot().show, append([]string{binCLI}, robot(main, "status", "--json")...)) + "   # repeated until the part notices")
	var st controlv1.StatusResponse
	err = r.poll(ctx, "part main noticing the cloud is gone", 60*time.Second, func(ctx context.Context) error {
		if err := r.outpostJSONQuiet(ctx, r.ownerOnRobot(), &st, robot(main, "status")...); err != nil {
			return err
		}
		if st.GetSyncState() != controlv1.SyncState_SYNC_STATE_OFFLINE {
			return pending("part main says sync %s", st.GetSyncState())
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.rep.result(fmt.Sprintf("part main: sync offline, offline for %s; its config and grants stay valid %.0f days without the cloud",
		st.GetOfflineFor().AsDuration().Round(time.Second), st.GetTimeLeft().AsDuration().Hours()/24))
	return nil
}

func (r *run) driveOffline(ctx context.Context) error {
	if err := r.driveMotor(ctx, r.parts[0], -0.3); err != nil {
		return err
	}
	if err := r.readSensor(ctx, r.parts[1]); err != nil {
		return err
	}
	r.rep.cmd(commandLine(r.ownerOnRobot().show, append([]string{binCLI}, robot(r.parts[0], "data", "ls", "--component", r.parts[0].sensor, "--json")...)) +
		fmt.Sprintf("   # on each part, repeated until each holds %d", r.opts.Pile))
	err := r.poll(ctx, fmt.Sprintf("each part holding %d captures", r.opts.Pile), 60*time.Second, func(ctx context.Context) error {
		for _, p := range r.parts {
			var ls controlv1.ListCapturesResponse
			if err := r.outpostJSONQuiet(ctx, r.ownerOnRobot(), &ls, robot(p, "data", "ls", "--component", p.sensor)...); err != nil {
				return err
			}
			held, err := heldCaptures(&ls)
			if err != nil {
				return fatal{err}
			}
			p.held = held
			p.heldFrom = time.Time{}
			for _, c := range ls.GetCaptures() {
				if t := c.GetTime().AsTime(); p.heldFrom.IsZero() || t.Before(p.heldFrom) {
					p.heldFrom = t
				}
			}
		}
		for _, p := range r.parts {
			if len(p.held) < r.opts.Pile {
				return pending("part %s holds %d captures", p.name, len(p.held))
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.sum.Held = map[string]int{}
	var lines []string
	for _, p := range r.parts {
		r.sum.Held[p.name] = len(p.held)
		lines = append(lines, fmt.Sprintf("part %s holds %d captures (sequences %s)", p.name, len(p.held), seqRange(p.held)))
	}
	r.rep.result(strings.Join(lines, "; ") + fmt.Sprintf(", %s after the cloud stopped", (r.clk.Uptime()-r.offlineSince).Round(time.Second)))
	return nil
}

func (r *run) restartCloud(ctx context.Context) error {
	if err := r.launchCloud(); err != nil {
		return err
	}
	var info fleetv1.GetServerInfoResponse
	r.rep.cmd(commandLine(nil, []string{binCLI, "cloud", "info", "--json"}) + "   # repeated until it answers")
	err := r.poll(ctx, "the cloud answering again", 30*time.Second, func(ctx context.Context) error {
		if !r.cloud.running() {
			return fatal{fmt.Errorf("outpost-cloud exited: %s", r.cloud.exitDesc())}
		}
		return r.outpostJSONQuiet(ctx, who{}, &info, "cloud", "info")
	})
	if err != nil {
		return err
	}
	r.sum.Offline = r.clk.Uptime() - r.offlineSince
	r.rep.result(fmt.Sprintf("the cloud is back after %s down", r.sum.Offline.Round(time.Second)))

	from := r.parts[0].heldFrom
	for _, p := range r.parts[1:] {
		if p.heldFrom.Before(from) {
			from = p.heldFrom
		}
	}
	fromFlag := from.Add(-time.Second).UTC().Format(time.RFC3339Nano)
	args := []string{"data", "captures", "--machine", r.machineID, "--from", fromFlag, "--limit", "1000"}
	r.rep.cmd(commandLine(nil, append([]string{binCLI}, append(args, "--json")...)) + "   # repeated until the cloud has every held capture")
	r.sum.Arrived = map[string]int{}
	err = r.poll(ctx, "the held captures arriving in the cloud", 60*time.Second, func(ctx context.Context) error {
		recs, err := r.cloudCaptures(ctx, args)
		if err != nil {
			return err
		}
		for _, p := range r.parts {
			n, missing := arrived(p.held, p.id, recs)
			r.sum.Arrived[p.name] = n
			if len(missing) > 0 {
				return pending("the cloud has %d of part %s's %d held captures; missing %s", n, p.name, len(p.held), seqRange(missing))
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	var lines []string
	for _, p := range r.parts {
		lines = append(lines, fmt.Sprintf("part %s: %d of the %d captures it held are in the cloud", p.name, r.sum.Arrived[p.name], len(p.held)))
	}
	r.rep.result(strings.Join(lines, "; "))

	r.rep.cmd(commandLine(r.ownerOnRobot().show, append([]string{binCLI}, robot(r.parts[0], "data", "ls", "--component", r.parts[0].sensor, "--json")...)) +
		"   # on each part, repeated until the acknowledged ones are gone")
	left := map[string]int{}
	err = r.poll(ctx, "the parts deleting what the cloud acknowledged", 60*time.Second, func(ctx context.Context) error {
		for _, p := range r.parts {
			var ls controlv1.ListCapturesResponse
			if err := r.outpostJSONQuiet(ctx, r.ownerOnRobot(), &ls, robot(p, "data", "ls", "--component", p.sensor)...); err != nil {
				return err
			}
			now, err := heldCaptures(&ls)
			if err != nil {
				return fatal{err}
			}
			left[p.name] = stillHeld(p.held, now)
		}
		for _, p := range r.parts {
			if left[p.name] > 0 {
				return pending("part %s still holds %d of them", p.name, left[p.name])
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.rep.result("the cloud acknowledged them and the parts deleted their copies: exactly once, none lost")
	return nil
}

// cloudCaptures lists the cloud's captures page by page.
func (r *run) cloudCaptures(ctx context.Context, args []string) ([]*fleetv1.CaptureRecord, error) {
	var all []*fleetv1.CaptureRecord
	page := ""
	for range 100 {
		a := args
		if page != "" {
			a = append(slices.Clip(args), "--page", page)
		}
		var res fleetv1.ListCapturesResponse
		if err := r.outpostJSONQuiet(ctx, r.owner(), &res, a...); err != nil {
			return nil, err
		}
		all = append(all, res.GetCaptures()...)
		if page = res.GetNextPageToken(); page == "" {
			if d := duplicate(all); d != "" {
				return nil, fatal{fmt.Errorf("the cloud lists capture %s twice", d)}
			}
			return all, nil
		}
	}
	return nil, fatal{errors.New("the cloud's capture list did not end after 100 pages")}
}

func (r *run) revokeKey(ctx context.Context) error {
	before := map[string]uint64{}
	for _, p := range r.parts {
		var st controlv1.StatusResponse
		if err := r.outpostJSONQuiet(ctx, r.ownerOnRobot(), &st, robot(p, "status")...); err != nil {
			return err
		}
		before[p.name] = st.GetGrantsVersion()
	}
	var rv fleetv1.RevokeAPIKeyResponse
	if err := r.outpostJSON(ctx, r.owner(), &rv, "apikey", "revoke", r.keyID); err != nil {
		return err
	}
	revoked := r.clk.Uptime()
	r.rep.result(fmt.Sprintf("revoked apikey/%s at the cloud; the parts hold grants version %d and %d", r.keyID, before["main"], before["arm"]))

	r.rep.cmd(commandLine(r.ownerOnRobot().show, append([]string{binCLI}, robot(r.parts[0], "status", "--json")...)) +
		"   # on each part, repeated until its grants version changes")
	after := map[string]uint64{}
	err := r.poll(ctx, "the parts taking the new grants", 60*time.Second, func(ctx context.Context) error {
		for _, p := range r.parts {
			var st controlv1.StatusResponse
			if err := r.outpostJSONQuiet(ctx, r.ownerOnRobot(), &st, robot(p, "status")...); err != nil {
				return err
			}
			after[p.name] = st.GetGrantsVersion()
			if st.GetGrantsVersion() <= before[p.name] {
				return pending("part %s holds grants version %d", p.name, st.GetGrantsVersion())
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.sum.RevokedAfter = r.clk.Uptime() - revoked
	r.rep.result(fmt.Sprintf("grants version %d on main and %d on arm, %s after the revocation", after["main"], after["arm"], r.sum.RevokedAfter.Round(100*time.Millisecond)))
	for _, p := range r.parts {
		ref, err := r.refused(ctx, r.operator(), "unauthenticated", robot(p, "readings", p.sensor)...)
		if err != nil {
			return err
		}
		if !strings.Contains(ref.Message, "revoked") {
			return fmt.Errorf("part %s refused the key without saying it is revoked: %s", p.name, describe(ref))
		}
		r.sum.Revoked = ref.Message
		r.rep.result(fmt.Sprintf("part %s refused: %s", p.name, describe(ref)))
	}
	return nil
}

func (r *run) stopAll(ctx context.Context) error {
	// Parts first: their final sync reaches the cloud.
	for _, p := range r.parts {
		r.rep.cmd(fmt.Sprintf("kill -TERM %d   # outpostd of part %s", p.proc.cmd.Process.Pid, p.name))
		took, err := p.proc.stop(ctx, r.clk, 30*time.Second)
		if err != nil {
			return err
		}
		r.rep.result(fmt.Sprintf("exited 0 after %s", took.Round(10*time.Millisecond)))
	}
	r.rep.cmd(fmt.Sprintf("kill -TERM %d   # outpost-cloud", r.cloud.cmd.Process.Pid))
	took, err := r.cloud.stop(ctx, r.clk, 30*time.Second)
	if err != nil {
		return err
	}
	r.rep.result(fmt.Sprintf("exited 0 after %s", took.Round(10*time.Millisecond)))
	return nil
}
