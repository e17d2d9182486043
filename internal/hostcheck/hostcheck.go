// Package hostcheck tells whether a Windows host can run our BITS jobs, and
// makes it able to: the logic of "bitsremote host check" and "host
// prepare".
//
// A host is ready when WinRM answers, our credentials are accepted and the
// BITS provider (WMI namespace root\microsoft\bits) is there. The provider
// exists only where the BITS Compact Server feature is installed
// (bits-provider.md §1.1), which the WinRS remote shell can check and
// install with the ServerManager cmdlets; the shell also reports the OS.
package hostcheck

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/bitsremote/bitsremote/bitsprov"
	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/shell"
	"github.com/bitsremote/bitsremote/wsman/transport"
)

// FeatureName is the Windows Server feature that brings the BITS provider.
const FeatureName = "BITS-Compact-Server"

// The PowerShell scripts the check and prepare send, and nothing else.
// Enums are cast to strings because ConvertTo-Json writes them as numbers;
// ConvertTo-Json and Install-WindowsFeature need Windows Server 2012
// (PowerShell 3) or later.
const (
	ScriptOS      = `Get-CimInstance -ClassName Win32_OperatingSystem | Select-Object Caption,Version,BuildNumber | ConvertTo-Json -Compress`
	ScriptFeature = `Get-WindowsFeature -Name BITS-Compact-Server | Select-Object Name,DisplayName,Installed,@{Name='InstallState';Expression={[string]$_.InstallState}} | ConvertTo-Json -Compress`
	ScriptInstall = `Install-WindowsFeature -Name BITS-Compact-Server | Select-Object Success,@{Name='RestartNeeded';Expression={[string]$_.RestartNeeded}},@{Name='ExitCode';Expression={[string]$_.ExitCode}} | ConvertTo-Json -Compress`
)

// probeJobID is a JobId no job has: a Get of it answers "not found" where
// the provider is installed and "invalid namespace" where it is not, in
// one small round trip whatever the size of the job queue.
const probeJobID = "{00000000-0000-0000-0000-000000000000}"

// Feature is the BITS-Compact-Server feature as Get-WindowsFeature sees it.
type Feature struct {
	Name         string `json:"name"`
	DisplayName  string `json:"displayName"`
	Installed    bool   `json:"installed"`
	InstallState string `json:"installState"`
}

// OS is the host's operating system (Win32_OperatingSystem).
type OS struct {
	Caption     string `json:"caption"`
	Version     string `json:"version"`
	BuildNumber string `json:"buildNumber"`
}

// Encryption values of Report.Encryption.
const (
	EncryptionTLS     = "tls"     // https://
	EncryptionMessage = "message" // NTLM message encryption over http://
	EncryptionNone    = "none"    // plain http: Basic, or NTLM without sealing
	EncryptionUnknown = "unknown" // the transport does not say
)

// Report is what a check found on one host. Pointers are null in JSON when
// the check could not tell (a host that refused our credentials has no
// known provider state).
type Report struct {
	Host string `json:"host"`
	// Ready says BITS jobs can run: reachable, authenticated, provider there.
	Ready     bool `json:"ready"`
	Reachable bool `json:"reachable"`
	// Auth says the host accepted our credentials.
	Auth bool `json:"auth"`
	// Encryption says how the traffic is protected: tls, message, none.
	Encryption        string   `json:"encryption"`
	ProviderInstalled *bool    `json:"providerInstalled"`
	Feature           *Feature `json:"feature"`
	OS                *OS      `json:"os"`
	// Problems says, in words, what stands in the way or could not be
	// checked; empty on a ready host checked in full.
	Problems []string `json:"problems"`

	// Err is what made the host not ready when it was an error rather
	// than a finding: the connection, authentication or fault, for the
	// caller's exit code. Nil on a ready host and on one that only lacks
	// the provider.
	Err error `json:"-"`
}

func (r *Report) problem(format string, a ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, a...))
}

// Check inspects the host behind c. Failures are findings in the report,
// not errors: every step that can run does.
func Check(ctx context.Context, host string, c *wsman.Client) *Report {
	r := &Report{Host: host, Encryption: encryption(c), Problems: []string{}}
	// 1. WinRM answers at all (an anonymous Identify needs no credentials).
	if _, err := c.Identify(ctx); err != nil {
		var he *wsman.HTTPError
		var f *wsman.Fault
		if !errors.As(err, &he) && !errors.As(err, &f) {
			r.problem("WinRM is not reachable: %v", err)
			r.Err = err
			return r
		}
		// It answered HTTP, only not to an anonymous Identify (some
		// listeners require authentication for it).
	}
	r.Reachable = true

	// 2. Our credentials work and the BITS provider is there.
	_, err := bitsprov.NewClient(c).Job(ctx, probeJobID)
	switch {
	case err == nil, errors.Is(err, bitsprov.ErrNotFound):
		r.Auth = true
		r.ProviderInstalled = ptr(true)
	case errors.Is(err, bitsprov.ErrProviderMissing):
		r.Auth = true
		r.ProviderInstalled = ptr(false)
		r.problem("the BITS provider (WMI namespace root\\microsoft\\bits) is missing: the %s feature is not installed; 'bitsremote host prepare --yes' installs it", FeatureName)
	case errors.Is(err, wsman.ErrAuth) || errors.Is(err, transport.ErrAuthentication):
		r.problem("authentication failed: %v", err)
		r.Err = err
		return r
	case isAccessDenied(err):
		// Authenticated, but not allowed: the provider and the shell
		// serve only administrators.
		r.Auth = true
		r.problem("access denied: the user must be an administrator of the host: %v", err)
		r.Err = err
		return r
	default:
		var f *wsman.Fault
		if errors.As(err, &f) {
			// The host answered with a fault: we are authenticated.
			r.Auth = true
		}
		r.problem("cannot tell whether the BITS provider is installed: %v", err)
		r.Err = err
	}
	if r.Encryption == EncryptionNone {
		r.problem("traffic to this host is not encrypted (use --https or NTLM message encryption)")
	}

	// 3. Through the shell: the OS and the feature's state.
	if r.Auth {
		checkShell(ctx, c, r)
	}
	r.Ready = r.Reachable && r.Auth && r.ProviderInstalled != nil && *r.ProviderInstalled
	return r
}

func checkShell(ctx context.Context, c *wsman.Client, r *Report) {
	var osInfo OS
	if err := runJSON(ctx, c, ScriptOS, &osInfo); err != nil {
		r.problem("remote shell: cannot read the OS version: %v", err)
		return // the shell itself fails; the feature query would too
	} else if osInfo != (OS{}) {
		r.OS = &osInfo
	}
	var ft Feature
	if err := runJSON(ctx, c, ScriptFeature, &ft); err != nil {
		if errors.Is(err, errNoOutput) {
			r.problem("the %s feature does not exist on this edition of Windows (Get-WindowsFeature knows no such feature)", FeatureName)
			return
		}
		r.problem("remote shell: cannot read the %s feature: %v", FeatureName, err)
		return
	}
	r.Feature = &ft
	if ft.Installed && r.ProviderInstalled != nil && !*r.ProviderInstalled {
		r.problem("the %s feature is installed (%s) but the provider is missing: a restart may be pending", FeatureName, ft.InstallState)
	}
}

// errNoOutput is a script that printed nothing: for Get-WindowsFeature, a
// feature name the edition does not know.
var errNoOutput = errors.New("the script printed nothing")

// ScriptError is a PowerShell script that ran and failed (exit code not 0).
type ScriptError struct {
	Host     string
	Script   string
	ExitCode int
	// Message is the error PowerShell printed, without CLIXML markup.
	Message string
}

func (e *ScriptError) Error() string {
	cmd := e.Script
	if i := strings.IndexByte(cmd, ' '); i > 0 {
		cmd = cmd[:i]
	}
	msg := e.Message
	if msg == "" {
		msg = "no error text"
	}
	return fmt.Sprintf("%s: %s exited with %d: %s", e.Host, cmd, e.ExitCode, msg)
}

// runJSON runs script and decodes its stdout, one JSON object, into v.
func runJSON(ctx context.Context, c *wsman.Client, script string, v any) error {
	stdout, stderr, code, err := shell.RunPowerShell(ctx, c, script)
	if err != nil {
		return err
	}
	if code != 0 {
		return &ScriptError{Host: hostName(c), Script: script, ExitCode: code, Message: CleanError(stderr)}
	}
	out := strings.TrimSpace(stdout)
	if out == "" {
		return errNoOutput
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		return fmt.Errorf("%s: unexpected output of %q: %w", hostName(c), firstWord(script), err)
	}
	return nil
}

func firstWord(s string) string {
	if i := strings.IndexByte(s, ' '); i > 0 {
		return s[:i]
	}
	return s
}

// InstallResult is what Install-WindowsFeature answered.
type InstallResult struct {
	Success       bool   `json:"success"`
	RestartNeeded string `json:"restartNeeded"`
	ExitCode      string `json:"exitCode"`
}

// PrepareReport is what prepare did on one host.
type PrepareReport struct {
	Host string `json:"host"`
	// Before is the check before any change.
	Before *Report `json:"before"`
	// Action is what prepare runs or would run ("" when the host is ready
	// or cannot be prepared by us).
	Action string `json:"action,omitempty"`
	// DryRun says Action was not run (no --yes).
	DryRun bool `json:"dryRun"`
	// Install is Install-WindowsFeature's answer, when it ran.
	Install *InstallResult `json:"install,omitempty"`
	// After is the check after installing (nil when nothing ran).
	After *Report `json:"after,omitempty"`
	// Err is why prepare failed, if it did (not in JSON: the reports and
	// Problems say it).
	Err error `json:"-"`
}

// Final is the last check: After when prepare installed, else Before.
func (p *PrepareReport) Final() *Report {
	if p.After != nil {
		return p.After
	}
	return p.Before
}

// Prepare checks the host and, when the BITS provider is missing, installs
// the feature through the shell (only with yes; otherwise it says what it
// would run), then checks again.
func Prepare(ctx context.Context, host string, c *wsman.Client, yes bool) *PrepareReport {
	p := &PrepareReport{Host: host, Before: Check(ctx, host, c)}
	b := p.Before
	if b.Ready || !b.Auth || b.ProviderInstalled == nil || *b.ProviderInstalled {
		// Ready, or blocked by something installing cannot fix.
		return p
	}
	p.Action = ScriptInstall
	if !yes {
		p.DryRun = true
		return p
	}
	var res InstallResult
	if err := runJSON(ctx, c, ScriptInstall, &res); err != nil {
		p.Err = fmt.Errorf("install %s on %s: %w", FeatureName, host, err)
		b.problem("installing %s failed: %v", FeatureName, err)
		return p
	}
	p.Install = &res
	p.After = Check(ctx, host, c)
	if !res.Success {
		p.After.problem("Install-WindowsFeature reported no success (exit code %s)", res.ExitCode)
	}
	if res.RestartNeeded == "Yes" {
		p.After.problem("Windows asks for a restart to finish installing %s", FeatureName)
	}
	return p
}

// CleanError turns what powershell.exe wrote on stderr into plain text.
// Run non-interactively with -EncodedCommand it writes its error records
// as CLIXML ("#< CLIXML" then <Objs><S S="Error">…</S></Objs>), with line
// breaks escaped as _x000D__x000A_; pywinrm's run_ps cleans it the same way.
func CleanError(stderr string) string {
	s := strings.TrimSpace(stderr)
	rest, ok := strings.CutPrefix(s, "#< CLIXML")
	if !ok {
		return s
	}
	var parts []string
	for {
		i := strings.Index(rest, `<S S="Error">`)
		if i < 0 {
			break
		}
		rest = rest[i+len(`<S S="Error">`):]
		j := strings.Index(rest, "</S>")
		if j < 0 {
			break
		}
		parts = append(parts, rest[:j])
		rest = rest[j+4:]
	}
	if len(parts) == 0 {
		return s
	}
	text := xmlUnescape(strings.Join(parts, ""))
	text = strings.NewReplacer("_x000D_", "", "_x000A_", "\n").Replace(text)
	return strings.Join(strings.Fields(text), " ")
}

func xmlUnescape(s string) string {
	return strings.NewReplacer("&lt;", "<", "&gt;", ">", "&quot;", `"`, "&apos;", "'", "&amp;", "&").Replace(s)
}

// isAccessDenied reports E_ACCESSDENIED and WBEM_E_ACCESS_DENIED faults.
func isAccessDenied(err error) bool {
	var f *wsman.Fault
	return errors.As(err, &f) && (f.Subcode == "AccessDenied" || f.WSManCode == wsman.CodeAccessDenied || f.WSManCode == 0x80041003)
}

// encryption says how traffic to c is protected.
func encryption(c *wsman.Client) string {
	if u, err := url.Parse(c.Endpoint); err == nil && strings.EqualFold(u.Scheme, "https") {
		return EncryptionTLS
	}
	conf, known := transport.IsConfidential(c.Transport, c.Endpoint)
	switch {
	case !known:
		return EncryptionUnknown
	case conf:
		return EncryptionMessage
	}
	return EncryptionNone
}

func hostName(c *wsman.Client) string {
	if c.Host != "" {
		return c.Host
	}
	if u, err := url.Parse(c.Endpoint); err == nil && u.Host != "" {
		return u.Host
	}
	return c.Endpoint
}

func ptr[T any](v T) *T { return &v }
