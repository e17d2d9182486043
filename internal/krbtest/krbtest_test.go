package krbtest_test

import (
	"testing"

	"github.com/jcmturner/gokrb5/v8/client"
	"github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/credentials"

	"github.com/bitsremote/bitsremote/internal/krbtest"
)

// TestRealm gets tickets from the KDC two ways, with a password through
// gokrb5 and with MIT's kinit, and checks that the service key in the
// keytab decrypts the service ticket: what a Kerberos test relies on.
func TestRealm(t *testing.T) {
	r := krbtest.Start(t)
	kt := r.AddService(t, "HTTP/localhost")
	cl := r.Login(t)
	tkt, _, err := cl.GetServiceTicket("HTTP/localhost")
	if err != nil {
		t.Fatalf("service ticket: %v", err)
	}
	if err := tkt.DecryptEncPart(krbtest.ReadKeytab(t, kt), nil); err != nil {
		t.Fatalf("the keytab does not decrypt the service ticket: %v", err)
	}
	if got := tkt.DecryptedEncPart.CName.PrincipalNameString(); got != krbtest.User {
		t.Errorf("ticket client %q, want %q", got, krbtest.User)
	}

	cfg, err := config.Load(r.Krb5Conf)
	if err != nil {
		t.Fatal(err)
	}
	bad := client.NewWithPassword(krbtest.User, r.Name, "wrong", cfg, client.DisablePAFXFAST(true))
	defer bad.Destroy()
	if err := bad.Login(); err == nil {
		t.Error("login with a wrong password succeeded")
	}

	cc, err := credentials.LoadCCache(r.Kinit(t, krbtest.User, krbtest.Password))
	if err != nil {
		t.Fatalf("kinit's cache: %v", err)
	}
	if got := cc.DefaultPrincipal.PrincipalName.PrincipalNameString(); got != krbtest.User {
		t.Errorf("cache principal %q, want %q", got, krbtest.User)
	}
}
