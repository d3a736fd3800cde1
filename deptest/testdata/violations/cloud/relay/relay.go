// Package relay stands for the cloud's signaling relay.
package relay

// Name names the relay.
const Name = "relay"
