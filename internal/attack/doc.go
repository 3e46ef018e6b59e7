// Package attack holds the client side of the attacks of issue 8 that any
// HTTPS server shares (slowloris on HTTP/1 heads and bodies, clients that
// never read, idle keep-alive floods, slow HTTP/2 header blocks, HTTP/2
// streams whose bodies never finish, HTTP/2 rapid reset), a normal client
// that measures its latency while they run, and the means to see what they
// cost the server: whether and when it closed the attacking connections
// (Closed) and its resident memory and open sockets (/proc, Linux only).
//
// It is used by the daemon's attack suite (daemon/attack_test.go, which
// asserts edgecert's bounds) and by scripts/bench/attack (which measures
// edgecert and nginx side by side, BENCHMARKS.md). Nothing here knows which
// server it talks to: a Target is an address, a server name and the roots
// that verify it.
//
// Every attack opens its connections, starts whatever keeps them going
// (goroutines that end when ctx is done or a write fails) and returns the
// connections the server is expected to close; the caller closes them
// (CloseAll) when it is done watching.
package attack
