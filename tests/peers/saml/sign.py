#!/usr/bin/python3
"""sign.py KEY CERT [--assertion] [--response] < response.xml > signed.xml

Re-signs a SAML response the way SimpleSAMLphp signs it (RSA-SHA256, exclusive c14n, enveloped,
the signature right after the element's Issuer): every existing ds:Signature is removed first, then
the Assertion (--assertion) and the Response (--response, over the signed assertion) are signed with
KEY/CERT (PEM); --rsa-sha1 signs with RSA-SHA1 and SHA-1 digests instead. With neither flag the response
comes out unsigned. The tests build their attack
responses with it (an edit, then a valid signature by the IdP's key or another one).
Uses Debian's python3-xmlsec and python3-lxml (pulled in by python3-onelogin-saml2)."""
import sys

import xmlsec
from lxml import etree

DS = "http://www.w3.org/2000/09/xmldsig#"
SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"


def sign(elem, key_file, cert_file, sha1=False):
    method = xmlsec.constants.TransformRsaSha1 if sha1 else xmlsec.constants.TransformRsaSha256
    digest = xmlsec.constants.TransformSha1 if sha1 else xmlsec.constants.TransformSha256
    sig = xmlsec.template.create(elem, xmlsec.constants.TransformExclC14N, method, ns="ds")
    issuer = elem.find("{%s}Issuer" % SAML)
    if issuer is not None:
        issuer.addnext(sig)
    else:
        elem.insert(0, sig)
    ref = xmlsec.template.add_reference(sig, digest, uri="#" + elem.get("ID"))
    xmlsec.template.add_transform(ref, xmlsec.constants.TransformEnveloped)
    xmlsec.template.add_transform(ref, xmlsec.constants.TransformExclC14N)
    ki = xmlsec.template.ensure_key_info(sig)
    xmlsec.template.add_x509_data(ki)
    ctx = xmlsec.SignatureContext()
    key = xmlsec.Key.from_file(key_file, xmlsec.constants.KeyDataFormatPem)
    key.load_cert_from_file(cert_file, xmlsec.constants.KeyDataFormatPem)
    ctx.key = key
    ctx.register_id(elem, "ID")
    ctx.sign(sig)


def main():
    key_file, cert_file = sys.argv[1], sys.argv[2]
    flags = set(sys.argv[3:])
    root = etree.fromstring(sys.stdin.buffer.read(), etree.XMLParser(resolve_entities=False, no_network=True))
    for s in list(root.iter("{%s}Signature" % DS)):
        s.getparent().remove(s)
    if "--assertion" in flags:
        for a in root.iter("{%s}Assertion" % SAML):
            sign(a, key_file, cert_file, "--rsa-sha1" in flags)
    if "--response" in flags:
        sign(root, key_file, cert_file, "--rsa-sha1" in flags)
    sys.stdout.buffer.write(etree.tostring(root))


main()
