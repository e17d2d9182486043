#!/usr/bin/python3
# pywinrm_sealed.py URL USER PASSWORD COUNT
#
# Drives pywinrm's NTLM + message-encryption stack (transport='ntlm',
# message_encryption='always') against a test server, for the interop test
# in ../interop_test.go. Prints one JSON object per line:
#   {"i": n, "reply": "<decrypted reply>"}      for each Echo message
#   {"i": n, "fault": "<pywinrm error text>"}   when the reply is a fault
#   {"wrong_password": "<exception class>"}     for a logon with a bad password
import json
import sys

from winrm.exceptions import InvalidCredentialsError, WinRMError
from winrm.protocol import Protocol

url, user, password, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

ENVELOPE = ('<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
            'xmlns:p="urn:bitsremote:test"><s:Header/><s:Body><p:Echo>{kind} {i}</p:Echo>'
            '</s:Body></s:Envelope>')


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


p = Protocol(url, transport="ntlm", username=user, password=password,
             message_encryption="always", read_timeout_sec=30, operation_timeout_sec=20)
for i in range(count):
    kind = "fault" if i == count - 1 else "echo"
    try:
        resp = p.send_message(ENVELOPE.format(kind=kind, i=i))
        if resp is None:
            out({"i": i, "error": "send_message returned None"})
        else:
            out({"i": i, "reply": resp.decode("utf-8")})
    except WinRMError as e:
        out({"i": i, "fault": str(e)})

bad = Protocol(url, transport="ntlm", username=user, password=password + "-wrong",
               message_encryption="always", read_timeout_sec=30, operation_timeout_sec=20)
try:
    bad.send_message(ENVELOPE.format(kind="echo", i=99))
    out({"wrong_password": "accepted"})
except InvalidCredentialsError as e:
    out({"wrong_password": type(e).__name__})
except Exception as e:  # noqa: BLE001 - report whatever happened
    out({"wrong_password": "%s: %s" % (type(e).__name__, e)})
