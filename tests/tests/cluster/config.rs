//! `node check-config` names the bad field and file.

use std::process::Command;

use keys::generate::{write_cluster, ClusterSpec};
use keys::manifest::Policy;
use tests::cluster::binary;

fn generated() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let spec = ClusterSpec {
        servers: 3,
        clients: 1,
        out: dir.path().to_path_buf(),
        base_port: 7100,
        threshold: None,
        round_ms: 1000,
        slots: 16,
        slot_bytes: 256,
        min_anonymity_set: 3,
        retention_rounds: 100,
        policy: Policy::Open,
        force: false,
    };
    write_cluster(&spec, &mut rand_core::OsRng).unwrap();
    dir
}

fn check(path: &std::path::Path) -> (bool, String) {
    let out = Command::new(binary("node", "node"))
        .arg("check-config")
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout),
    )
}

#[test]
fn a_generated_config_checks_clean() {
    let dir = generated();
    let (ok, text) = check(&dir.path().join("node-1.toml"));
    assert!(ok, "{text}");
    assert!(text.contains("ok"), "{text}");
}

#[test]
fn each_broken_field_is_named() {
    let dir = generated();
    let path = dir.path().join("node-0.toml");
    let good = std::fs::read_to_string(&path).unwrap();
    let cases = [
        ("threshold = 1", "threshold = 2", "round.threshold"),
        ("slot_bytes = 256", "slot_bytes = 10", "round.slot_bytes"),
        (
            "admin = \"127.0.0.1:7200\"",
            "admin = \"nowhere\"",
            "node.admin",
        ),
        ("id = 0\nkey_file", "id = 9\nkey_file", "node.id"),
        ("[node]", "[node]\ncolour = \"red\"", "colour"),
        (
            "validity_key_file = \"validity.key\"",
            "validity_key_file = \"missing.key\"",
            "node.validity_key_file",
        ),
        (
            "validity_key_file = \"validity.key\"",
            "validity_key_file = \"node-1.key\"",
            "node.validity_key_file",
        ),
        (
            "[node]",
            "[backup]\nguess_limit = 0\n\n[node]",
            "backup.guess_limit",
        ),
        (
            "[node]",
            "[backup]\nrefresh_secs = 0\n\n[node]",
            "backup.refresh_secs",
        ),
    ];
    for (from, to, field) in cases {
        assert!(good.contains(from), "fixture lacks {from:?}");
        std::fs::write(&path, good.replacen(from, to, 1)).unwrap();
        let (ok, text) = check(&path);
        assert!(!ok, "{field}: accepted a broken config");
        assert!(
            text.contains(field) && text.contains("node-0.toml"),
            "{field} not named: {text}"
        );
    }
    // A key file that group can read is refused, naming the file.
    std::fs::write(&path, &good).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.path().join("node-0.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let (ok, text) = check(&path);
    assert!(
        !ok && text.contains("node-0.key") && text.contains("0644"),
        "{text}"
    );
}
