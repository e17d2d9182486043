// Package cli is the bitsremote command line: one file per command, each
// with an options struct, a NewCmdX constructor that wires cobra flags into
// it, and a plain run function that takes its streams, clock and clients
// from a Factory so tests run commands in-process without a network.
//
// The package holds no XML and no protocol logic: it parses flags, picks
// hosts, calls wsman and bitsprov, and renders their answers.
package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

const exitCodeHelp = `Exit codes:
  0  success
  1  the operation ran but a job ended in error or was cancelled
  2  usage or bad input (flags, arguments, files), found before any host is contacted
  3  authentication or authorization (bad password, access denied)
  4  connection, TLS or timeout
  5  a fault from the host (including an unknown job id and a BITS error code
     returned by a provider method)
With several hosts every host's result is printed and the highest code wins.`

// NewCmdRoot builds the bitsremote command tree on f.
func NewCmdRoot(f *Factory) *cobra.Command {
	root := &cobra.Command{
		Use:   "bitsremote",
		Short: "Run Windows BITS jobs remotely over WS-Management",
		Long: `bitsremote starts, watches and finishes BITS downloads and uploads on Windows
hosts from Linux and macOS, through the WMI BITS provider over WinRM
(wmi/root/microsoft/bits/BitsClientJob), the way PowerShell's
Invoke-WSManAction and Get-WSManInstance do.

Try it without a Windows host:

  bitsremote demo

Passwords come from --password-file, $BITSREMOTE_PASSWORD, or a prompt on a
terminal; never from a flag value. Hosts with their own passwords (LAPS) take
them from --password-map FILE.

` + exitCodeHelp,
		Example: `  bitsremote demo
  export BITSREMOTE_PASSWORD=...
  bitsremote transfer https://files.example.com/a.iso 'C:\Data\a.iso' -H server1 -u 'CORP\admin'
  bitsremote list --inventory hosts.txt -u 'CORP\admin' -o jsonl`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return f.Conn.checkOutput()
		},
	}
	root.SetIn(f.IO.In)
	root.SetOut(f.IO.Out)
	root.SetErr(f.IO.ErrOut)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &UsageError{Err: err, showHelp: true}
	})
	f.addConnFlags(root)

	root.AddGroup(
		&cobra.Group{ID: "jobs", Title: "BITS jobs:"},
		&cobra.Group{ID: "other", Title: "Other commands:"},
	)
	for _, c := range []*cobra.Command{
		NewCmdCreate(f), NewCmdGet(f), NewCmdList(f),
		NewCmdSetState(f, "resume"), NewCmdSetState(f, "suspend"), NewCmdSetState(f, "cancel"), NewCmdSetState(f, "complete"),
		NewCmdPriority(f), NewCmdAddFile(f), NewCmdError(f), NewCmdSetCredentials(f), NewCmdSetProxy(f),
		NewCmdWait(f), NewCmdTransfer(f), NewCmdImportCSV(f),
	} {
		c.GroupID = "jobs"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{NewCmdWSMan(f), NewCmdHost(f), NewCmdLedger(f), NewCmdDemo(f), NewCmdSim(f), NewCmdCompletion(f)} {
		c.GroupID = "other"
		root.AddCommand(c)
	}
	root.SetHelpCommandGroupID("other")
	root.SetCompletionCommandGroupID("other")
	return root
}

// Execute runs the command line args and returns the exit code, printing
// any error on stderr.
func Execute(ctx context.Context, f *Factory, args []string) int {
	root := NewCmdRoot(f)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	code := ExitCode(err)
	if code == ExitJobFailed && !errors.As(err, new(*JobFailedError)) && isCobraUsageError(err) {
		code = ExitUsage
	}
	msg := err.Error()
	f.IO.Warnf("bitsremote: %s", msg)
	if code == ExitUsage && cmd != nil && wantsHelpHint(err) {
		f.IO.Warnf("Run '%s --help' for usage.", cmd.CommandPath())
	}
	return code
}

// isCobraUsageError recognises the errors cobra itself returns for an
// unknown command or a bad argument count, which carry no type.
func isCobraUsageError(err error) bool {
	var ue *UsageError
	if errors.As(err, &ue) {
		return true
	}
	s := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "accepts ", "requires at least", "invalid argument", "flag needs an argument", "unknown help topic"} {
		if strings.HasPrefix(s, p) || strings.Contains(s, " "+p) {
			return true
		}
	}
	return false
}

// wantsHelpHint reports errors about the command line's shape, after
// which pointing at --help helps.
func wantsHelpHint(err error) bool {
	var ue *UsageError
	if errors.As(err, &ue) {
		return ue.showHelp
	}
	return isCobraUsageError(err)
}

// argError is a usage error about positional arguments.
func argError(format string, a ...any) error {
	return &UsageError{Err: fmt.Errorf(format, a...), showHelp: true}
}

// exactArgs checks the positional arguments by name, as a usage error.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != len(names) {
			return argError("%s takes %d argument(s): %s; got %d", cmd.CommandPath(), len(names), strings.Join(names, " "), len(args))
		}
		for i, a := range args {
			if strings.TrimSpace(a) == "" {
				return usageErrorf("%s: %s is empty", cmd.CommandPath(), names[i])
			}
		}
		return nil
	}
}

// minArgs checks that at least n positional arguments are given.
func minArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return argError("%s needs %s", cmd.CommandPath(), what)
		}
		return nil
	}
}

// noArgs refuses positional arguments.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return argError("%s takes no arguments; got %q", cmd.CommandPath(), args)
	}
	return nil
}

// checkJobID rejects what cannot be a JobId before any host is asked: an
// unknown but well-formed id is the host's answer to give (exit 5).
func checkJobID(id string) error {
	s := strings.TrimSpace(id)
	s = strings.TrimSuffix(strings.TrimPrefix(s, "{"), "}")
	if len(s) != 36 {
		return usageErrorf("job id %q is not a GUID like {A1B2C3D4-0000-0000-0000-000000000000}", id)
	}
	for i, r := range s {
		switch i {
		case 8, 13, 18, 23:
			if r != '-' {
				return usageErrorf("job id %q is not a GUID like {A1B2C3D4-0000-0000-0000-000000000000}", id)
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
				return usageErrorf("job id %q is not a GUID like {A1B2C3D4-0000-0000-0000-000000000000}", id)
			}
		}
	}
	return nil
}

// normalizeJobID adds the braces the provider writes JobIds with, so
// that ids copied from PowerShell's BitsJob display (no braces) work.
func normalizeJobID(id string) string {
	s := strings.TrimSpace(id)
	if !strings.HasPrefix(s, "{") {
		s = "{" + s + "}"
	}
	return s
}
