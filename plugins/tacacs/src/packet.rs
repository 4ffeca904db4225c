//! The TACACS+ authentication packets of RFC 8907 that a client sends and
//! reads: the 12-byte header (§4.1), body obfuscation (§4.5), the
//! authentication START and CONTINUE bodies (§5.1, §5.3) and the REPLY
//! body (§5.2).
//!
//! Pure code, no I/O: every function works on byte slices, and nothing a
//! peer sends can make it panic or allocate more than the packet itself.

use md5::{Digest, Md5};

/// The header's length in bytes.
pub const HEADER_LEN: usize = 12;
/// Major version (the high nibble of the version byte).
pub const MAJOR: u8 = 0xc;
/// Minor version 0 (`TAC_PLUS_MINOR_VER_DEFAULT`): ASCII logins.
pub const MINOR_DEFAULT: u8 = 0x0;
/// Minor version 1 (`TAC_PLUS_MINOR_VER_ONE`): PAP, CHAP, MS-CHAP.
pub const MINOR_ONE: u8 = 0x1;
/// Packet type `TAC_PLUS_AUTHEN`.
pub const TYPE_AUTHEN: u8 = 0x01;
/// Header flag `TAC_PLUS_UNENCRYPTED_FLAG`: the body is not obfuscated.
pub const FLAG_UNENCRYPTED: u8 = 0x01;
/// Header flag `TAC_PLUS_SINGLE_CONNECT_FLAG`.
pub const FLAG_SINGLE_CONNECT: u8 = 0x04;
/// START action `TAC_PLUS_AUTHEN_LOGIN`.
pub const ACTION_LOGIN: u8 = 0x01;
/// `TAC_PLUS_PRIV_LVL_USER`.
pub const PRIV_LVL_USER: u8 = 0x01;
/// `TAC_PLUS_AUTHEN_TYPE_ASCII`.
pub const AUTHEN_TYPE_ASCII: u8 = 0x01;
/// `TAC_PLUS_AUTHEN_TYPE_PAP`.
pub const AUTHEN_TYPE_PAP: u8 = 0x02;
/// `TAC_PLUS_AUTHEN_SVC_LOGIN`.
pub const SERVICE_LOGIN: u8 = 0x01;
/// REPLY flag `TAC_PLUS_REPLY_FLAG_NOECHO`: do not echo the answer.
pub const REPLY_FLAG_NOECHO: u8 = 0x01;
/// CONTINUE flag `TAC_PLUS_CONTINUE_FLAG_ABORT`: the client gives up.
pub const CONTINUE_FLAG_ABORT: u8 = 0x01;
/// The largest REPLY body there can be: 6 fixed bytes, then `server_msg`
/// and `data` of at most 65535 bytes each. A header announcing more is
/// refused before anything is read or allocated.
pub const MAX_REPLY_BODY: usize = 6 + 2 * 0xffff;

/// The packet header (RFC 8907 §4.1); always sent in the clear.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// `major << 4 | minor`.
    pub version: u8,
    /// Packet type (`TYPE_AUTHEN` here).
    pub kind: u8,
    /// Sequence number: 1 for a session's first packet, odd from the
    /// client, even from the server.
    pub seq_no: u8,
    /// `FLAG_UNENCRYPTED`, `FLAG_SINGLE_CONNECT`.
    pub flags: u8,
    /// The session's random id.
    pub session_id: u32,
    /// The body's length.
    pub length: u32,
}

impl Header {
    /// The 12 bytes on the wire.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0] = self.version;
        out[1] = self.kind;
        out[2] = self.seq_no;
        out[3] = self.flags;
        out[4..8].copy_from_slice(&self.session_id.to_be_bytes());
        out[8..12].copy_from_slice(&self.length.to_be_bytes());
        out
    }

    /// Reads a header; every 12 bytes are a header, the checks are the
    /// caller's (it knows what it expects).
    pub fn decode(b: &[u8; HEADER_LEN]) -> Self {
        Self {
            version: b[0],
            kind: b[1],
            seq_no: b[2],
            flags: b[3],
            session_id: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            length: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        }
    }

    /// The major version.
    pub fn major(&self) -> u8 {
        self.version >> 4
    }
}

/// Obfuscates (or, the same operation, reveals) `body` in place: XOR with
/// the pseudo pad `MD5(session_id, key, version, seq_no)`, then
/// `MD5(session_id, key, version, seq_no, previous)` for each further 16
/// bytes (RFC 8907 §4.5).
pub fn obfuscate(body: &mut [u8], session_id: u32, key: &[u8], version: u8, seq_no: u8) {
    let mut prefix = Md5::new();
    prefix.update(session_id.to_be_bytes());
    prefix.update(key);
    prefix.update([version, seq_no]);
    let mut previous: Option<[u8; 16]> = None;
    for chunk in body.chunks_mut(16) {
        let mut h = prefix.clone();
        if let Some(p) = previous {
            h.update(p);
        }
        let pad: [u8; 16] = h.finalize().into();
        for (b, p) in chunk.iter_mut().zip(pad.iter()) {
            *b ^= p;
        }
        previous = Some(pad);
    }
}

/// A field too long for its length byte(s).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooLong {
    /// Which field.
    pub field: &'static str,
    /// Its limit in bytes.
    pub max: usize,
}

fn len8(field: &'static str, v: &[u8]) -> Result<u8, TooLong> {
    u8::try_from(v.len()).map_err(|_| TooLong { field, max: 255 })
}

fn len16(field: &'static str, v: &[u8]) -> Result<[u8; 2], TooLong> {
    u16::try_from(v.len())
        .map(u16::to_be_bytes)
        .map_err(|_| TooLong { field, max: 0xffff })
}

/// An authentication START body (RFC 8907 §5.1), action LOGIN, service
/// LOGIN.
#[derive(Clone, Copy, Debug)]
pub struct Start<'a> {
    /// `AUTHEN_TYPE_ASCII` or `AUTHEN_TYPE_PAP`.
    pub authen_type: u8,
    /// `PRIV_LVL_USER`.
    pub priv_lvl: u8,
    /// The username (may be empty for ASCII: the server asks GETUSER).
    pub user: &'a [u8],
    /// The client's port name.
    pub port: &'a [u8],
    /// The remote address of the user.
    pub rem_addr: &'a [u8],
    /// PAP: the password; ASCII: empty.
    pub data: &'a [u8],
}

impl Start<'_> {
    /// The body in the clear; each field has one length byte.
    pub fn encode(&self) -> Result<Vec<u8>, TooLong> {
        let lens = [
            len8("user", self.user)?,
            len8("port", self.port)?,
            len8("rem_addr", self.rem_addr)?,
            len8("data", self.data)?,
        ];
        let mut out = Vec::with_capacity(8 + lens.iter().map(|&l| usize::from(l)).sum::<usize>());
        out.extend_from_slice(&[ACTION_LOGIN, self.priv_lvl, self.authen_type, SERVICE_LOGIN]);
        out.extend_from_slice(&lens);
        for f in [self.user, self.port, self.rem_addr, self.data] {
            out.extend_from_slice(f);
        }
        Ok(out)
    }
}

/// An authentication CONTINUE body (RFC 8907 §5.3): the answer to a
/// GETUSER, GETPASS or GETDATA, or an abort.
pub fn encode_continue(user_msg: &[u8], flags: u8) -> Result<Vec<u8>, TooLong> {
    let mut out = Vec::with_capacity(5 + user_msg.len());
    out.extend_from_slice(&len16("user_msg", user_msg)?);
    out.extend_from_slice(&[0, 0, flags]);
    out.extend_from_slice(user_msg);
    Ok(out)
}

/// The status of an authentication REPLY (RFC 8907 §5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// `PASS`: authenticated.
    Pass,
    /// `FAIL`: refused.
    Fail,
    /// `GETDATA`: the server asks a question (shown with `server_msg`).
    GetData,
    /// `GETUSER`: the server asks for the username.
    GetUser,
    /// `GETPASS`: the server asks for the password.
    GetPass,
    /// `RESTART`: start again with another authentication type.
    Restart,
    /// `ERROR`: the server failed.
    Error,
    /// `FOLLOW` (deprecated): try other servers.
    Follow,
}

impl Status {
    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            0x01 => Self::Pass,
            0x02 => Self::Fail,
            0x03 => Self::GetData,
            0x04 => Self::GetUser,
            0x05 => Self::GetPass,
            0x06 => Self::Restart,
            0x07 => Self::Error,
            0x21 => Self::Follow,
            _ => return None,
        })
    }
}

/// A REPLY body that does not parse. With an obfuscated body this almost
/// always means the two ends have different keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadReply {
    /// Shorter than its 6 fixed bytes.
    Short,
    /// The field lengths do not add up to the body's length.
    Lengths,
    /// A status RFC 8907 does not define.
    Status(u8),
}

/// A decoded authentication REPLY.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// What the server decided or asks.
    pub status: Status,
    /// `REPLY_FLAG_NOECHO` and others.
    pub flags: u8,
    /// Text for the user (a prompt or a message).
    pub server_msg: Vec<u8>,
    /// Extra data (unused by logins).
    pub data: Vec<u8>,
}

impl Reply {
    /// Parses a revealed REPLY body: `status, flags, server_msg_len(2),
    /// data_len(2)`, then the two fields, which must fill the body
    /// exactly.
    pub fn decode(body: &[u8]) -> Result<Self, BadReply> {
        let [status, flags, m0, m1, d0, d1, rest @ ..] = body else {
            return Err(BadReply::Short);
        };
        let msg_len = usize::from(u16::from_be_bytes([*m0, *m1]));
        let data_len = usize::from(u16::from_be_bytes([*d0, *d1]));
        if msg_len + data_len != rest.len() {
            return Err(BadReply::Lengths);
        }
        let status = Status::from_byte(*status).ok_or(BadReply::Status(*status))?;
        let (msg, data) = rest.split_at(msg_len);
        Ok(Self {
            status,
            flags: *flags,
            server_msg: msg.to_vec(),
            data: data.to_vec(),
        })
    }

    /// Whether the answer to this prompt should be hidden while typed.
    pub fn no_echo(&self) -> bool {
        self.flags & REPLY_FLAG_NOECHO != 0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The pad as RFC 8907 §4.5 defines it, written out literally: the
    /// chain of MD5s over the concatenated inputs, truncated to the body.
    fn rfc_pad(len: usize, session_id: u32, key: &[u8], version: u8, seq_no: u8) -> Vec<u8> {
        let mut input = Vec::new();
        input.extend_from_slice(&session_id.to_be_bytes());
        input.extend_from_slice(key);
        input.push(version);
        input.push(seq_no);
        let mut pad = Vec::new();
        let mut last: Vec<u8> = Vec::new();
        while pad.len() < len {
            let mut stream = input.clone();
            stream.extend_from_slice(&last);
            last = Md5::digest(&stream).to_vec();
            pad.extend_from_slice(&last);
        }
        pad.truncate(len);
        pad
    }

    #[test]
    fn the_pad_is_the_rfc_chain_of_md5s() {
        for len in [0, 1, 15, 16, 17, 31, 32, 33, 100, 300] {
            let body: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let mut ob = body.clone();
            obfuscate(&mut ob, 0x0102_0304, b"tacsecret", 0xc1, 3);
            let pad = rfc_pad(len, 0x0102_0304, b"tacsecret", 0xc1, 3);
            let expect: Vec<u8> = body.iter().zip(&pad).map(|(b, p)| b ^ p).collect();
            assert_eq!(ob, expect, "len {len}");
            // and back
            obfuscate(&mut ob, 0x0102_0304, b"tacsecret", 0xc1, 3);
            assert_eq!(ob, body);
        }
    }

    #[test]
    fn the_first_pad_block_is_md5_of_the_inputs() {
        // MD5 of 00 00 00 01 | "k" | c0 | 01, computed independently
        // with `printf '\x00\x00\x00\x01k\xc0\x01' | md5sum`.
        let mut b = [0u8; 4];
        obfuscate(&mut b, 1, b"k", 0xc0, 1);
        let expect = Md5::digest([0, 0, 0, 1, b'k', 0xc0, 1]);
        assert_eq!(b, expect[..4]);
    }

    #[test]
    fn every_input_changes_the_pad() {
        let base = {
            let mut b = [0u8; 20];
            obfuscate(&mut b, 7, b"key", 0xc0, 1);
            b
        };
        for (sid, key, ver, seq) in [
            (8u32, &b"key"[..], 0xc0u8, 1u8),
            (7, &b"kez"[..], 0xc0, 1),
            (7, &b"key"[..], 0xc1, 1),
            (7, &b"key"[..], 0xc0, 2),
        ] {
            let mut b = [0u8; 20];
            obfuscate(&mut b, sid, key, ver, seq);
            assert_ne!(b, base);
        }
    }

    #[test]
    fn header_round_trip_is_big_endian() {
        let h = Header {
            version: 0xc1,
            kind: TYPE_AUTHEN,
            seq_no: 2,
            flags: FLAG_SINGLE_CONNECT,
            session_id: 0xdead_beef,
            length: 0x0102,
        };
        let b = h.encode();
        assert_eq!(b, [0xc1, 1, 2, 4, 0xde, 0xad, 0xbe, 0xef, 0, 0, 1, 2]);
        assert_eq!(Header::decode(&b), h);
        assert_eq!(h.major(), MAJOR);
    }

    #[test]
    fn start_layout() {
        let s = Start {
            authen_type: AUTHEN_TYPE_PAP,
            priv_lvl: PRIV_LVL_USER,
            user: b"alice",
            port: b"gh",
            rem_addr: b"10.0.0.1",
            data: b"pw",
        };
        let b = s.encode().unwrap();
        assert_eq!(&b[..8], &[1, 1, 2, 1, 5, 2, 8, 2]);
        assert_eq!(&b[8..], b"alicegh10.0.0.1pw");
        let long = vec![b'x'; 256];
        let e = Start { user: &long, ..s }.encode().unwrap_err();
        assert_eq!(
            e,
            TooLong {
                field: "user",
                max: 255
            }
        );
        let e = Start { data: &long, ..s }.encode().unwrap_err();
        assert_eq!(e.field, "data");
        assert!(
            Start {
                user: &long[..255],
                ..s
            }
            .encode()
            .is_ok()
        );
    }

    #[test]
    fn continue_layout() {
        assert_eq!(encode_continue(b"pw", 0).unwrap(), [0, 2, 0, 0, 0, b'p', b'w']);
        assert_eq!(
            encode_continue(b"", CONTINUE_FLAG_ABORT).unwrap(),
            [0, 0, 0, 0, 1]
        );
        let long = vec![0u8; 0x1_0000];
        assert!(encode_continue(&long, 0).is_err());
        assert!(encode_continue(&long[..0xffff], 0).is_ok());
    }

    #[test]
    fn reply_parsing() {
        let r = Reply::decode(&[
            5, 1, 0, 9, 0, 1, b'P', b'a', b's', b's', b'w', b'o', b'r', b'd', b':', 7,
        ])
        .unwrap();
        assert_eq!(r.status, Status::GetPass);
        assert!(r.no_echo());
        assert_eq!(r.server_msg, b"Password:");
        assert_eq!(r.data, [7]);
        assert_eq!(Reply::decode(&[1, 0, 0, 0, 0, 0]).unwrap().status, Status::Pass);
        assert_eq!(
            Reply::decode(&[0x21, 0, 0, 0, 0, 0]).unwrap().status,
            Status::Follow
        );
    }

    #[test]
    fn every_status_rfc_8907_defines_is_read() {
        for (byte, status) in [
            (0x01, Status::Pass),
            (0x02, Status::Fail),
            (0x03, Status::GetData),
            (0x04, Status::GetUser),
            (0x05, Status::GetPass),
            (0x06, Status::Restart),
            (0x07, Status::Error),
            (0x21, Status::Follow),
        ] {
            assert_eq!(
                Reply::decode(&[byte, 0, 0, 0, 0, 0]).map(|r| r.status),
                Ok(status),
                "{byte:#04x}"
            );
        }
    }

    #[test]
    fn only_the_noecho_flag_hides_the_answer() {
        for (flags, hidden) in [
            (0x00, false),
            (0x02, false),
            (0xfe, false),
            (0x01, true),
            (0x03, true),
        ] {
            let r = Reply::decode(&[4, flags, 0, 0, 0, 0]).unwrap();
            assert_eq!(r.no_echo(), hidden, "flags {flags:#04x}");
        }
    }

    #[test]
    fn hostile_reply_lengths_are_refused() {
        assert_eq!(Reply::decode(&[]), Err(BadReply::Short));
        assert_eq!(Reply::decode(&[1, 0, 0, 0, 0]), Err(BadReply::Short));
        // lengths beyond the body, short of it, and the largest values
        assert_eq!(Reply::decode(&[1, 0, 0, 1, 0, 0]), Err(BadReply::Lengths));
        assert_eq!(Reply::decode(&[1, 0, 0, 0, 0, 0, 9]), Err(BadReply::Lengths));
        assert_eq!(
            Reply::decode(&[1, 0, 0xff, 0xff, 0xff, 0xff, 1, 2]),
            Err(BadReply::Lengths)
        );
        // one length covering the other's bytes
        assert_eq!(
            Reply::decode(&[1, 0, 0, 3, 0, 1, 1, 2, 3]),
            Err(BadReply::Lengths)
        );
        // statuses outside the RFC
        assert_eq!(Reply::decode(&[0, 0, 0, 0, 0, 0]), Err(BadReply::Status(0)));
        assert_eq!(Reply::decode(&[8, 0, 0, 0, 0, 0]), Err(BadReply::Status(8)));
    }

    #[test]
    fn a_body_revealed_with_another_key_does_not_parse() {
        let mut ok = 0;
        for sid in 0..2000u32 {
            let mut b = vec![1, 0, 0, 0, 0, 0];
            obfuscate(&mut b, sid, b"right", 0xc0, 2);
            obfuscate(&mut b, sid, b"wrong", 0xc0, 2);
            if Reply::decode(&b).is_ok() {
                ok += 1;
            }
        }
        assert_eq!(ok, 0);
    }
}
