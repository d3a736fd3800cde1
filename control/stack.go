package control

// callStack is the stack a call's goroutine is given before the authorizer
// runs. net/http's HTTP/2 server and the WebRTC session run every call on
// a new goroutine, which starts with a small stack (the runtime's average)
// and grew it deeper in the call: a growth copies every frame above it and
// looks up each one's pointer map. Growing once at the top of the call,
// where the stack holds a handful of frames, took a WebRTC call's growth
// from about 10 µs of the part's CPU to 3 (BenchmarkControlRPC's profile);
// a gRPC call's one growth was already near the top and costs the same
// here. A call that goes deeper than callStack still grows as before. What
// it costs: a call's goroutine holds 16 KiB of stack while it runs, as
// the deep calls did, and clearing the frame takes about 0.25 µs, all that
// a goroutine whose stack is already grown (an HTTP/1.1 connection's) pays.
const callStack = 16 << 10

// growFrame is growStack's frame: callStack less room for the frames
// below it and the runtime's guard, so that the doubling stops at
// callStack, the largest size the runtime serves from its per-P stack
// caches; a 32 KiB stack is allocated from the heap, which cost more than
// the copies it saved.
const growFrame = callStack - 4<<10

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
