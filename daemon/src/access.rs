//! Peer credentials: who may call which endpoints.

use crate::config::AccessPolicy;

/// The credentials of a socket peer (SO_PEERCRED).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Process id, when the kernel reported one.
    pub pid: Option<i32>,
}

impl Peer {
    /// A peer of the `[forward_auth]` TCP listener: no credentials; uid and
    /// gid are `(uid_t)-1`, which no account has.
    pub const NETWORK: Self = Self {
        uid: u32::MAX,
        gid: u32::MAX,
        pid: None,
    };
}

/// What a peer may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rights {
    /// May call client endpoints (login, verify, health …).
    pub client: bool,
    /// May call admin endpoints (reload, user admin, explain).
    pub admin: bool,
}

/// Decides a peer's rights. The daemon's own uid is always an admin: a
/// process running as that uid can already read the daemon's memory and
/// state, so refusing it would protect nothing.
pub fn rights(policy: &AccessPolicy, peer: Peer, daemon_uid: u32) -> Rights {
    let admin = peer.uid == daemon_uid
        || policy.admin_uids.contains(&peer.uid)
        || policy.admin_gids.contains(&peer.gid);
    let open = policy.client_uids.is_empty() && policy.client_gids.is_empty();
    let client =
        admin || open || policy.client_uids.contains(&peer.uid) || policy.client_gids.contains(&peer.gid);
    Rights { client, admin }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(admin: &[u32], cu: &[u32], cg: &[u32]) -> AccessPolicy {
        AccessPolicy {
            admin_uids: admin.to_vec(),
            admin_gids: vec![],
            client_uids: cu.to_vec(),
            client_gids: cg.to_vec(),
        }
    }

    #[test]
    fn open_clients_restricted_admins() {
        let p = policy(&[0], &[], &[]);
        let nobody = Peer {
            uid: 65534,
            gid: 65534,
            pid: None,
        };
        assert_eq!(
            rights(&p, nobody, 999),
            Rights {
                client: true,
                admin: false
            }
        );
        let root = Peer {
            uid: 0,
            gid: 0,
            pid: None,
        };
        assert_eq!(
            rights(&p, root, 999),
            Rights {
                client: true,
                admin: true
            }
        );
        assert!(rights(&p, nobody, 65534).admin, "own uid is admin");
    }

    #[test]
    fn either_client_list_alone_restricts_and_admin_groups_are_admins() {
        let peer = |uid, gid| Peer { uid, gid, pid: None };
        // only uids listed: a stranger is no client
        let p = policy(&[], &[1000], &[]);
        assert!(rights(&p, peer(1000, 1), 999).client);
        assert!(!rights(&p, peer(7, 7), 999).client);
        // only gids listed: likewise
        let p = policy(&[], &[], &[50]);
        assert!(rights(&p, peer(7, 50), 999).client);
        assert!(!rights(&p, peer(7, 7), 999).client);
        // admin by group: admin and client, even outside the client lists
        let mut p = policy(&[], &[1000], &[]);
        p.admin_gids = vec![10];
        assert_eq!(
            rights(&p, peer(7, 10), 999),
            Rights {
                client: true,
                admin: true
            }
        );
        assert_eq!(
            rights(&p, peer(7, 11), 999),
            Rights {
                client: false,
                admin: false
            }
        );
        // the network peer is nobody's uid
        assert!(!rights(&p, Peer::NETWORK, 999).admin);
    }

    #[test]
    fn client_lists_restrict() {
        let p = policy(&[0], &[1000], &[50]);
        assert!(
            rights(
                &p,
                Peer {
                    uid: 1000,
                    gid: 1,
                    pid: None
                },
                999
            )
            .client
        );
        assert!(
            rights(
                &p,
                Peer {
                    uid: 7,
                    gid: 50,
                    pid: None
                },
                999
            )
            .client
        );
        assert!(
            !rights(
                &p,
                Peer {
                    uid: 7,
                    gid: 7,
                    pid: None
                },
                999
            )
            .client
        );
    }
}
