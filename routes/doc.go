// Package routes serves the traefik/whoami endpoints for edgecert.
//
// [New] returns one [http.Handler] (an [http.ServeMux] inside) with these
// routes; every route accepts any method unless noted:
//
//   - / and every path that matches no other route: plain text, one item per
//     line: "Name: <name>" (only when a name is configured), "Hostname: <h>",
//     one "IP: <addr>" per interface address (interface order, loopback and
//     link-local included), "RemoteAddr: <ip:port>", over TLS one
//     "Certificate[<i>] Subject: <DN>" per client certificate, then the
//     request as (*http.Request).Write renders it (CRLF line ends, always
//     "HTTP/1.1"). ?wait=<Go duration> delays the answer; ?env=true appends
//     the environment when enabled (see below).
//   - /api: the same information as one JSON object plus a newline, keys in
//     whoami's order, each omitted when empty: hostname, ip, headers, url,
//     host, method, name, remoteAddr, environ (only with ?env=true when
//     enabled). ?wait is not honoured here, as in whoami.
//   - /bench: body "1", Content-Type: text/plain, Connection: keep-alive.
//   - /data?size=N[&unit=kb|mb|gb|tb][&attachment=true]: N units (binary
//     multiples, unit case-insensitive, no unit = bytes) of generated text:
//     '|' first and last, byte i in between "-ABCDEFGHIJKLMNOPQRSTUVWXYZ"[i%27]
//     (size=10 is "|ABCDEFGH|"). With attachment=true: Content-Disposition:
//     Attachment and range requests (Accept-Ranges, Range -> 206).
//   - /echo: websocket echo (GET upgrade only; any Origin); each message comes
//     back with the same type and payload. A plain request gets 400.
//   - /health: POST with a JSON integer body (e.g. 503) sets the status code
//     that every other method answers with an empty body (initially 200).
//
// Paths that are not clean ("//api", "/a/../api") are redirected to
// the clean path by the ServeMux (307 with Go 1.26; 301 before).
//
// # Deliberate differences from traefik/whoami
//
//   - POST /health is accepted only from a loopback RemoteAddr or with
//     "Authorization: Bearer <token>" (Options.HealthToken, compared in
//     constant time); otherwise 403. X-Forwarded-For is not trusted. The body
//     must be a single JSON integer in 200..599 (surrounding whitespace
//     allowed, at most 64 bytes); anything else, including trailing data
//     after the number, is a 400 with a one-line reason. whoami accepts any
//     integer (and ignores trailing data), then hangs every GET after a 1xx
//     and panics in every GET after a code outside 100..999.
//   - ?env=true on / and /api is ignored (output as with env=false) unless
//     Options.AllowEnv is set: the environment of an EC2 host can hold
//     credentials. Even then, the value of every variable whose name looks
//     secret (KEY, SECRET, TOKEN, PASSWORD, SESSION, CREDENTIAL, AUTH, HMAC,
//     … anywhere in the name) or that holds a URL with a password is
//     printed as [redacted]; names stay visible.
//   - /data returns exactly N bytes for every N >= 0, with attachment=true as
//     well (whoami returns one byte less with attachment, and an empty body
//     for size=1). A missing or empty size is an empty 200 (as in whoami).
//     An unparsable, negative or overflowing size, an unknown unit, or a
//     size above Options.DataMax (default 1 GiB) is a 400 with a one-line
//     reason (whoami treats a bad size as 1, a negative one as 0 and an
//     unknown unit as bytes, with no cap). The body is streamed from a
//     precomputed pattern, so memory does not grow with size; the
//     non-attachment response carries a Content-Length, and a HEAD request
//     generates no body.
//   - /echo limits a message to Options.EchoMaxMessage (default 1 MiB; a
//     larger one closes with 1009), pings every half Options.EchoIdleTimeout
//     and closes a connection idle (no message, no pong) for
//     EchoIdleTimeout (default 60 s); each echo write is bounded by the same
//     timeout. The connection closes (1001) when the request context ends.
//     Messages are logged at debug level only; whoami prints every received
//     byte to stdout.
//   - / and /api read interface addresses from a cache refreshed in the
//     background when older than Options.AddrRefresh (default 30 s), not on
//     every request. A failed refresh keeps the previous list.
//   - ?wait is capped at Options.WaitMax (default 30 s) and ends early,
//     without an answer, when the request context ends (client gone or
//     server shutting down). whoami sleeps the full, uncapped duration.
//   - / and /api set their Content-Type explicitly (the same values whoami's
//     responses carry) instead of relying on content sniffing.
//   - ?header= (response headers chosen by the query, a reflected-XSS risk),
//     gRPC and /openapi.yaml are not implemented; those paths get the /
//     response. /api sends no CORS headers (current whoami sends none
//     either).
//
// Server timeouts, header limits and TLS are the daemon's business; routes
// knows nothing about certificates.
package routes
