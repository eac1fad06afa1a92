//! The simulated kernel's request path: arbitrary bytes (split into several
//! messages) never panic it, and every reply it builds encodes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sadb::pfkey::Dialect;
use sadb::{Config, Sadb};

fuzz_target!(|data: &[u8]| {
    let mut db = Sadb::new(Config::default());
    let mut now = 1_000;
    for chunk in data.split(|&b| b == 0xff) {
        let r = db.handle_bytes(chunk, now);
        for d in &r.deliveries {
            d.msg.emit(Dialect::Illumos).expect("the kernel's own replies encode");
        }
        now += 10;
        let _ = db.age(now);
    }
});
