// The robot page's CODE SAMPLE tab: CLI commands and a Go program with
// this machine's IDs and this cloud's URL filled in, ready to paste. It
// calls nothing; the commands use the caller's own credential (outpost
// login, or an API key in $OUTPOST_API_KEY), which the cloud and the part
// decide on. Seed 000: an operator does not see CODE SAMPLE; the tab's
// action is machine.view ("See all tabs").

import {h} from './dom.js';
import {machineOf, cloudURLOf} from './tab_setup.js';

/** shellQuote quotes s for a POSIX shell when it needs it. */
export function shellQuote(s) {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${String(s).replace(/'/g, `'\\''`)}'`;
}

/** goString quotes s as a Go string literal. */
export function goString(s) {
  return JSON.stringify(String(s)).replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

/**
 * cliSample returns the CLI commands for a machine.
 * @param {{cloud: string, machineId: string, partId: string, email: string}} v
 */
export function cliSample(v) {
  const c = shellQuote(v.cloud);
  const m = shellQuote(v.machineId);
  const p = shellQuote(v.partId);
  return [
    `# Sign in once; later commands use the saved session.`,
    `outpost login ${shellQuote(v.email || 'you@example.com')} --cloud ${c}`,
    ``,
    `# The machine, its parts, their status and config, its logs.`,
    `outpost machine get ${m}`,
    `outpost machine status ${m}`,
    `outpost config get ${m}`,
    `outpost logs --machine ${m} --level warn --follow`,
    ``,
    `# Drive the main part over WebRTC signaled through the cloud (the part decides with its own grants).`,
    `outpost robot status --via-cloud ${p}`,
    `outpost robot components --via-cloud ${p}`,
    `outpost robot stop --via-cloud ${p}`,
    ``,
    `# The same with an API key (outpost apikey create ... --scope machine/${v.machineId}).`,
    `OUTPOST_CLOUD=${c} OUTPOST_API_KEY=opk_... outpost robot components --via-cloud ${p}`,
  ].join('\n');
}

/**
 * goSample returns a Go program that reads the machine's status from the
 * cloud and lists its main part's components over WebRTC.
 * @param {{cloud: string, machineId: string, partId: string}} v
 */
export function goSample(v) {
  return `// Run with: OUTPOST_API_KEY=opk_... go run .
package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"os"
	"time"

	"connectrpc.com/connect"

	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/control/v1/controlv1connect"
	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1/fleetv1connect"
	"github.com/outpost-robotics/outpost/controlclient"
	"github.com/outpost-robotics/outpost/credential"
)

const (
	cloudURL  = ${goString(v.cloud)}
	machineID = ${goString(v.machineId)}
	partID    = ${goString(v.partId)}
)

func main() {
	ctx := context.Background()
	key, err := credential.ParseKey(os.Getenv("OUTPOST_API_KEY"))
	if err != nil {
		log.Fatal(err)
	}
	hc := &http.Client{Timeout: time.Minute}
	auth := connect.WithInterceptors(credential.NewCloudProver(key, time.Now))

	machines := fleetv1connect.NewMachineServiceClient(hc, cloudURL, auth)
	st, err := machines.GetMachineStatus(ctx, connect.NewRequest(&fleetv1.GetMachineStatusRequest{MachineId: machineID}))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("last seen:", st.Msg.GetLastSeen().AsTime())

	relay := fleetv1connect.NewRelayServiceClient(hc, cloudURL, auth)
	sess, err := controlclient.DialWebRTC(ctx, controlclient.RelaySignaling(relay, partID), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer sess.Close()
	robot := controlv1connect.NewComponentServiceClient(sess.HTTPClient(), controlclient.RTCBaseURL)
	res, err := robot.ListResources(ctx, connect.NewRequest(&controlv1.ListResourcesRequest{}))
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range res.Msg.GetResources() {
		fmt.Println(r.GetName(), r.GetState())
	}
}
`;
}

export const codeTab = {
  id: 'code',
  label: 'CODE SAMPLE',
  action: 'machine.view',
  /**
   * @param {{client: any, cfg: any, machine: any, orgId: string, navigate: (path: string) => void, email?: string}} ctx
   * @returns {HTMLElement}
   */
  render(ctx) {
    const machine = machineOf(ctx.machine);
    const parts = machine.parts || [];
    const main = parts.find((p) => p.main) || parts[0] || {id: 'PART_ID'};
    const v = {cloud: cloudURLOf(ctx.cfg), machineId: machine.id, partId: main.id, email: ctx.email || ''};
    const cli = h('code', {id: 'code-cli'}, cliSample(v));
    if (!v.email) {
      // The signed-in user's email, for the login line.
      ctx.client.unary('outpost.fleet.v1.AuthService', 'WhoAmI', {}).then((r) => {
        if (r.email) cli.textContent = cliSample({...v, email: r.email});
      }, () => {});
    }
    return h('section', {id: 'panel-code', 'aria-labelledby': 'code-title'},
      h('h2', {id: 'code-title'}, 'Code sample'),
      h('h3', {id: 'code-cli-title'}, 'Command line'),
      h('pre', {'aria-labelledby': 'code-cli-title', tabindex: '0'}, cli),
      h('h3', {id: 'code-go-title'}, 'Go'),
      h('p', null, 'In a module that requires github.com/outpost-robotics/outpost:'),
      h('pre', {'aria-labelledby': 'code-go-title', tabindex: '0'}, h('code', {id: 'code-go'}, goSample(v))));
  },
};
