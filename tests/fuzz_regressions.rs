//! Every input kept under `fuzz/regressions/TARGET/` (seeds, and each crash
//! a fuzz run found once it was fixed) replayed through the cargo-fuzz
//! targets' own bodies, so ordinary `cargo test` guards them.

#[path = "../fuzz/bodies.rs"]
mod bodies;

use std::path::Path;

fn replay(target: &str, body: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions")
        .join(target);
    let mut n = 0;
    for e in std::fs::read_dir(&dir).expect("fuzz/regressions/TARGET exists") {
        let path = e.expect("entry").path();
        let data = std::fs::read(&path).expect("read");
        eprintln!("{target}: {}", path.display());
        body(&data);
        n += 1;
    }
    assert!(n > 0, "no inputs under {}", dir.display());
}

#[test]
fn pfkey_decode_regressions() {
    replay("pfkey_decode", bodies::pfkey_decode);
}

#[test]
fn sadb_handle_regressions() {
    replay("sadb_handle", bodies::sadb_handle);
}

#[test]
fn command_parse_regressions() {
    replay("command_parse", bodies::command_parse);
}

#[test]
fn esp_inbound_regressions() {
    replay("esp_inbound", bodies::esp_inbound);
}
