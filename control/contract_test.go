package control

import "github.com/outpost-robotics/outpost/robot"

// The daemon wires the robot package's Robot in as is.
var _ Robot = (*robot.Robot)(nil)
