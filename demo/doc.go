// Package demo is Outpost's one-command demo (`make demo`, the README's run
// command): a fleet cloud and two robot parts on loopback, driven through
// the real outpost CLI, each step printed as it goes.
//
// Run starts the real binaries as child processes: outpost-cloud (embedded
// storage in a temporary folder) and two parts' outpostd, on free ports of
// 127.0.0.1, without mDNS, with the sync interval shortened from 15 s to
// 2 s so the demo takes well under a minute. Everything a user would do is
// an outpost CLI command run as a child process, printed as a command line
// with its answer summarized: provisioning (users, organization, location,
// machine with two parts, config, operator role and API key, bootstrap
// files), the operator driving a fake motor and reading a fake sensor and
// being refused the config, the owner reading config and logs, the cloud
// stopped while the parts keep working and captures pile up, the cloud
// restarted and every held capture arriving (matched by sequence), and the
// operator's key revoked and refused by both parts after their next sync.
//
// Every expectation is checked; the first one that fails ends the run with
// a *StepError naming the step and why, and the end of each program's log
// is printed. Waits poll a condition with a deadline, never a fixed sleep.
// Secrets the demo learns (the admin's token, passwords, the owner's token,
// part secrets, the API key's secret) are masked in everything printed.
// Children run in their own process groups and are killed when Run returns,
// however it returns; the temporary folder is removed unless Options.Keep.
//
// The CLI's --json output is read with the API's generated types, so a
// change in what the CLI prints breaks the demo's test, not the demo's
// users.
package demo
