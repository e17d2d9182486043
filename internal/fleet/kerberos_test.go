package fleet

import (
	"strings"
	"testing"

	"github.com/bitsremote/bitsremote/internal/krbtest"
	"github.com/bitsremote/bitsremote/wsman/transport"
)

// TestKerberosAccount: a Kerberos connection records the principal it
// logs in as, user@REALM, however -u spelled it, and the ticket cache's
// principal when there is no -u: a run made with kinit's cache must not
// record no account, or a later command with another user's cache, who
// cannot see the run's jobs, would record them gone.
func TestKerberosAccount(t *testing.T) {
	r := krbtest.Start(t)
	r.AddUser(t, "alice", "Alice-Pw-1")
	r.AddUser(t, "bob", "Bob-Pw-1")
	aliceCache, bobCache := r.Kinit(t, "alice", "Alice-Pw-1"), r.Kinit(t, "bob", "Bob-Pw-1")
	krb := func(user, password, ccache string) transport.Config {
		return transport.Config{Auth: transport.AuthKerberos, User: user, Password: password, Krb5Conf: r.Krb5Conf, KrbCCache: ccache}
	}
	host := mustHost(t, "https://server1.bitsremote.test:5986")
	for _, tc := range []struct {
		name string
		cfg  transport.Config
		want string
	}{
		{"password, user in the default realm", krb("alice", "Alice-Pw-1", ""), "alice@" + r.Name},
		{"password, realm in lower case", krb("alice@"+strings.ToLower(r.Name), "Alice-Pw-1", ""), "alice@" + r.Name},
		{"ticket cache without -u", krb("", "", aliceCache), "alice@" + r.Name},
		{"ticket cache with -u", krb("alice", "", aliceCache), "alice@" + r.Name},
		{"another user's ticket cache", krb("", "", bobCache), "bob@" + r.Name},
		{"no cache to read: -u as given", krb("alice", "", t.TempDir()+"/none"), "alice"},
		{"ntlm is unchanged", transport.Config{Auth: transport.AuthNTLM, User: `CORP\alice`, Password: "pw"}, `CORP\alice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := (&Connector{Base: tc.cfg}).Connect(host)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Record().Account; got != tc.want {
				t.Errorf("account %q, want %q", got, tc.want)
			}
		})
	}

	// A run recorded by alice's cache is not looked for as bob.
	alice, err := (&Connector{Base: krb("", "", aliceCache)}).Connect(host)
	if err != nil {
		t.Fatal(err)
	}
	bob, err := (&Connector{Base: krb("", "", bobCache)}).Connect(host)
	if err != nil {
		t.Fatal(err)
	}
	e := &Entry{JobID: "{0BADC0DE-0000-4000-8000-000000000001}", Endpoint: alice.Record()}
	hr := &hostRun{c: bob}
	err = hr.reachedAsRecorded(e, errNotFoundForTest)
	want := "job {0BADC0DE-0000-4000-8000-000000000001}: not found; not recorded as finished, because the run authenticated as alice@" + r.Name +
		", and this command as bob@" + r.Name + ", who may not see the run's jobs (look for it as the run did, or drop the run with 'bitsremote ledger prune --unfinished')"
	if err == nil || err.Error() != want {
		t.Errorf("bob looking for alice's job: %v, want %q", err, want)
	}
	if err := (&hostRun{c: alice}).reachedAsRecorded(e, errNotFoundForTest); err != nil {
		t.Errorf("alice looking for her own job: %v", err)
	}
}

type notFoundForTest struct{}

func (notFoundForTest) Error() string { return "not found" }

var errNotFoundForTest error = notFoundForTest{}
