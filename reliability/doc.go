// Package reliability is the reliability suite: scenarios that
// run the real binaries (outpostd, outpost-cloud and the CLI, built once
// per test run) as children on loopback, break them on purpose, and assert the
// invariants the design promises rather than log lines:
//
//   - sigkill-storm: outpostd SIGKILLed at least 30 times at random moments
//     of capture and sync; no record the part's store acknowledged is lost,
//     none is duplicated in the cloud, and every restart is READY within 2 s.
//   - cloud-kill-flap: the cloud SIGKILLed and restarted while the network
//     between part and cloud (package faultproxy) flaps every few seconds;
//     the part converges with the cloud exactly once.
//   - byte-budget: the store's byte budget exhausted while the part is cut
//     off; eviction goes in the documented order, every
//     eviction reaches the cloud as a gap record, and the daemon stays up.
//   - slow-disk-catch-up: the part's store and the cloud's ingest on a slow
//     disk (--fault-fsync-delay 20ms on both binaries), 100,000 evictions
//     (5,000 in the CI-sized run) while cut off; the backlog drains exactly
//     once after the link heals, a handful of gap records declare every
//     eviction, and the time to drain is reported.
//   - corrupt-store: a store Badger cannot open is moved aside, a fresh one
//     starts, and the loss reaches the cloud as a gap record.
//   - replicas-postgresql: two outpost-cloud replicas on one PostgreSQL
//     (a private server, cloud/pgtest) behind HAProxy, a real part and the
//     CLI: the part's sync reaches both replicas, a WebRTC session is
//     relayed with caller and part on different replicas, one replica is
//     SIGKILLed mid-upload and PostgreSQL restarted mid-upload, and the
//     part converges exactly once.
//   - sixty-days-offline: in-process on a fake clock, grants are honoured
//     until day 60 and refused after it with the reason, the break-glass
//     socket keeps working, and the first cycle after reconnecting renews
//     them.
//
// Each scenario prints one line "name: PASS|FAIL key=value ..." and the run
// ends with "N passed, N failed". `go test ./reliability` is the CI-sized
// run (part of `make test`); `make reliability` is the long run (the -long
// test flag).
//
// The package has no API: everything is in its tests.
package reliability
