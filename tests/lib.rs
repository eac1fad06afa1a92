//! Scenario files for black-box tests (see `scenarios/README.md`): the
//! parser and matcher shared by the simulator run (`scenarios.rs`) and the
//! real-kernel run (`kernel_vm.rs`), and the kernel VM driver ([`vm`]).

pub mod vm;

#[derive(Debug, Default, Clone)]
pub struct Run {
    pub args: Vec<String>,
    pub stdin: String,
    pub stdout: Option<Vec<String>>,
    pub stdout_has: Vec<String>,
    pub stderr: Option<Vec<String>>,
    pub stderr_has: Vec<String>,
    pub status: i32,
    pub line: usize,
}

#[derive(Debug, Default)]
pub struct Scenario {
    pub daemon: Option<Vec<String>>,
    pub files: Vec<(String, String)>,
    pub runs: Vec<Run>,
}

pub fn split_args(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in s.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

pub fn parse(text: &str) -> Scenario {
    let mut s = Scenario::default();
    for (n, line) in text.lines().enumerate() {
        let (tag, rest) = line.split_once(' ').unwrap_or((line, ""));
        let run = s.runs.last_mut();
        match (tag, run) {
            ("#", _) | ("", _) => {}
            ("daemon", _) => s.daemon = Some(split_args(rest)),
            ("file", _) => s.files.push((rest.trim().to_string(), String::new())),
            ("|", _) => {
                if let Some(f) = s.files.last_mut() {
                    f.1.push_str(rest);
                    f.1.push('\n');
                }
            }
            ("$", _) => s.runs.push(Run {
                args: split_args(rest),
                line: n + 1,
                ..Run::default()
            }),
            ("<", Some(r)) => {
                r.stdin.push_str(rest);
                r.stdin.push('\n');
            }
            (">", Some(r)) => r.stdout.get_or_insert_with(Vec::new).push(rest.to_string()),
            (">-", Some(r)) => {
                r.stdout.get_or_insert_with(Vec::new);
            }
            (">~", Some(r)) => r.stdout_has.push(rest.to_string()),
            ("!", Some(r)) => r.stderr.get_or_insert_with(Vec::new).push(rest.to_string()),
            ("!-", Some(r)) => {
                r.stderr.get_or_insert_with(Vec::new);
            }
            ("!~", Some(r)) => r.stderr_has.push(rest.to_string()),
            ("?", Some(r)) => r.status = rest.trim().parse().expect("exit status"),
            // A blank expected line: "> " with nothing after it.
            (">", None) | ("!", None) | ("<", None) | ("?", None) => {
                panic!("line {}: expectation before any $ run", n + 1)
            }
            (t, _) if t.starts_with('>') && t.len() == 1 => {}
            (t, _) => panic!("line {}: unknown scenario tag {t:?}", n + 1),
        }
    }
    s
}

/// `{*}` matches any text; everything else must be equal.
pub fn matches(pattern: &str, line: &str) -> bool {
    let parts: Vec<&str> = pattern.split("{*}").collect();
    if parts.len() == 1 {
        return pattern == line;
    }
    let mut rest = line;
    for (i, p) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(p) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(p);
        } else {
            match rest.find(p) {
                Some(k) => rest = &rest[k + p.len()..],
                None => return false,
            }
        }
    }
    true
}

pub fn compare(
    what: &str,
    name: &str,
    run: &Run,
    want: &Option<Vec<String>>,
    has: &[String],
    got: &str,
) -> Vec<String> {
    let mut errs = Vec::new();
    let lines: Vec<&str> = got.lines().collect();
    if let Some(w) = want {
        let ok = w.len() == lines.len() && w.iter().zip(&lines).all(|(p, l)| matches(p, l));
        if !ok {
            errs.push(format!(
                "{name}:{}: {what} differs\n--- expected\n{}\n--- got\n{}",
                run.line,
                w.join("\n"),
                got
            ));
        }
    }
    for h in has {
        if !lines.iter().any(|l| matches(h, l)) {
            errs.push(format!(
                "{name}:{}: {what} lacks the line\n  {h}\n--- got\n{got}",
                run.line
            ));
        }
    }
    errs
}
