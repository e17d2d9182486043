#!/usr/bin/python3
"""getloop.py: the BITS job Get loop done by pywinrm, for the fleet benchmark.

Usage: getloop.py URL USER TRANSPORT ENCRYPTION N JOBID [JOBID...]

Sends N WS-Transfer Gets of BitsClientJob (cycling over the JobIds) through
pywinrm's Protocol.send_message on one kept-alive session, as Ansible's
winrm connection would, checks that every reply is a GetResponse carrying
the JobId asked for, and prints one JSON object: requests, wall and CPU
seconds (this process only; the simulated host runs elsewhere), and CPU
seconds spent before the loop (imports and the first, authenticating
request).

With N given as "-", it authenticates and then runs slices on demand: each
line read from stdin holds a count of Gets to send, and each slice prints
one such JSON object (setupCpu 0 after the first) on a line of its own.
It ends at the end of its input. The benchmark alternates these slices with
its own, so that a burst of machine noise falls on both clients alike.

The password comes from $BITSREMOTE_PASSWORD. Run with Debian's
/usr/bin/python3 (python3-winrm), OPENSSL_CONF enabling the legacy provider
for MD4, and without REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE (peers.md 1.1).
"""
import json
import os
import sys
import time
import uuid

from winrm.protocol import Protocol

RESOURCE = "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/microsoft/bits/BitsClientJob"

GET = """<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" \
xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" \
xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" \
xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd"><s:Header>\
<a:To>{url}</a:To>\
<w:ResourceURI s:mustUnderstand="true">{resource}</w:ResourceURI>\
<a:ReplyTo><a:Address s:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo>\
<a:Action s:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/09/transfer/Get</a:Action>\
<w:MaxEnvelopeSize s:mustUnderstand="true">512000</w:MaxEnvelopeSize>\
<a:MessageID>uuid:{mid}</a:MessageID>\
<w:Locale xml:lang="en-US" s:mustUnderstand="false"/>\
<p:DataLocale xml:lang="en-US" s:mustUnderstand="false"/>\
<w:OperationTimeout>PT60S</w:OperationTimeout>\
<w:SelectorSet><w:Selector Name="JobId">{job}</w:Selector></w:SelectorSet>\
</s:Header><s:Body/></s:Envelope>"""


def main():
    if len(sys.argv) < 7:
        sys.exit(__doc__)
    url, user, transport, encryption, n = sys.argv[1:6]
    jobs = sys.argv[6:]
    if n != "-":
        int(n)  # a usage error before any request
    password = os.environ.get("BITSREMOTE_PASSWORD", "")
    p = Protocol(url, transport=transport, username=user, password=password,
                 message_encryption=encryption, read_timeout_sec=70,
                 operation_timeout_sec=60, server_cert_validation="ignore")

    def get(i):
        job = jobs[i % len(jobs)]
        reply = p.send_message(GET.format(url=url, resource=RESOURCE, mid=uuid.uuid4(), job=job))
        if b"GetResponse" not in reply and b"BitsClientJob" not in reply:
            raise SystemExit("reply %d is not a GetResponse: %r" % (i, reply[:200]))
        if job.encode() not in reply:
            raise SystemExit("reply %d does not carry JobId %s" % (i, job))

    get(0)  # authenticate once, outside the measurement
    warm = time.process_time()
    done = 0

    def loop(count, setup):
        nonlocal done
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(done, done + count):
            get(i)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        done += count
        print(json.dumps({"client": "pywinrm", "transport": transport, "encryption": encryption,
                          "requests": count, "wall": wall, "cpu": cpu, "setupCpu": setup}), flush=True)

    if n != "-":
        loop(int(n), warm)
        return
    for line in sys.stdin:
        loop(int(line), warm if done == 0 else 0)


if __name__ == "__main__":
    main()
