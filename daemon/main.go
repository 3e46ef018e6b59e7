// Package daemon is the edgecert program: it parses the configuration, opens
// the certificate store, obtains and renews certificates by ACME DNS-01 on
// Route 53, and serves the whoami routes over HTTPS with hot-reloaded
// certificates. The module root's main.go only calls Main.
package daemon

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// Version is stamped at build time (-ldflags -X); builds without a stamp
// report the module version recorded by the go command, else "dev".
var Version = ""

func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

const usage = `edgecert: certificates by ACME DNS-01 on Route 53, served with the whoami routes over HTTPS.

Usage:
  edgecert run [flags]          run the daemon (flags also read EDGECERT_<FLAG> variables)
  edgecert iam-policy [flags]   print the least-privilege IAM policy for the configured certificates
  edgecert bucket-policy [flags] print the fleet bucket's policy (TLS only, no unconditional lease/pointer writes)
  edgecert status [-admin-addr] show what a running daemon serves and when it renews (exit 1: needs attention)
  edgecert renew [-force] [NAME...]       renew now through the running daemon, printing the rotation (exit 0: served)
  edgecert revoke NAME -reason REASON     revoke at the CA and serve a replacement with a new key at once
  edgecert version              print the version
  edgecert help                 this text; "edgecert run -h" lists the flags
`

// Exit codes of Main.
const (
	exitOK        = 0
	exitFailure   = 1  // a runtime failure; for status: a certificate needs attention
	exitUsage     = 2  // unknown command; for status: the daemon cannot be reached
	exitBadConfig = 78 // EX_CONFIG: the unit says RestartPreventExitStatus=78, so a bad configuration is not restarted in a loop
)

// Main runs the edgecert command line with args (without the program name)
// and returns the process exit code (exitOK, exitFailure, exitUsage or
// exitBadConfig).
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "edgecert", version())
		return exitOK
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	case "status":
		return statusCommand(args[1:], stdout, stderr)
	case "renew":
		return runRenew(args[1:], stdout, stderr)
	case "revoke":
		return runRevoke(args[1:], stdout, stderr)
	case "run":
		// SIGHUP from the first instant: Go's default action is to exit, and
		// systemd counts death by SIGHUP as a clean exit (no restart). run
		// subscribes its own channel; this one covers flag parsing.
		early := make(chan os.Signal, 1)
		signal.Notify(early, syscall.SIGHUP)
		defer signal.Stop(early)
	case "iam-policy", "bucket-policy":
	default:
		fmt.Fprintf(stderr, "edgecert: unknown command %q%s\n%s", args[0], didYouMean("", args[0], commands), usage)
		return exitUsage
	}
	return configCommand(args[0], args[1:], stdout, stderr)
}

// statusCommand is `edgecert status`.
func statusCommand(args []string, stdout, stderr io.Writer) int {
	attention, err := printStatus(context.Background(), args, stdout, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case err != nil:
		fmt.Fprintf(stderr, "edgecert: %v\n", err)
		return exitUsage
	case attention:
		return exitFailure
	}
	return exitOK
}

// configCommand runs cmd (run, iam-policy, bucket-policy): the commands
// that take the daemon's flags. Bad configuration exits 78 with one line.
func configCommand(cmd string, args []string, stdout, stderr io.Writer) int {
	var pf policyFlags
	var extra []func(*flag.FlagSet)
	if cmd == "iam-policy" || cmd == "bucket-policy" {
		extra = append(extra, pf.define)
	}
	cfg, err := parseCommand("edgecert "+cmd, args, os.LookupEnv, stdout, extra...)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "edgecert: %v\n", err)
		return exitBadConfig
	}
	warnings := unknownEnv(os.Environ())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if cmd == "bucket-policy" {
		if err := printBucketPolicy(cfg, pf.partitionOrRegion(ctx), stdout); err != nil {
			fmt.Fprintf(stderr, "edgecert: %v\n", err)
			return exitFailure
		}
		return exitOK
	}
	if cmd == "iam-policy" {
		for _, w := range warnings {
			fmt.Fprintf(stderr, "edgecert: warning: %s\n", w)
		}
		if err := printIAMPolicy(ctx, cfg, pf, stdout, stderr); err != nil {
			fmt.Fprintf(stderr, "edgecert: %v\n", err)
			return exitFailure
		}
		return exitOK
	}
	log := newLogger(cfg, stderr)
	for _, w := range warnings {
		log.Warn("config.unknown_variable", "problem", w)
	}
	if err := run(ctx, cfg, log); err != nil {
		var ce *configError
		if errors.As(err, &ce) { // found at start-up: one line naming the flag
			fmt.Fprintf(stderr, "edgecert: %v\n", err)
			return exitBadConfig
		}
		log.Error("daemon.failed", "error", err)
		return exitFailure
	}
	return exitOK
}

// commands are Main's commands, for suggestions.
var commands = []string{"run", "iam-policy", "bucket-policy", "status", "renew", "revoke", "version", "help"}
