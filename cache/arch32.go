//go:build 386 || arm || mips || mipsle

package cache

// Badger v4 silently returns wrong results or panics on
// 32-bit platforms, so Outpost refuses to build there rather than ship
// corruption. The undefined identifier below is the error message.
var _ = outpost_requires_a_64_bit_platform__badger_corrupts_data_on_32_bit_builds
