package builtin

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	"github.com/outpost-robotics/outpost/robot/component"
	"golang.org/x/sys/unix"
)

// SystemSensor reads the part's own health: CPU temperature (the hottest
// thermal zone, absent on machines without one, such as most VMs), load
// averages, memory, the disk holding disk_path (attribute, default "/") and
// uptime. Useful on every Pi and Jetson.
type SystemSensor struct {
	fake
	proc, sys, disk string
}

func systemSensorCtor(opts Options) component.Constructor {
	return func(_ context.Context, cfg *configv1.Component, _ component.Deps) (component.Component, error) {
		disk := "/"
		if d := cfg.GetAttributes().GetFields()["disk_path"].GetStringValue(); d != "" {
			disk = d
		}
		return &SystemSensor{fake: fake{name: cfg.GetName()}, proc: opts.ProcRoot, sys: opts.SysRoot, disk: disk}, nil
	}
}

// Readings reads /proc, /sys and statfs afresh.
func (s *SystemSensor) Readings(context.Context) (map[string]any, error) {
	out := map[string]any{}
	if err := s.load(out); err != nil {
		return nil, err
	}
	if err := s.memory(out); err != nil {
		return nil, err
	}
	if err := s.uptime(out); err != nil {
		return nil, err
	}
	if t, ok := s.cpuTemp(); ok {
		out["cpu_temp_c"] = t
	}
	var st unix.Statfs_t
	if err := unix.Statfs(s.disk, &st); err != nil {
		return nil, fmt.Errorf("statfs %s: %w", s.disk, err)
	}
	total := float64(st.Blocks) * float64(st.Bsize)
	free := float64(st.Bavail) * float64(st.Bsize)
	out["disk_total_bytes"], out["disk_free_bytes"] = total, free
	if total > 0 {
		out["disk_used_fraction"] = 1 - free/total
	}
	return out, nil
}

func (s *SystemSensor) load(out map[string]any) error {
	b, err := os.ReadFile(filepath.Join(s.proc, "loadavg"))
	if err != nil {
		return fmt.Errorf("read load: %w", err)
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return fmt.Errorf("read load: %q has fewer than 3 fields", strings.TrimSpace(string(b)))
	}
	for i, key := range []string{"load_1m", "load_5m", "load_15m"} {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return fmt.Errorf("read load: %w", err)
		}
		out[key] = v
	}
	return nil
}

func (s *SystemSensor) memory(out map[string]any) error {
	b, err := os.ReadFile(filepath.Join(s.proc, "meminfo"))
	if err != nil {
		return fmt.Errorf("read memory: %w", err)
	}
	kb := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 {
			if v, err := strconv.ParseFloat(f[1], 64); err == nil {
				kb[strings.TrimSuffix(f[0], ":")] = v
			}
		}
	}
	total, ok1 := kb["MemTotal"]
	avail, ok2 := kb["MemAvailable"]
	if !ok1 || !ok2 || total <= 0 {
		return fmt.Errorf("read memory: MemTotal or MemAvailable missing from meminfo")
	}
	out["mem_total_bytes"], out["mem_available_bytes"] = total*1024, avail*1024
	out["mem_used_fraction"] = 1 - avail/total
	return nil
}

func (s *SystemSensor) uptime(out map[string]any) error {
	b, err := os.ReadFile(filepath.Join(s.proc, "uptime"))
	if err != nil {
		return fmt.Errorf("read uptime: %w", err)
	}
	f := strings.Fields(string(b))
	if len(f) < 1 {
		return fmt.Errorf("read uptime: empty")
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return fmt.Errorf("read uptime: %w", err)
	}
	out["uptime_s"] = v
	return nil
}

// cpuTemp is the hottest thermal zone in degrees Celsius: on a Pi zone 0 is
// the SoC, on a Jetson the zones are CPU, GPU and so on, and the hottest is
// what throttles.
func (s *SystemSensor) cpuTemp() (float64, bool) {
	zones, _ := filepath.Glob(filepath.Join(s.sys, "class", "thermal", "thermal_zone*", "temp"))
	best, found := 0.0, false
	for _, z := range zones {
		b, err := os.ReadFile(z)
		if err != nil {
			continue
		}
		milli, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
		if err != nil {
			continue
		}
		if c := milli / 1000; !found || c > best {
			best, found = c, true
		}
	}
	return best, found
}
