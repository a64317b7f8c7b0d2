// Command stallnight runs one whole backup night of a tree in this process
// (the server side only: the client agent is a separate `tapir client`
// process) with a drive that stalls for a while in the middle of an image,
// and prints the server's peak memory. It is the memory half of the
// backpressure promise: while the drive stalls, the dumpers wait and
// nothing piles up in memory.
//
//	stallnight -tree DIR -work DIR -tapir BIN [-stall 30s] [-holding 256MiB]
//
// Each top-level directory of the tree is one DLE. The output is one line
// of key=value pairs.
package main
