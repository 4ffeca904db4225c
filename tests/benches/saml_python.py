#!/usr/bin/python3
"""The SAML bench's helper, on Debian's python3-onelogin-saml2 (python3-saml) and python3-xmlsec.

  saml_python.py prepare KEY CERT N < response.xml > responses.txt
      N copies of a real IdP response with fresh Response/Assertion IDs and times (IssueInstant now,
      NotBefore now-30s, NotOnOrAfter now+15m), each signed again (Assertion, then Response) with
      KEY/CERT as the IdP signs; one base64 SAMLResponse per line.

  saml_python.py verify SP_ENTITY ACS IDP_ENTITY IDP_CERT PROCS < responses.txt
      The platform's engine on the same responses: OneLogin_Saml2_Response(settings, b64).is_valid()
      (strict, signed messages and assertions wanted), in PROCS worker processes. Prints
      "<responses/s> <valid> <total> <CPU ms per response>" (the workers' user + system time).
"""
import base64
import datetime
import multiprocessing
import re
import sys
import time
import uuid

import xmlsec
from lxml import etree

DS = "http://www.w3.org/2000/09/xmldsig#"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"


def sign(elem, key):
    sig = xmlsec.template.create(elem, xmlsec.constants.TransformExclC14N, xmlsec.constants.TransformRsaSha256, ns="ds")
    issuer = elem.find("{%s}Issuer" % SAML)
    issuer.addnext(sig)
    ref = xmlsec.template.add_reference(sig, xmlsec.constants.TransformSha256, uri="#" + elem.get("ID"))
    xmlsec.template.add_transform(ref, xmlsec.constants.TransformEnveloped)
    xmlsec.template.add_transform(ref, xmlsec.constants.TransformExclC14N)
    xmlsec.template.add_x509_data(xmlsec.template.ensure_key_info(sig))
    ctx = xmlsec.SignatureContext()
    ctx.key = key
    ctx.register_id(elem, "ID")
    ctx.sign(sig)


def prepare(key_file, cert_file, n):
    key = xmlsec.Key.from_file(key_file, xmlsec.constants.KeyDataFormatPem)
    key.load_cert_from_file(cert_file, xmlsec.constants.KeyDataFormatPem)
    template = sys.stdin.buffer.read()
    fmt = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")
    now = datetime.datetime.now(datetime.timezone.utc)
    times = {"IssueInstant": fmt(now), "AuthnInstant": fmt(now), "NotBefore": fmt(now - datetime.timedelta(seconds=30)),
             "NotOnOrAfter": fmt(now + datetime.timedelta(minutes=15))}
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    out = sys.stdout
    for _ in range(n):
        root = etree.fromstring(template, parser)
        for s in list(root.iter("{%s}Signature" % DS)):
            s.getparent().remove(s)
        for el in root.iter():
            for attr, value in times.items():
                if el.get(attr) is not None:
                    el.set(attr, value)
        assertion = root.find("{%s}Assertion" % SAML)
        root.set("ID", "_" + uuid.uuid4().hex)
        assertion.set("ID", "_" + uuid.uuid4().hex)
        sign(assertion, key)
        sign(root, key)
        out.write(base64.b64encode(etree.tostring(root)).decode() + "\n")


SETTINGS = None


def init(settings):
    global SETTINGS
    from onelogin.saml2.settings import OneLogin_Saml2_Settings
    SETTINGS = OneLogin_Saml2_Settings(settings, sp_validation_only=True)


def check(chunk):
    from onelogin.saml2.response import OneLogin_Saml2_Response
    from urllib.parse import urlsplit
    cpu = time.process_time()
    valid = 0
    for b64, acs in chunk:
        u = urlsplit(acs)
        request = {"https": "on" if u.scheme == "https" else "off", "http_host": u.hostname,
                   "script_name": u.path, "server_port": str(u.port or (443 if u.scheme == "https" else 80)),
                   "get_data": {}, "post_data": {"SAMLResponse": b64}}
        r = OneLogin_Saml2_Response(SETTINGS, b64)
        if r.is_valid(request):
            valid += 1
        else:
            sys.stderr.write("invalid: %s\n" % r.get_error())
    return valid, time.process_time() - cpu


def verify(sp_entity, acs, idp_entity, idp_cert_file, procs):
    cert = open(idp_cert_file).read()
    settings = {
        "strict": True,
        "sp": {"entityId": sp_entity, "assertionConsumerService": {"url": acs}},
        "idp": {"entityId": idp_entity, "singleSignOnService": {"url": "https://idp.invalid/sso"},
                "x509cert": cert},
        "security": {"wantMessagesSigned": True, "wantAssertionsSigned": True},
    }
    responses = [l.strip() for l in sys.stdin if l.strip()]
    chunks = [[(r, acs) for r in responses[i::procs]] for i in range(procs)]
    with multiprocessing.Pool(procs, initializer=init, initargs=(settings,)) as pool:
        pool.map(len, [[]] * procs)  # workers started and settings parsed before the clock starts
        t = time.perf_counter()
        results = pool.map(check, chunks)
        elapsed = time.perf_counter() - t
    valid = sum(v for v, _ in results)
    cpu = sum(c for _, c in results)
    # responses/s, accepted, responses, CPU ms (user + system) per response
    print("%.1f %d %d %.3f" % (len(responses) / elapsed, valid, len(responses), cpu * 1000 / len(responses)))


if __name__ == "__main__":
    if sys.argv[1] == "prepare":
        prepare(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        verify(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]))
