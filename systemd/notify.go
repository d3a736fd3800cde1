// Package systemd speaks the sd_notify protocol for outpostd and holds its
// unit file.
//
// The daemon runs as Type=notify: it says READY=1 only once its store is
// open and its control port listens, WATCHDOG=1 from its main loop at half of
// WatchdogSec (so a wedged loop stops the pings and systemd restarts it),
// RELOADING=1 on SIGHUP and STOPPING=1 on SIGTERM. Outside systemd
// (NOTIFY_SOCKET unset) every call is a no-op, so the same binary runs by hand.
package systemd

import (
	"fmt"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Notifier sends state changes to the service manager.
type Notifier struct{}

// Ready tells systemd the daemon is up; status is shown by systemctl status.
func (Notifier) Ready(status string) error {
	return send(daemon.SdNotifyReady + "\nSTATUS=" + status)
}

// Reloading tells systemd a reload started; call Ready when it is done.
// MONOTONIC_USEC is required with RELOADING=1 by systemd 253 and later.
func (Notifier) Reloading(uptime time.Duration) error {
	return send(fmt.Sprintf("%s\nMONOTONIC_USEC=%d", daemon.SdNotifyReloading, uptime.Microseconds()))
}

// Stopping tells systemd the daemon is shutting down.
func (Notifier) Stopping() error { return send(daemon.SdNotifyStopping) }

// Watchdog pings the watchdog. Call it only from the loop whose health it
// stands for.
func (Notifier) Watchdog() error { return send(daemon.SdNotifyWatchdog) }

// Status sets the one-line status systemctl shows.
func (Notifier) Status(status string) error { return send("STATUS=" + status) }

// WatchdogInterval returns how often to ping: half of WatchdogSec, as
// sd_watchdog_enabled(3) advises. It reports false when no watchdog is set
// for this process.
func (Notifier) WatchdogInterval() (time.Duration, bool, error) {
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		return 0, false, fmt.Errorf("read the systemd watchdog setting: %w", err)
	}
	if d == 0 {
		return 0, false, nil
	}
	return d / 2, true, nil
}

func send(state string) error {
	// unsetEnvironment=false: the daemon notifies many times over its life.
	if _, err := daemon.SdNotify(false, state); err != nil {
		return fmt.Errorf("notify systemd of %q: %w", firstLine(state), err)
	}
	return nil
}

func firstLine(s string) string {
	for i := range len(s) {
		if s[i] == '\n' {
			return s[:i]
		}
	}
	return s
}
