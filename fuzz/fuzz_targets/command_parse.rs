//! The ipseckey command language: any text never panics the line reader,
//! the parser or the message builder.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut j = ipseckey::lexer::Joiner::new();
    for line in text.lines() {
        if let Ok(Some(c)) = j.push(line) {
            if let Ok(cmd) = ipseckey::parse::parse_command(&c.tokens, ipseckey::parse::ParseOpts { numeric: true }) {
                let mut seq = 0;
                for (_, m) in ipseckey::request::build(&cmd, 1, &mut || {
                    seq += 1;
                    seq
                }) {
                    let _ = m.emit(sadb::pfkey::Dialect::Illumos);
                }
            }
        }
    }
});
