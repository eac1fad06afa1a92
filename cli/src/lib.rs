//! The `ipseckey(8)` front end as a library: the command language, the
//! printers of illumos ipseckey, and the transports that carry PF_KEY
//! messages to a kernel (the simulator's socket, an in-process engine, the
//! Linux kernel's PF_KEY or XFRM netlink).

pub mod driver;
pub mod files;
pub mod help;
pub mod json;
pub mod kernel;
pub mod lab;
pub mod lexer;
pub mod parse;
pub mod print;
pub mod request;
pub mod run;
pub mod transport;
