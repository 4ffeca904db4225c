//! Laying entries out in the caller's buffer, in safe code: NUL-terminated
//! strings and (for a group's members) an aligned pointer array, as
//! offsets the ABI layer turns into pointers. A buffer that is too small
//! is [`PackError::TooSmall`] (glibc then retries with a larger one).

use gatehouse_sdk::proto::{NssGroup, NssPasswd};

/// Why an entry could not be laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PackError {
    /// The buffer is too small (`ERANGE`).
    TooSmall,
    /// A field holds a NUL byte: not representable, never answered.
    Nul,
}

/// Offsets of a passwd entry's strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasswdLayout {
    /// `pw_name`.
    pub name: usize,
    /// `pw_passwd` (always `x`).
    pub passwd: usize,
    /// `pw_gecos`.
    pub gecos: usize,
    /// `pw_dir`.
    pub dir: usize,
    /// `pw_shell`.
    pub shell: usize,
}

/// Offsets of a group entry: its strings and its member pointer array
/// (`members.len() + 1` slots, the last one for the terminating NULL).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupLayout {
    /// `gr_name`.
    pub name: usize,
    /// `gr_passwd` (always `x`).
    pub passwd: usize,
    /// Each member's name.
    pub members: Vec<usize>,
    /// The pointer array (aligned for pointers at the buffer's address).
    pub array: usize,
}

/// A cursor over a caller's buffer.
struct Packer<'b> {
    buf: &'b mut [u8],
    used: usize,
}

impl Packer<'_> {
    fn string(&mut self, s: &str) -> Result<usize, PackError> {
        if s.as_bytes().contains(&0) {
            return Err(PackError::Nul);
        }
        let at = self.used;
        let end = at.checked_add(s.len() + 1).ok_or(PackError::TooSmall)?;
        let dst = self.buf.get_mut(at..end).ok_or(PackError::TooSmall)?;
        dst[..s.len()].copy_from_slice(s.as_bytes());
        dst[s.len()] = 0;
        self.used = end;
        Ok(at)
    }

    /// Reserves `n` pointer slots aligned for pointers, given the buffer's
    /// address `base`.
    fn pointers(&mut self, base: usize, n: usize) -> Result<usize, PackError> {
        let align = std::mem::align_of::<*const u8>();
        let addr = base.checked_add(self.used).ok_or(PackError::TooSmall)?;
        let pad = (align - addr % align) % align;
        let at = self.used.checked_add(pad).ok_or(PackError::TooSmall)?;
        let bytes = n
            .checked_mul(std::mem::size_of::<*const u8>())
            .ok_or(PackError::TooSmall)?;
        let end = at.checked_add(bytes).ok_or(PackError::TooSmall)?;
        if end > self.buf.len() {
            return Err(PackError::TooSmall);
        }
        self.used = end;
        Ok(at)
    }
}

/// Writes a passwd entry's strings into `buf`.
pub fn pack_passwd(buf: &mut [u8], p: &NssPasswd) -> Result<PasswdLayout, PackError> {
    let mut k = Packer { buf, used: 0 };
    Ok(PasswdLayout {
        name: k.string(&p.name)?,
        passwd: k.string("x")?,
        gecos: k.string(&p.gecos)?,
        dir: k.string(&p.dir)?,
        shell: k.string(&p.shell)?,
    })
}

/// Writes a group entry's strings into `buf` (whose address is `base`)
/// and reserves its member pointer array.
pub fn pack_group(buf: &mut [u8], base: usize, g: &NssGroup) -> Result<GroupLayout, PackError> {
    let mut k = Packer { buf, used: 0 };
    let array = k.pointers(base, g.members.len() + 1)?;
    let name = k.string(&g.name)?;
    let passwd = k.string("x")?;
    let members = g.members.iter().map(|m| k.string(m)).collect::<Result<_, _>>()?;
    Ok(GroupLayout {
        name,
        passwd,
        members,
        array,
    })
}

/// The gids `initgroups` should add: those of `found` that are neither
/// the primary group `primary` nor already in `have`, each once.
pub fn new_gids(have: &[u32], primary: u32, found: &[u32]) -> Vec<u32> {
    let mut out: Vec<u32> = Vec::new();
    for g in found {
        if *g != primary && !have.contains(g) && !out.contains(g) {
            out.push(*g);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> NssPasswd {
        NssPasswd {
            name: "alice".into(),
            uid: 70001,
            gid: 70001,
            gecos: "Alice L".into(),
            dir: "/home/alice".into(),
            shell: "/bin/bash".into(),
        }
    }

    fn cstr(buf: &[u8], at: usize) -> &str {
        let end = buf[at..].iter().position(|b| *b == 0).expect("NUL") + at;
        std::str::from_utf8(&buf[at..end]).expect("utf8")
    }

    #[test]
    fn passwd_strings_land_nul_terminated() {
        let mut buf = [0xffu8; 64];
        let l = pack_passwd(&mut buf, &alice()).expect("fits");
        assert_eq!(cstr(&buf, l.name), "alice");
        assert_eq!(cstr(&buf, l.passwd), "x");
        assert_eq!(cstr(&buf, l.gecos), "Alice L");
        assert_eq!(cstr(&buf, l.dir), "/home/alice");
        assert_eq!(cstr(&buf, l.shell), "/bin/bash");
    }

    #[test]
    fn a_small_buffer_is_too_small_at_every_size() {
        // exactly: 6 + 2 + 8 + 12 + 10 = 38 bytes
        for n in 0..38 {
            let mut buf = vec![0u8; n];
            assert_eq!(pack_passwd(&mut buf, &alice()), Err(PackError::TooSmall), "{n}");
        }
        let mut buf = vec![0u8; 38];
        assert!(pack_passwd(&mut buf, &alice()).is_ok());
        let mut p = alice();
        p.gecos = "a\0b".into();
        assert_eq!(pack_passwd(&mut [0u8; 64], &p), Err(PackError::Nul));
    }

    #[test]
    fn group_arrays_are_aligned_at_any_buffer_address() {
        let g = NssGroup {
            name: "default.devs".into(),
            gid: 80003,
            members: vec!["alice".into(), "bob".into()],
        };
        for base in 0..8 {
            let mut buf = vec![0u8; 128];
            let l = pack_group(&mut buf, base, &g).expect("fits");
            assert_eq!((base + l.array) % std::mem::align_of::<*const u8>(), 0);
            let slots = std::mem::size_of::<*const u8>() * 3;
            assert!(l.name >= l.array + slots);
            assert_eq!(cstr(&buf, l.name), "default.devs");
            let names: Vec<&str> = l.members.iter().map(|m| cstr(&buf, *m)).collect();
            assert_eq!(names, ["alice", "bob"]);
        }
        assert_eq!(pack_group(&mut [0u8; 16], 0, &g), Err(PackError::TooSmall));
    }

    #[test]
    fn initgroups_adds_each_new_gid_once() {
        assert_eq!(
            new_gids(&[100, 80002], 70001, &[70001, 80002, 80003, 80003]),
            vec![80003]
        );
        assert!(new_gids(&[], 1, &[]).is_empty());
    }
}
