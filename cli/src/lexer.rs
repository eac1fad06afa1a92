//! The line reader of ipseckey (ipseckey-behaviour.md 1.2): backslash
//! continuations, comments, and whitespace tokens with double quotes.

/// Longest physical line, as in illumos (4096-byte buffer, 2 bytes kept free).
pub const MAX_LINE: usize = 4093;
/// Longest command after joining continuation lines.
pub const MAX_COMMAND: usize = 4096;
/// Most tokens in one command.
pub const MAX_TOKENS: usize = 4096;

/// One command as read: its text, tokens, and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandText {
    /// Physical line number of its first line (1-based).
    pub line: usize,
    pub tokens: Vec<String>,
}

/// A reading problem that ends the whole run in file mode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("Line {0} too big.")]
    LineTooBig(usize),
    #[error("Command buffer overrun.")]
    Overrun,
    #[error("Too many input tokens.")]
    TooManyTokens,
}

impl ReadError {
    /// The message when reading interactively (standard input, the
    /// prompt): an over-long line is dropped and the session goes on, so
    /// no line number (ipseckey-behaviour.md 1.2).
    pub fn interactive(&self) -> String {
        match self {
            ReadError::LineTooBig(_) => format!("Line too long (max={MAX_COMMAND} chars)"),
            e => e.to_string(),
        }
    }
}

/// Splits a command into tokens: whitespace separates, a double quote
/// starts a region where it does not; the quotes are not kept.
pub fn tokenize(s: &str) -> Result<Vec<String>, ReadError> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_token = false;
    let mut quoted = false;
    for c in s.chars() {
        if quoted {
            if c == '"' {
                quoted = false;
                out.push(std::mem::take(&mut cur));
                in_token = false;
            } else {
                cur.push(c);
            }
        } else if c.is_whitespace() {
            if in_token {
                out.push(std::mem::take(&mut cur));
                in_token = false;
            }
        } else if c == '"' && !in_token {
            quoted = true;
            in_token = true;
        } else {
            cur.push(c);
            in_token = true;
        }
        if out.len() > MAX_TOKENS {
            return Err(ReadError::TooManyTokens);
        }
    }
    if in_token || quoted {
        // An unterminated quote ends with the line; its newline is not data.
        if quoted && cur.ends_with('\n') {
            cur.pop();
        }
        out.push(cur);
    }
    Ok(out)
}

/// Whether a typed line may carry key material, and so must stay out of the
/// prompt's history (decisions.md front end #13): it names a key keyword,
/// or has a word that looks like a key (a long hex string, as `shown`
/// hides in messages), such as a key typed after a misspelt keyword.
pub fn may_hold_key(line: &str) -> bool {
    line.contains("authkey")
        || line.contains("encrkey")
        || line.split_whitespace().any(|w| {
            let hex = w
                .trim_matches('"')
                .trim_start_matches("0x")
                .split('/')
                .next()
                .unwrap_or("");
            hex.len() >= 16 && hex.bytes().all(|c| c.is_ascii_hexdigit())
        })
}

/// Joins physical lines into commands: a backslash right before the end of
/// a line continues the command on the next one. Comment lines (first
/// non-blank `#`) and blank lines produce nothing.
#[derive(Debug, Default)]
pub struct Joiner {
    pending: String,
    /// Bytes of `pending` as read (invalid UTF-8 grows when replaced).
    pending_raw: usize,
    start: usize,
    line: usize,
}

impl Joiner {
    pub fn new() -> Joiner {
        Joiner::default()
    }

    /// Feeds one physical line as bytes (without its newline): the length
    /// limit counts bytes as read, before invalid UTF-8 is replaced.
    pub fn push_bytes(&mut self, raw: &[u8]) -> Result<Option<CommandText>, ReadError> {
        if raw.len() > MAX_LINE {
            self.line += 1;
            return Err(ReadError::LineTooBig(self.line));
        }
        let text = String::from_utf8_lossy(raw);
        self.push_unchecked(&text, raw.len())
    }

    /// Feeds one physical line (without its newline). Returns a complete
    /// command when the line ends one.
    pub fn push(&mut self, raw: &str) -> Result<Option<CommandText>, ReadError> {
        if raw.len() > MAX_LINE {
            self.line += 1;
            return Err(ReadError::LineTooBig(self.line));
        }
        self.push_unchecked(raw, raw.len())
    }

    fn push_unchecked(
        &mut self,
        raw: &str,
        raw_len: usize,
    ) -> Result<Option<CommandText>, ReadError> {
        self.line += 1;
        if self.pending.is_empty() {
            self.start = self.line;
        }
        let (body, more) = match raw.strip_suffix('\\') {
            Some(b) => (b, true),
            None => (raw, false),
        };
        self.pending.push_str(body);
        self.pending.push(if more { ' ' } else { '\n' });
        self.pending_raw += raw_len + 1 - usize::from(more);
        if self.pending_raw > MAX_COMMAND {
            self.pending.clear();
            self.pending_raw = 0;
            return Err(ReadError::Overrun);
        }
        if more {
            return Ok(None);
        }
        let text = std::mem::take(&mut self.pending);
        self.pending_raw = 0;
        let trimmed = text.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            return Ok(None);
        }
        Ok(Some(CommandText {
            line: self.start,
            tokens: tokenize(&text)?,
        }))
    }

    /// Whatever is left at end of input (a final line ending in a backslash).
    pub fn finish(&mut self) -> Result<Option<CommandText>, ReadError> {
        self.pending_raw = 0;
        if self.pending.trim().is_empty() || self.pending.trim_start().starts_with('#') {
            self.pending.clear();
            return Ok(None);
        }
        let text = std::mem::take(&mut self.pending);
        Ok(Some(CommandText {
            line: self.start,
            tokens: tokenize(&text)?,
        }))
    }

    /// Whether a command is being continued (the last line ended in a
    /// backslash).
    pub fn pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Physical lines read so far.
    pub fn lines(&self) -> usize {
        self.line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_group_words() {
        assert_eq!(tokenize("a \"b c\" d").unwrap(), vec!["a", "b c", "d"]);
        assert_eq!(
            tokenize("srcidtype fqdn \"x y\"").unwrap(),
            vec!["srcidtype", "fqdn", "x y"]
        );
        assert_eq!(tokenize("  ").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn continuation_and_comments() {
        let mut j = Joiner::new();
        assert_eq!(j.push("# comment").unwrap(), None);
        assert_eq!(j.push("add esp spi 1 \\").unwrap(), None);
        let c = j.push("  dst 10.0.0.1").unwrap().unwrap();
        assert_eq!(c.line, 2);
        assert_eq!(c.tokens, vec!["add", "esp", "spi", "1", "dst", "10.0.0.1"]);
        assert_eq!(j.push("").unwrap(), None);
        // A backslash followed by spaces is not a continuation.
        let c = j.push("flush \\ ").unwrap().unwrap();
        assert_eq!(c.tokens, vec!["flush", "\\"]);
    }

    #[test]
    fn lines_that_may_hold_keys_stay_out_of_history() {
        assert!(may_hold_key("add esp spi 1 encrkey 00112233 \\"));
        assert!(may_hold_key("authkey"));
        // A key alone on a continuation line, or after a misspelt keyword.
        assert!(may_hold_key("    bde359723576fdea08e56cbe876e24ad"));
        assert!(may_hold_key(
            "encrkye 0x00112233445566778899aabbccddeeff/128"
        ));
        assert!(!may_hold_key("get esp spi 0x2112 dst 10.0.0.2"));
        assert!(!may_hold_key("dump"));
        let mut j = Joiner::new();
        assert!(!j.pending());
        assert_eq!(j.push("add esp spi 1 \\").unwrap(), None);
        assert!(j.pending());
        assert!(j.push("dst 10.0.0.1").unwrap().is_some());
        assert!(!j.pending());
    }

    #[test]
    fn limits() {
        let mut j = Joiner::new();
        assert_eq!(
            j.push(&"x".repeat(MAX_LINE + 1)),
            Err(ReadError::LineTooBig(1))
        );
        let mut j = Joiner::new();
        let long = format!("{}\\", "y".repeat(3000));
        assert_eq!(j.push(&long).unwrap(), None);
        assert_eq!(j.push(&long), Err(ReadError::Overrun));
    }
}
