// Package rbac does I/O four ways: all violations.
package rbac

import (
	"fmt"
	"os"
	"strings"

	"github.com/outpost-robotics/outpost/clock"
)

// Decide decides, and says so.
func Decide(action string) bool {
	ok := strings.HasPrefix(action, "machine.") && clock.Now().Year() > 2000
	fmt.Println("decided", fmt.Sprintf("%v", ok))
	println("decided")
	_, err := os.Stat("/etc/outpost")
	return ok && err == nil
}
