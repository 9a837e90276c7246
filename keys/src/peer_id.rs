//! libp2p PeerId of an ed25519 identity, computed without depending on libp2p.
//!
//! Only `actors` and `client` may know libp2p (ARCHITECTURE.md), yet `keygen` must write
//! every server's PeerId into the configs. The encoding is fixed by the libp2p peer-id
//! spec: the protobuf `PublicKey { Type = Ed25519 (1), Data = 32 bytes }` is 36 bytes,
//! short enough (<= 42) to be wrapped in an *identity* multihash (code 0x00, length
//! 0x24), and the result is printed in base58btc. `actors` checks this against libp2p's
//! own derivation at start-up, so a mismatch cannot go unnoticed.

/// The base58 PeerId string libp2p derives for this ed25519 public key.
pub fn peer_id_string(ed25519_public: &[u8; 32]) -> String {
    let mut bytes = Vec::with_capacity(38);
    // identity multihash: code 0x00, digest length 36
    bytes.extend_from_slice(&[0x00, 0x24]);
    // protobuf field 1 (varint) = 1 (Ed25519); field 2 (bytes), length 32
    bytes.extend_from_slice(&[0x08, 0x01, 0x12, 0x20]);
    bytes.extend_from_slice(ed25519_public);
    bs58::encode(bytes).into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ed25519_peer_ids_have_the_familiar_prefix() {
        let id = crate::Identity::generate(&mut rand_core::OsRng).public();
        let pid = peer_id_string(&id.sign);
        assert!(pid.starts_with("12D3KooW"), "{pid}");
        assert_eq!(pid.len(), 52);
    }
}
