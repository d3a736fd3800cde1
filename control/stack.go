package control

// callStack is the stack a call's goroutine is given before the authorizer
// runs. net/http's HTTP/2 server and the WebRTC session run every call on
// a new goroutine, which starts with a small stack (the runtime's average)
// and grew it by doubling while deep in the authorizer, connect and
// protobuf: each growth copies every frame above it and adjusts their
// pointers, and a CPU profile of BenchmarkControlRPC showed it as the
// authorizer's largest share. Growing once at the top of the call, where
// the stack holds a handful of frames, is one short copy: a goroutine that
// needs ~14 KiB costs 1.8 µs grown first against 5–10 µs by doubling (a
// micro-benchmark on dev-2c). After it, the profile shows no growth deeper
// in the call; a call that goes deeper still grows as before. What it
// costs: a call's goroutine holds 16 KiB of stack while it runs, which
// the deep calls held anyway.
const callStack = 16 << 10

// growFrame is growStack's frame: callStack less what the runtime adds
// (its guard and the frames below), so the doubling stops at callStack.
const growFrame = callStack - 2<<10

// growStack grows the calling goroutine's stack so that growFrame more
// bytes fit (the runtime doubles it until the frame fits, in one copy).
//
//go:noinline
func growStack() {
	var frame [growFrame]byte
	touch(&frame)
}

// touch writes to the frame so that the compiler keeps it.
//
//go:noinline
func touch(b *[growFrame]byte) { b[0] = 1 }
