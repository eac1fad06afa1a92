//! The PF_KEY decoder in both dialects: never panics, and whatever it
//! accepts re-encodes to bytes that decode to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sadb::pfkey::{Dialect, Message};

fuzz_target!(|data: &[u8]| {
    for d in [Dialect::Illumos, Dialect::Linux] {
        if let Ok(m) = Message::parse(data, d) {
            if let Ok(bytes) = m.emit(d) {
                let again = Message::parse(&bytes, d).expect("re-emitted message must decode");
                assert_eq!(again, m);
            }
        }
    }
});
