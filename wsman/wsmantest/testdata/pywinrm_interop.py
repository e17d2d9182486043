#!/usr/bin/python3
"""Independent client check: pywinrm (Debian python3-winrm 0.3.0) sends
hand-built WS-Management envelopes to a wsmantest server through its own
auth and MS-WSMV sealing stack, parses the replies with ElementTree, and
prints one JSON object with what it read.

usage: pywinrm_interop.py URL TRANSPORT ENCRYPTION USER PASSWORD RESOURCE_URI
"""
import json
import sys
import uuid
import xml.etree.ElementTree as ET

from winrm.exceptions import WinRMError, WinRMTransportError
from winrm.protocol import Protocol

url, transport, encryption, user, password, resource = sys.argv[1:7]

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "n": "http://schemas.xmlsoap.org/ws/2004/09/enumeration",
    "p": resource,
}
XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"


def envelope(action, selectors="", body=""):
    mid = "uuid:" + str(uuid.uuid4()).upper()
    sel = ""
    if selectors:
        sel = "<w:SelectorSet>" + "".join(
            '<w:Selector Name="%s">%s</w:Selector>' % kv for kv in selectors) + "</w:SelectorSet>"
    return mid, (
        '<s:Envelope xmlns:s="%(s)s" xmlns:a="%(a)s" xmlns:w="%(w)s" xmlns:n="%(n)s">'
        "<s:Header><a:To>%(url)s</a:To>"
        '<w:ResourceURI s:mustUnderstand="true">%(res)s</w:ResourceURI>'
        '<a:ReplyTo><a:Address s:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo>'
        '<a:Action s:mustUnderstand="true">%(action)s</a:Action>'
        '<w:MaxEnvelopeSize s:mustUnderstand="true">153600</w:MaxEnvelopeSize>'
        "<a:MessageID>%(mid)s</a:MessageID>"
        '<w:Locale xml:lang="en-US" s:mustUnderstand="false"/>'
        "<w:OperationTimeout>PT20S</w:OperationTimeout>%(sel)s</s:Header>"
        "<s:Body>%(body)s</s:Body></s:Envelope>"
    ) % dict(NS, url=url, res=resource, action=action, mid=mid, sel=sel, body=body)


def send(action, selectors="", body=""):
    mid, env = envelope(action, selectors, body)
    resp = p.send_message(env)
    if resp is None:  # pywinrm 0.3.0 returns None for a non-2xx XML reply without a fault
        raise SystemExit("send_message returned None for " + action)
    root = ET.fromstring(resp)
    relates = root.find("s:Header/a:RelatesTo", NS)
    if relates is None or relates.text != mid:
        raise SystemExit("RelatesTo mismatch for " + action)
    return root


def props(el):
    out = {}
    for c in el:
        name = c.tag.split("}")[1]
        out[name] = None if c.get(XSI_NIL) == "true" else (c.text or "")
    return out


p = Protocol(url, transport=transport, username=user, password=password,
             message_encryption=encryption, server_cert_validation="ignore",
             read_timeout_sec=30, operation_timeout_sec=20)
out = {}

root = send("http://schemas.xmlsoap.org/ws/2004/09/transfer/Get", [("Name", "w001")])
inst = root.find("s:Body/p:Widget", NS)
out["get"] = props(inst)

names = []
pulls = 0
body = "<n:Enumerate><w:OptimizeEnumeration/><w:MaxElements>32000</w:MaxElements></n:Enumerate>"
root = send("http://schemas.xmlsoap.org/ws/2004/09/enumeration/Enumerate", body=body)
resp = root.find("s:Body/n:EnumerateResponse", NS)
for it in resp.findall("w:Items/p:Widget", NS):
    names.append(props(it)["Name"])
ctx = resp.find("n:EnumerationContext", NS).text
done = resp.find("w:EndOfSequence", NS) is not None
while not done:
    root = send("http://schemas.xmlsoap.org/ws/2004/09/enumeration/Pull",
                body="<n:Pull><n:EnumerationContext>%s</n:EnumerationContext><n:MaxElements>2</n:MaxElements></n:Pull>" % ctx)
    pulls += 1
    resp = root.find("s:Body/n:PullResponse", NS)
    for it in resp.findall("n:Items/p:Widget", NS):
        names.append(props(it)["Name"])
    done = resp.find("n:EndOfSequence", NS) is not None
    if not done:
        ctx = resp.find("n:EnumerationContext", NS).text
out["enumerate"] = names
out["pulls"] = pulls

root = send(resource + "/Count", body='<p:Count_INPUT xmlns:p="%s"/>' % resource)
out["invoke"] = props(root.find("s:Body/p:Count_OUTPUT", NS))

try:
    send("http://schemas.xmlsoap.org/ws/2004/09/transfer/Get", [("Bogus", "1")])
    out["fault"] = None
except WinRMTransportError as e:
    out["fault"] = {"transport_error": e.code}
except WinRMError as e:
    # pywinrm 0.3.0 puts the parsed fault in the message text.
    text = str(e)
    out["fault"] = {
        "text": text,
        "wsmanfault_code": "'wsmanfault_code': '2150858843'" in text,
        "subcode": "'fault_subcode': 'w:InvalidSelectors'" in text,
        "code": "'fault_code': 's:Sender'" in text,
        "http": "'http_status_code': 500" in text,
    }

print(json.dumps(out, sort_keys=True))
