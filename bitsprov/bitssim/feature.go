package bitssim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

// The PowerShell scripts a simulated host understands, exactly: those
// bitsremote's host check and prepare send (internal/hostcheck). Anything
// else fails as an unknown command would, so that a changed script shows
// up in tests instead of being answered by a guess.
const (
	scriptOS      = `Get-CimInstance -ClassName Win32_OperatingSystem | Select-Object Caption,Version,BuildNumber | ConvertTo-Json -Compress`
	scriptFeature = `Get-WindowsFeature -Name BITS-Compact-Server | Select-Object Name,DisplayName,Installed,@{Name='InstallState';Expression={[string]$_.InstallState}} | ConvertTo-Json -Compress`
	scriptInstall = `Install-WindowsFeature -Name BITS-Compact-Server | Select-Object Success,@{Name='RestartNeeded';Expression={[string]$_.RestartNeeded}},@{Name='ExitCode';Expression={[string]$_.ExitCode}} | ConvertTo-Json -Compress`
)

// progressPrefix is what masterzen/winrm (and so our shell package) puts
// before every script.
const progressPrefix = "$ProgressPreference = 'SilentlyContinue';"

// missingProvider answers every request to BitsClientJob as WMI does when
// the root\microsoft\bits namespace does not exist.
//
// Which code: the namespace is registered by the provider's MOF when the
// BITS Compact Server feature is installed (bits-provider.md §1.1), so on
// a host without the feature it is the namespace that is missing, not a
// class in an existing namespace: WBEM_E_INVALID_NAMESPACE 0x8004100E,
// not WBEM_E_INVALID_CLASS 0x80041010 (bits-provider.md §4.8). The shape
// is that of a WMI failure before any provider is reached: w:InternalError
// (Receiver) whose WSManFault and nested WMI Provider fault carry the
// HRESULT and WMI's text "Invalid namespace " (wsman-wire.md §2.2 detail
// variant 2, as fault-w-InternalError-providerfault-win32-error.xml), and
// no __ExtendedStatus, which WMI could only build inside the namespace.
// Exactly what Windows sends here is not captured (bits-provider.md §5.6).
type missingProvider struct{}

const codeInvalidNamespace uint32 = 0x8004100E

func faultInvalidNamespace() *wsman.Fault {
	f := wsmantest.FaultInternalError("Invalid namespace ", codeInvalidNamespace)
	f.ProviderFault.WSManCode = codeInvalidNamespace
	return f
}

func (missingProvider) Get(context.Context, *wsmantest.Request) (*wsman.Instance, error) {
	return nil, faultInvalidNamespace()
}

func (missingProvider) Put(context.Context, *wsmantest.Request, *wsman.Instance) (*wsman.Instance, error) {
	return nil, faultInvalidNamespace()
}

func (missingProvider) Invoke(context.Context, *wsmantest.Request, string, *wsman.Instance) (*wsman.Instance, error) {
	return nil, faultInvalidNamespace()
}

func (missingProvider) Enumerate(context.Context, *wsmantest.EnumerateRequest) ([]*wsman.Instance, error) {
	return nil, faultInvalidNamespace()
}

// ProviderInstalled reports whether the BITS-Compact-Server feature, and
// with it the BITS provider, is installed on the simulated host.
func (h *Host) ProviderInstalled() bool {
	h.featMu.Lock()
	defer h.featMu.Unlock()
	return h.installed
}

// SetProviderInstalled installs or removes the BITS-Compact-Server
// feature: without it BitsClientJob answers WBEM_E_INVALID_NAMESPACE.
// The job queue is kept either way.
func (h *Host) SetProviderInstalled(on bool) {
	h.featMu.Lock()
	defer h.featMu.Unlock()
	h.installed = on
	if on {
		h.Server.Handle(ResourceURI, h.Provider)
	} else {
		h.Server.Handle(ResourceURI, missingProvider{})
	}
}

// osInfo derives the OS from the endpoint's ProductVersion ("OS:
// 10.0.20348 SP: 0.0 Stack: 3.0"), so that Identify and the shell agree.
func (h *Host) osInfo() map[string]string {
	version := "10.0.20348"
	if f := strings.Fields(h.Server.Config().ProductVersion); len(f) >= 2 && f[0] == "OS:" {
		version = f[1]
	}
	build := version[strings.LastIndexByte(version, '.')+1:]
	caption := map[string]string{
		"10.0.26100": "Microsoft Windows Server 2025 Datacenter",
		"10.0.20348": "Microsoft Windows Server 2022 Datacenter",
		"10.0.17763": "Microsoft Windows Server 2019 Datacenter",
		"10.0.14393": "Microsoft Windows Server 2016 Datacenter",
		"6.3.9600":   "Microsoft Windows Server 2012 R2 Datacenter",
	}[version]
	if caption == "" {
		caption = "Microsoft Windows Server"
	}
	return map[string]string{"Caption": caption, "Version": version, "BuildNumber": build}
}

// runShell answers the host's WinRS commands: the scripts above through
// powershell.exe -EncodedCommand, with their output as ConvertTo-Json
// -Compress prints it.
func (h *Host) runShell(ctx context.Context, cmd *wsmantest.Command, stdout, stderr io.Writer) int {
	script, ok := cmd.PowerShell()
	if !ok {
		name := strings.Fields(cmd.Line + " x")[0]
		fmt.Fprintf(stderr, "'%s' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n", name)
		return 9009
	}
	script = strings.TrimSpace(strings.TrimPrefix(script, progressPrefix))
	writeJSON := func(v any) int {
		b, _ := json.Marshal(v)
		fmt.Fprintf(stdout, "%s\r\n", b)
		return 0
	}
	switch script {
	case scriptOS:
		o := h.osInfo()
		return writeJSON(struct{ Caption, Version, BuildNumber string }{o["Caption"], o["Version"], o["BuildNumber"]})
	case scriptFeature:
		installed := h.ProviderInstalled()
		state := "Available"
		if installed {
			state = "Installed"
		}
		return writeJSON(struct {
			Name, DisplayName string
			Installed         bool
			InstallState      string
		}{"BITS-Compact-Server", "Compact Server", installed, state})
	case scriptInstall:
		code := "NoChangeNeeded"
		if !h.ProviderInstalled() {
			h.SetProviderInstalled(true)
			code = "Success"
		}
		return writeJSON(struct {
			Success       bool
			RestartNeeded string
			ExitCode      string
		}{true, "No", code})
	}
	// What powershell.exe prints, as CLIXML on a redirected stderr, for a
	// script it cannot run.
	word := strings.Fields(script + " x")[0]
	msg := word + " : The term '" + word + "' is not recognized as the name of a cmdlet, function, script file, or operable program."
	fmt.Fprintf(stderr, "#< CLIXML\r\n<Objs Version=\"1.1.0.1\" xmlns=\"http://schemas.microsoft.com/powershell/2004/04\"><S S=\"Error\">%s_x000D__x000A_</S></Objs>", xmlEscape(msg))
	return 1
}

func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&apos;").Replace(s)
}
