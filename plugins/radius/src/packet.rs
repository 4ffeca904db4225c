//! The RADIUS codec (RFC 2865, RFC 3579): Access-Request encoding with
//! User-Password hiding and a Message-Authenticator, and strict parsing and
//! verification of replies. No I/O here.
//!
//! Every reply is checked before anything in it is believed: the header and
//! attribute lengths, the Response Authenticator (MD5 over the reply, the
//! request's authenticator and the shared secret) and the
//! Message-Authenticator (HMAC-MD5), which is required unless the caller
//! opts out (the BlastRADIUS attack, CVE-2024-3596, forges replies that
//! carry none).

use std::fmt;

use gatehouse_sdk::constant_time_eq;
use md5::{Digest, Md5};

/// Packet codes this client sends or accepts.
pub mod code {
    /// Access-Request.
    pub const ACCESS_REQUEST: u8 = 1;
    /// Access-Accept.
    pub const ACCESS_ACCEPT: u8 = 2;
    /// Access-Reject.
    pub const ACCESS_REJECT: u8 = 3;
    /// Access-Challenge.
    pub const ACCESS_CHALLENGE: u8 = 11;
}

/// Attribute types this client sends or reads.
pub mod attr {
    /// User-Name (string).
    pub const USER_NAME: u8 = 1;
    /// User-Password (hidden, RFC 2865 §5.2).
    pub const USER_PASSWORD: u8 = 2;
    /// NAS-IP-Address (IPv4).
    pub const NAS_IP_ADDRESS: u8 = 4;
    /// Filter-Id (text).
    pub const FILTER_ID: u8 = 11;
    /// Reply-Message (text).
    pub const REPLY_MESSAGE: u8 = 18;
    /// State (octets).
    pub const STATE: u8 = 24;
    /// Class (octets).
    pub const CLASS: u8 = 25;
    /// Calling-Station-Id (string).
    pub const CALLING_STATION_ID: u8 = 31;
    /// NAS-Identifier (string).
    pub const NAS_IDENTIFIER: u8 = 32;
    /// Prompt (RFC 2869: 0 no echo, 1 echo).
    pub const PROMPT: u8 = 76;
    /// Message-Authenticator (RFC 3579: HMAC-MD5 of the packet).
    pub const MESSAGE_AUTHENTICATOR: u8 = 80;
    /// NAS-IPv6-Address (RFC 3162).
    pub const NAS_IPV6_ADDRESS: u8 = 95;
}

/// Length of the fixed header: code, identifier, length, authenticator.
pub const HEADER_LEN: usize = 20;
/// The largest packet RFC 2865 allows.
pub const MAX_PACKET_LEN: usize = 4096;
/// The longest password User-Password can carry (RFC 2865 §5.2).
pub const MAX_PASSWORD_LEN: usize = 128;
/// The longest value of one attribute.
pub const MAX_ATTRIBUTE_LEN: usize = 253;

/// Why a request could not be encoded or a reply was dropped. Each has a
/// stable code ([`PacketError::code`]) for logs and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PacketError {
    /// The password is longer than [`MAX_PASSWORD_LEN`] bytes.
    PasswordTooLong,
    /// An attribute value is longer than [`MAX_ATTRIBUTE_LEN`] bytes.
    AttributeTooLong,
    /// The request would exceed [`MAX_PACKET_LEN`].
    PacketTooLong,
    /// Fewer bytes than a header, or a length field outside 20..=4096 or
    /// beyond the datagram.
    BadLength,
    /// An attribute whose length is below 2 or runs past the packet.
    BadAttribute,
    /// A Message-Authenticator that is not 16 bytes, or more than one.
    BadMessageAuthenticatorAttribute,
    /// A code other than Access-Accept, -Reject or -Challenge.
    UnexpectedCode,
    /// The Response Authenticator does not match the request and secret.
    BadResponseAuthenticator,
    /// The Message-Authenticator does not verify.
    BadMessageAuthenticator,
    /// No Message-Authenticator, and one is required.
    MissingMessageAuthenticator,
}

impl PacketError {
    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            Self::PasswordTooLong => "password_too_long",
            Self::AttributeTooLong => "attribute_too_long",
            Self::PacketTooLong => "packet_too_long",
            Self::BadLength => "bad_length",
            Self::BadAttribute => "bad_attribute",
            Self::BadMessageAuthenticatorAttribute => "bad_message_authenticator_attribute",
            Self::UnexpectedCode => "unexpected_code",
            Self::BadResponseAuthenticator => "bad_response_authenticator",
            Self::BadMessageAuthenticator => "bad_message_authenticator",
            Self::MissingMessageAuthenticator => "missing_message_authenticator",
        }
    }
}

impl fmt::Display for PacketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl std::error::Error for PacketError {}

fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// HMAC-MD5 (RFC 2104) of the concatenated `parts`.
pub fn hmac_md5(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..16].copy_from_slice(&md5(&[key]));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut ipad = [0x36u8; 64];
    let mut opad = [0x5cu8; 64];
    for i in 0..64 {
        ipad[i] ^= k[i];
        opad[i] ^= k[i];
    }
    let mut inner = Md5::new();
    inner.update(ipad);
    for p in parts {
        inner.update(p);
    }
    let inner: [u8; 16] = inner.finalize().into();
    md5(&[&opad, &inner])
}

/// Hides a password as RFC 2865 §5.2 says: zero-padded to a multiple of
/// 16 bytes, each block XORed with MD5(secret + previous block), the first
/// with MD5(secret + request authenticator).
pub fn hide_password(
    password: &[u8],
    secret: &[u8],
    authenticator: &[u8; 16],
) -> Result<Vec<u8>, PacketError> {
    if password.len() > MAX_PASSWORD_LEN {
        return Err(PacketError::PasswordTooLong);
    }
    let blocks = password.len().div_ceil(16).max(1);
    let mut out = vec![0u8; blocks * 16];
    out[..password.len()].copy_from_slice(password);
    let mut prev: [u8; 16] = *authenticator;
    for chunk in out.chunks_mut(16) {
        let b = md5(&[secret, &prev]);
        for (c, k) in chunk.iter_mut().zip(b) {
            *c ^= k;
        }
        prev.copy_from_slice(chunk);
    }
    Ok(out)
}

/// Recovers a hidden password (the server's side; for tests and the fuzz
/// target). Trailing zero padding is removed.
pub fn reveal_password(hidden: &[u8], secret: &[u8], authenticator: &[u8; 16]) -> Option<Vec<u8>> {
    if hidden.is_empty() || !hidden.len().is_multiple_of(16) || hidden.len() > MAX_PASSWORD_LEN {
        return None;
    }
    let mut out = Vec::with_capacity(hidden.len());
    let mut prev: &[u8] = authenticator;
    for chunk in hidden.chunks(16) {
        let b = md5(&[secret, prev]);
        out.extend(chunk.iter().zip(b).map(|(c, k)| c ^ k));
        prev = chunk;
    }
    while out.last() == Some(&0) {
        out.pop();
    }
    Some(out)
}

/// An Access-Request being built: a Message-Authenticator first (as the
/// BlastRADIUS advice has it), then the attributes in the order added.
#[derive(Debug)]
pub struct AccessRequest {
    buf: Vec<u8>,
}

impl AccessRequest {
    /// A request with identifier `id` and Request Authenticator
    /// `authenticator` (16 random bytes, fresh for each request).
    pub fn new(id: u8, authenticator: &[u8; 16]) -> Self {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&[code::ACCESS_REQUEST, id, 0, 0]);
        buf.extend_from_slice(authenticator);
        buf.extend_from_slice(&[attr::MESSAGE_AUTHENTICATOR, 18]);
        buf.extend_from_slice(&[0u8; 16]);
        Self { buf }
    }

    /// Adds an attribute.
    pub fn add(&mut self, typ: u8, value: &[u8]) -> Result<&mut Self, PacketError> {
        if value.len() > MAX_ATTRIBUTE_LEN {
            return Err(PacketError::AttributeTooLong);
        }
        if self.buf.len() + 2 + value.len() > MAX_PACKET_LEN {
            return Err(PacketError::PacketTooLong);
        }
        self.buf.push(typ);
        self.buf.push((value.len() + 2) as u8);
        self.buf.extend_from_slice(value);
        Ok(self)
    }

    /// Adds User-Password, hidden with the secret and this request's
    /// authenticator.
    pub fn add_password(&mut self, password: &[u8], secret: &[u8]) -> Result<&mut Self, PacketError> {
        let mut auth = [0u8; 16];
        auth.copy_from_slice(&self.buf[4..HEADER_LEN]);
        let hidden = hide_password(password, secret, &auth)?;
        self.add(attr::USER_PASSWORD, &hidden)
    }

    /// The finished datagram: the length set and the Message-Authenticator
    /// computed over the whole packet.
    pub fn finish(mut self, secret: &[u8]) -> Vec<u8> {
        let len = self.buf.len() as u16;
        self.buf[2..4].copy_from_slice(&len.to_be_bytes());
        let mac = hmac_md5(secret, &[&self.buf]);
        self.buf[HEADER_LEN + 2..HEADER_LEN + 18].copy_from_slice(&mac);
        self.buf
    }
}

/// A parsed packet: borrowed from the datagram, not yet verified.
#[derive(Clone, Debug)]
pub struct Packet<'a> {
    /// The code.
    pub code: u8,
    /// The identifier.
    pub id: u8,
    /// The authenticator field.
    pub authenticator: [u8; 16],
    /// The packet bytes up to its length field (octets beyond are ignored,
    /// as RFC 2865 §3 says).
    pub bytes: &'a [u8],
    /// The attributes, in order: (type, value).
    pub attributes: Vec<(u8, &'a [u8])>,
}

impl<'a> Packet<'a> {
    /// Parses a datagram strictly: a packet shorter than its length field,
    /// or an attribute that overruns it, is an error.
    pub fn parse(datagram: &'a [u8]) -> Result<Self, PacketError> {
        if datagram.len() < HEADER_LEN {
            return Err(PacketError::BadLength);
        }
        let len = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
        if !(HEADER_LEN..=MAX_PACKET_LEN).contains(&len) || len > datagram.len() {
            return Err(PacketError::BadLength);
        }
        let bytes = &datagram[..len];
        let mut authenticator = [0u8; 16];
        authenticator.copy_from_slice(&bytes[4..HEADER_LEN]);
        let mut attributes = Vec::new();
        let mut rest = &bytes[HEADER_LEN..];
        while !rest.is_empty() {
            let [typ, alen, ..] = rest else {
                return Err(PacketError::BadAttribute);
            };
            let alen = usize::from(*alen);
            if alen < 2 || alen > rest.len() {
                return Err(PacketError::BadAttribute);
            }
            attributes.push((*typ, &rest[2..alen]));
            rest = &rest[alen..];
        }
        Ok(Self {
            code: bytes[0],
            id: bytes[1],
            authenticator,
            bytes,
            attributes,
        })
    }

    /// Every value of attribute `typ`.
    pub fn all(&self, typ: u8) -> impl Iterator<Item = &'a [u8]> + '_ {
        self.attributes
            .iter()
            .filter(move |(t, _)| *t == typ)
            .map(|(_, v)| *v)
    }

    /// The first value of attribute `typ`.
    pub fn first(&self, typ: u8) -> Option<&'a [u8]> {
        self.all(typ).next()
    }

    /// Checks a reply to the request whose authenticator was
    /// `request_authenticator`: the code, the Response Authenticator and the
    /// Message-Authenticator (required when `require_message_authenticator`).
    /// Comparisons take constant time.
    pub fn verify_reply(
        &self,
        request_authenticator: &[u8; 16],
        secret: &[u8],
        require_message_authenticator: bool,
    ) -> Result<(), PacketError> {
        if ![code::ACCESS_ACCEPT, code::ACCESS_REJECT, code::ACCESS_CHALLENGE].contains(&self.code) {
            return Err(PacketError::UnexpectedCode);
        }
        let expected = md5(&[
            &self.bytes[..4],
            request_authenticator,
            &self.bytes[HEADER_LEN..],
            secret,
        ]);
        if !constant_time_eq(&expected, &self.authenticator) {
            return Err(PacketError::BadResponseAuthenticator);
        }
        // Where the Message-Authenticator value sits in the packet.
        let mut at = None;
        let mut offset = HEADER_LEN;
        for (typ, value) in &self.attributes {
            if *typ == attr::MESSAGE_AUTHENTICATOR {
                if at.is_some() || value.len() != 16 {
                    return Err(PacketError::BadMessageAuthenticatorAttribute);
                }
                at = Some(offset + 2);
            }
            offset += 2 + value.len();
        }
        let Some(at) = at else {
            return if require_message_authenticator {
                Err(PacketError::MissingMessageAuthenticator)
            } else {
                Ok(())
            };
        };
        // HMAC over the reply with the request's authenticator in the
        // header and the Message-Authenticator's value zeroed.
        let mac = hmac_md5(
            secret,
            &[
                &self.bytes[..4],
                request_authenticator,
                &self.bytes[HEADER_LEN..at],
                &[0u8; 16],
                &self.bytes[at + 16..],
            ],
        );
        if !constant_time_eq(&mac, &self.bytes[at..at + 16]) {
            return Err(PacketError::BadMessageAuthenticator);
        }
        Ok(())
    }
}

/// Encodes a reply the way a server does (for tests, benchmarks and the
/// fuzz target; the plugin never sends one): the attributes in order, a
/// Message-Authenticator first when `message_authenticator`, and the
/// Response Authenticator over the whole.
pub fn encode_reply(
    code: u8,
    id: u8,
    request_authenticator: &[u8; 16],
    attributes: &[(u8, &[u8])],
    secret: &[u8],
    message_authenticator: bool,
) -> Result<Vec<u8>, PacketError> {
    let mut buf = vec![code, id, 0, 0];
    buf.extend_from_slice(request_authenticator);
    if message_authenticator {
        buf.extend_from_slice(&[attr::MESSAGE_AUTHENTICATOR, 18]);
        buf.extend_from_slice(&[0u8; 16]);
    }
    for (typ, value) in attributes {
        if value.len() > MAX_ATTRIBUTE_LEN {
            return Err(PacketError::AttributeTooLong);
        }
        buf.push(*typ);
        buf.push((value.len() + 2) as u8);
        buf.extend_from_slice(value);
    }
    if buf.len() > MAX_PACKET_LEN {
        return Err(PacketError::PacketTooLong);
    }
    let len = buf.len() as u16;
    buf[2..4].copy_from_slice(&len.to_be_bytes());
    if message_authenticator {
        let mac = hmac_md5(secret, &[&buf]);
        buf[HEADER_LEN + 2..HEADER_LEN + 18].copy_from_slice(&mac);
    }
    let auth = md5(&[&buf, secret]);
    buf[4..HEADER_LEN].copy_from_slice(&auth);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn hmac_md5_matches_rfc_2104_vectors() {
        assert_eq!(
            hex(&hmac_md5(&[0x0b; 16], &[b"Hi There"])),
            "9294727a3638bb1c13f48ef8158bfc9d"
        );
        assert_eq!(
            hex(&hmac_md5(b"Jefe", &[b"what do ya ", b"want for nothing?"])),
            "750c783e6ab0b503eaa86e310a5db738"
        );
        // RFC 2202 test 6: a key longer than the block is hashed first
        assert_eq!(
            hex(&hmac_md5(
                &[0xaa; 80],
                &[b"Test Using Larger Than Block-Size Key - Hash Key First"]
            )),
            "6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd"
        );
    }

    #[test]
    fn password_hiding_matches_rfc_2865_example() {
        // RFC 2865 §7.1: secret "xyzzy5461", password "arctangent"
        let auth: [u8; 16] = [
            0x0f, 0x40, 0x3f, 0x94, 0x73, 0x97, 0x80, 0x57, 0xbd, 0x83, 0xd5, 0xcb, 0x98, 0xf4, 0x22, 0x7a,
        ];
        let hidden = hide_password(b"arctangent", b"xyzzy5461", &auth).unwrap();
        assert_eq!(hex(&hidden), "0dbe708d93d413ce3196e43f782a0aee");
        assert_eq!(
            reveal_password(&hidden, b"xyzzy5461", &auth).unwrap(),
            b"arctangent"
        );
    }

    #[test]
    fn passwords_up_to_128_bytes_round_trip_and_longer_are_refused() {
        let auth = [7u8; 16];
        for len in [1usize, 15, 16, 17, 127, 128] {
            let pw: Vec<u8> = "ü".repeat(len).as_bytes()[..len].to_vec();
            let pw: Vec<u8> = pw.into_iter().map(|b| b | 1).collect(); // no zero bytes
            let hidden = hide_password(&pw, b"s3cret", &auth).unwrap();
            assert_eq!(hidden.len(), len.div_ceil(16) * 16);
            assert_eq!(reveal_password(&hidden, b"s3cret", &auth).unwrap(), pw);
        }
        assert_eq!(
            hide_password(&[b'x'; 129], b"s", &auth),
            Err(PacketError::PasswordTooLong)
        );
    }

    #[test]
    fn requests_carry_a_valid_message_authenticator_first() {
        let auth = [3u8; 16];
        let mut r = AccessRequest::new(42, &auth);
        r.add(attr::USER_NAME, b"alice").unwrap();
        r.add_password(b"alicepass", b"radsecret").unwrap();
        let bytes = r.finish(b"radsecret");
        let p = Packet::parse(&bytes).unwrap();
        assert_eq!((p.code, p.id), (code::ACCESS_REQUEST, 42));
        assert_eq!(p.attributes[0].0, attr::MESSAGE_AUTHENTICATOR);
        let mut zeroed = bytes.clone();
        zeroed[22..38].fill(0);
        assert_eq!(hmac_md5(b"radsecret", &[&zeroed]), p.attributes[0].1);
        let hidden = p.first(attr::USER_PASSWORD).unwrap();
        assert_eq!(
            reveal_password(hidden, b"radsecret", &auth).unwrap(),
            b"alicepass"
        );
    }

    #[test]
    fn replies_verify_only_with_the_right_request_secret_and_mac() {
        let req = [9u8; 16];
        let ok = encode_reply(
            code::ACCESS_ACCEPT,
            5,
            &req,
            &[(attr::CLASS, b"admins")],
            b"s",
            true,
        )
        .unwrap();
        let p = Packet::parse(&ok).unwrap();
        assert_eq!(p.verify_reply(&req, b"s", true), Ok(()));
        assert_eq!(p.first(attr::CLASS), Some(&b"admins"[..]));
        // another request's authenticator, another secret
        assert_eq!(
            p.verify_reply(&[8u8; 16], b"s", true),
            Err(PacketError::BadResponseAuthenticator)
        );
        assert_eq!(
            p.verify_reply(&req, b"t", true),
            Err(PacketError::BadResponseAuthenticator)
        );
        // no Message-Authenticator: refused unless the caller opts out
        let bare = encode_reply(code::ACCESS_ACCEPT, 5, &req, &[], b"s", false).unwrap();
        let p = Packet::parse(&bare).unwrap();
        assert_eq!(
            p.verify_reply(&req, b"s", true),
            Err(PacketError::MissingMessageAuthenticator)
        );
        assert_eq!(p.verify_reply(&req, b"s", false), Ok(()));
        // a Message-Authenticator of the wrong value, with the Response
        // Authenticator recomputed (the attacker knows neither, but each
        // check must stand on its own)
        let mut bad = encode_reply(code::ACCESS_ACCEPT, 5, &req, &[], b"s", true).unwrap();
        bad[22] ^= 1;
        let mut fixed = bad.clone();
        fixed[4..20].copy_from_slice(&req);
        let auth = md5(&[&fixed, b"s"]);
        bad[4..20].copy_from_slice(&auth);
        assert_eq!(
            Packet::parse(&bad).unwrap().verify_reply(&req, b"s", true),
            Err(PacketError::BadMessageAuthenticator)
        );
        // an Access-Request is not a reply
        let r = AccessRequest::new(5, &req).finish(b"s");
        assert_eq!(
            Packet::parse(&r).unwrap().verify_reply(&req, b"s", false),
            Err(PacketError::UnexpectedCode)
        );
    }

    #[test]
    fn malformed_datagrams_are_errors_not_panics() {
        let req = [1u8; 16];
        let good = encode_reply(code::ACCESS_REJECT, 1, &req, &[(18, b"no")], b"s", true).unwrap();
        assert!(Packet::parse(&good[..19]).is_err());
        let mut long = good.clone();
        long[3] = long[3].wrapping_add(1);
        assert_eq!(Packet::parse(&long).err(), Some(PacketError::BadLength));
        let mut zero_attr = good.clone();
        zero_attr[HEADER_LEN + 1] = 0;
        assert_eq!(Packet::parse(&zero_attr).err(), Some(PacketError::BadAttribute));
        let mut overrun = good.clone();
        let last = overrun.len() - 3; // the Reply-Message's length byte
        overrun[last] = 200;
        assert_eq!(Packet::parse(&overrun).err(), Some(PacketError::BadAttribute));
        // trailing octets beyond the length field are ignored
        let mut padded = good.clone();
        padded.extend_from_slice(&[0xff; 7]);
        let p = Packet::parse(&padded).unwrap();
        assert_eq!(p.verify_reply(&req, b"s", true), Ok(()));
        // two Message-Authenticators
        let two = encode_reply(code::ACCESS_ACCEPT, 1, &req, &[(80, &[0u8; 16])], b"s", true).unwrap();
        assert_eq!(
            Packet::parse(&two).unwrap().verify_reply(&req, b"s", true),
            Err(PacketError::BadMessageAuthenticatorAttribute)
        );
    }

    #[test]
    fn error_codes_are_stable_and_are_the_display_text() {
        for (e, code) in [
            (PacketError::PasswordTooLong, "password_too_long"),
            (PacketError::AttributeTooLong, "attribute_too_long"),
            (PacketError::PacketTooLong, "packet_too_long"),
            (PacketError::BadLength, "bad_length"),
            (PacketError::BadAttribute, "bad_attribute"),
            (
                PacketError::BadMessageAuthenticatorAttribute,
                "bad_message_authenticator_attribute",
            ),
            (PacketError::UnexpectedCode, "unexpected_code"),
            (
                PacketError::BadResponseAuthenticator,
                "bad_response_authenticator",
            ),
            (PacketError::BadMessageAuthenticator, "bad_message_authenticator"),
            (
                PacketError::MissingMessageAuthenticator,
                "missing_message_authenticator",
            ),
        ] {
            assert_eq!(e.code(), code);
            assert_eq!(e.to_string(), code);
        }
    }

    #[test]
    fn a_key_of_exactly_one_block_is_used_as_it_is() {
        // RFC 2104 hashes only keys longer than the 64-byte block; the
        // value computed independently with Python's hmac module.
        assert_eq!(
            hex(&hmac_md5(&[0x0c; 64], &[b"Test With Exactly Block-Size Key"])),
            "b4edaeec8643edc3c19fb2d61e6fe407"
        );
    }

    #[test]
    fn hidden_passwords_of_impossible_lengths_are_not_revealed() {
        let auth = [7u8; 16];
        for len in [0usize, 1, 15, 17, 31, 144, 160] {
            assert_eq!(
                reveal_password(&vec![0x41; len], b"s", &auth),
                None,
                "{len} bytes"
            );
        }
        assert!(reveal_password(&[0x41; 128], b"s", &auth).is_some());
    }

    #[test]
    fn attributes_of_up_to_253_bytes_are_accepted_and_longer_refused() {
        let mut r = AccessRequest::new(1, &[0u8; 16]);
        assert!(r.add(attr::CLASS, &[b'c'; 253]).is_ok());
        assert_eq!(
            r.add(attr::CLASS, &[b'c'; 254]).err(),
            Some(PacketError::AttributeTooLong)
        );
        let bytes = r.finish(b"s");
        let p = Packet::parse(&bytes).unwrap();
        assert_eq!(p.first(attr::CLASS), Some(&[b'c'; 253][..]));
        assert_eq!(p.attributes.len(), 2, "the refused attribute was not added");
    }

    /// The request grows to exactly 4096 bytes, and not one byte further.
    #[test]
    fn a_request_fills_4096_bytes_and_no_more() {
        // header and Message-Authenticator: 38 bytes; 15 attributes of 255
        let mut r = AccessRequest::new(1, &[0u8; 16]);
        for _ in 0..15 {
            r.add(attr::CLASS, &[b'c'; 253]).unwrap();
        }
        // 38 + 15 * 255 = 3863: 233 bytes are left, a value of 231
        assert_eq!(
            r.add(attr::STATE, &[b's'; 232]).err(),
            Some(PacketError::PacketTooLong)
        );
        r.add(attr::STATE, &[b's'; 231]).unwrap();
        assert_eq!(r.add(attr::STATE, b"").err(), Some(PacketError::PacketTooLong));
        let bytes = r.finish(b"s");
        assert_eq!(bytes.len(), MAX_PACKET_LEN);
        let p = Packet::parse(&bytes).unwrap();
        assert_eq!(p.attributes.len(), 17);
        assert_eq!(p.first(attr::STATE), Some(&[b's'; 231][..]));
    }

    #[test]
    fn an_empty_attribute_parses() {
        let req = [4u8; 16];
        let r = encode_reply(
            code::ACCESS_ACCEPT,
            1,
            &req,
            &[(attr::STATE, b""), (attr::CLASS, b"x")],
            b"s",
            true,
        )
        .unwrap();
        let p = Packet::parse(&r).unwrap();
        assert_eq!(p.first(attr::STATE), Some(&b""[..]));
        assert_eq!(p.first(attr::CLASS), Some(&b"x"[..]));
        assert_eq!(p.verify_reply(&req, b"s", true), Ok(()));
    }

    /// A server may put the Message-Authenticator anywhere: after other
    /// attributes, it is still found and verified where it is.
    #[test]
    fn a_message_authenticator_after_other_attributes_verifies() {
        let req = [6u8; 16];
        let secret = b"s3";
        let mut buf = vec![code::ACCESS_ACCEPT, 9, 0, 0];
        buf.extend_from_slice(&req);
        buf.extend_from_slice(&[attr::CLASS, 8]);
        buf.extend_from_slice(b"admins");
        buf.extend_from_slice(&[attr::REPLY_MESSAGE, 5]);
        buf.extend_from_slice(b"hi!");
        let at = buf.len() + 2;
        buf.extend_from_slice(&[attr::MESSAGE_AUTHENTICATOR, 18]);
        buf.extend_from_slice(&[0u8; 16]);
        buf.extend_from_slice(&[attr::FILTER_ID, 4]);
        buf.extend_from_slice(b"ro");
        let len = buf.len() as u16;
        buf[2..4].copy_from_slice(&len.to_be_bytes());
        let mac = hmac_md5(secret, &[&buf]);
        buf[at..at + 16].copy_from_slice(&mac);
        let auth = md5(&[&buf, secret]);
        buf[4..HEADER_LEN].copy_from_slice(&auth);
        let p = Packet::parse(&buf).unwrap();
        assert_eq!(p.verify_reply(&req, secret, true), Ok(()));
        // and a flipped bit in it is noticed
        let mut bad = buf.clone();
        bad[at + 3] ^= 1;
        bad[4..HEADER_LEN].copy_from_slice(&req);
        let auth = md5(&[&bad, secret]);
        bad[4..HEADER_LEN].copy_from_slice(&auth);
        assert_eq!(
            Packet::parse(&bad).unwrap().verify_reply(&req, secret, true),
            Err(PacketError::BadMessageAuthenticator)
        );
    }

    #[test]
    fn replies_are_encoded_up_to_the_limits_and_refused_beyond() {
        let req = [2u8; 16];
        let at_limit = encode_reply(
            code::ACCESS_ACCEPT,
            1,
            &req,
            &[(attr::CLASS, &[1; 253])],
            b"s",
            true,
        )
        .unwrap();
        assert_eq!(
            Packet::parse(&at_limit).unwrap().first(attr::CLASS),
            Some(&[1u8; 253][..])
        );
        assert_eq!(
            encode_reply(
                code::ACCESS_ACCEPT,
                1,
                &req,
                &[(attr::CLASS, &[1; 254])],
                b"s",
                true
            ),
            Err(PacketError::AttributeTooLong)
        );
        // 38 bytes, 15 attributes of 255, and one of 233: exactly 4096
        let big = [1u8; 253];
        let mut attrs: Vec<(u8, &[u8])> = vec![(attr::CLASS, &big); 15];
        attrs.push((attr::STATE, &big[..231]));
        let full = encode_reply(code::ACCESS_ACCEPT, 1, &req, &attrs, b"s", true).unwrap();
        assert_eq!(full.len(), MAX_PACKET_LEN);
        assert_eq!(
            Packet::parse(&full).unwrap().verify_reply(&req, b"s", true),
            Ok(())
        );
        attrs.pop();
        attrs.push((attr::STATE, &big[..232]));
        assert_eq!(
            encode_reply(code::ACCESS_ACCEPT, 1, &req, &attrs, b"s", true),
            Err(PacketError::PacketTooLong)
        );
    }
}
