package bitssim

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"

	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

// NewFileServer serves dir over HTTP on loopback, with Range support, as
// the remote side of download jobs. Close it when done.
func NewFileServer(dir string) *httptest.Server {
	return httptest.NewServer(http.FileServer(http.Dir(dir)))
}

// startOn starts srv on addr, or on its own free loopback port when addr
// is empty.
func startOn(srv *httptest.Server, addr string) error {
	if addr != "" {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		srv.Listener.Close()
		srv.Listener = l
	}
	srv.Start()
	return nil
}

// HostConfig configures a simulated Windows host.
type HostConfig struct {
	// Server configures the WS-Management endpoint (auth, users, machine).
	Server wsmantest.Config
	// TLS serves HTTPS instead of HTTP.
	TLS bool
	// Provider configures the BITS provider (time scale, slots).
	Provider Config
	// FilesDir, if set, is served by a file server for downloads.
	FilesDir string
	// UploadDir, if set, receives BITS uploads.
	UploadDir string
	// FilesAddr and UploadAddr are where the file and upload servers
	// listen (default: any free loopback port). A host restarted on a
	// Provider.StateDir gives the same ones, so that the URLs its jobs
	// hold still lead somewhere.
	FilesAddr, UploadAddr string
	// FeatureNotInstalled simulates a host without the BITS-Compact-Server
	// feature: BitsClientJob answers WBEM_E_INVALID_NAMESPACE until the
	// feature is installed through the shell (Install-WindowsFeature) or
	// SetProviderInstalled.
	FeatureNotInstalled bool
}

// Host is a simulated Windows host with the BITS provider: a WS-Management
// endpoint serving BitsClientJob, the WinRS shell and WinRM's
// winrm/config/Listener configuration, and optionally a file server to
// download from and an upload server to upload to, all on loopback.
type Host struct {
	// Server is the WS-Management endpoint; URL is its address
	// (http://127.0.0.1:port/wsman).
	Server *wsmantest.Server
	URL    string
	// Provider is the BITS provider behind the endpoint.
	Provider *Provider
	// Files serves HostConfig.FilesDir; FilesURL is its base URL ("" if none).
	Files    *httptest.Server
	FilesURL string
	// Uploads receives uploads into HostConfig.UploadDir; UploadURL is its
	// base URL ("" if none).
	Uploads   *UploadServer
	UploadURL string
	// Shell is the host's WinRS remote shell; it answers the PowerShell
	// scripts of bitsremote's host check and prepare.
	Shell *wsmantest.Shell

	featMu    sync.Mutex
	installed bool
}

// NewHost starts a simulated host. Close it when done.
func NewHost(cfg HostConfig) (*Host, error) {
	prov, err := Open(cfg.Provider)
	if err != nil {
		return nil, fmt.Errorf("bitssim: start host: %w", err)
	}
	srv, err := wsmantest.New(cfg.Server)
	if err != nil {
		_ = prov.Close()
		return nil, fmt.Errorf("bitssim: start host: %w", err)
	}
	h := &Host{Server: srv, Provider: prov}
	h.SetProviderInstalled(!cfg.FeatureNotInstalled)
	h.Shell = wsmantest.NewShell(h.runShell)
	srv.Handle(wsmantest.ShellResourceURI, h.Shell)
	srv.Handle(ListenerURI, newListeners())
	if cfg.TLS {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	h.URL = srv.URL
	if cfg.FilesDir != "" {
		files := httptest.NewUnstartedServer(http.FileServer(http.Dir(cfg.FilesDir)))
		if err := startOn(files, cfg.FilesAddr); err != nil {
			files.Close()
			h.Close()
			return nil, fmt.Errorf("bitssim: start file server: %w", err)
		}
		h.Files, h.FilesURL = files, files.URL
	}
	if cfg.UploadDir != "" {
		up := newUploadServer(cfg.UploadDir)
		if err := startOn(up.Server, cfg.UploadAddr); err != nil {
			up.Close()
			h.Close()
			return nil, fmt.Errorf("bitssim: start upload server: %w", err)
		}
		h.Uploads, h.UploadURL = up, up.URL
	}
	return h, nil
}

// Close stops the endpoint, the transfers and the file servers.
func (h *Host) Close() {
	h.Server.Close()
	h.Shell.Close()
	_ = h.Provider.Close()
	if h.Files != nil {
		h.Files.Close()
	}
	if h.Uploads != nil {
		h.Uploads.Close()
	}
}
