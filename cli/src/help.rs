//! `help`, `help CMD`, `help attr` (ipseckey-behaviour.md 1.10).

use crate::parse::all_keywords;

/// The text `help` prints for `topic`.
pub fn help(topic: Option<&str>) -> String {
    match topic {
        None => MAIN.to_string(),
        Some("attr") => {
            let mut s = String::from("\nSA attributes:\n\n");
            for chunk in all_keywords().chunks(3) {
                for k in chunk {
                    s.push_str(&format!("    {k:<15}"));
                }
                s.push('\n');
            }
            s
        }
        Some(cmd) => match cmd {
            "update" => "update\t - Update an existing SA\n".into(),
            "update-pair" => "update-pair - Update an existing pair of SA's\n".into(),
            "add" => "add\t - Add a new security association (SA)\n".into(),
            "delete" => "delete - Delete an SA\n".into(),
            "delete-pair" => "delete-pair - Delete a pair of SA's\n".into(),
            "get" => "get - Display an SA\n".into(),
            "monitor" => "monitor - Monitor all PF_KEY reply messages.\n".into(),
            "pmonitor" | "passive_monitor" => {
                "pmonitor, passive_monitor - Monitor PF_KEY messages that\n                            reply to all PF_KEY sockets.\n".into()
            }
            "quit" | "exit" => "quit, exit - Exit the program\n".into(),
            "save" => "save\t    - Saves all SAs to a file\n".into(),
            "load" => "load FILE  - Read commands from FILE (like -f FILE)\n".into(),
            "help" | "?" => "help\t    - Display list of commands\nhelp <cmd> - Display help for command\nhelp attr  - Display possible SA attributes\n".into(),
            "flush" => types("flush - Delete all SAs", "delete"),
            "dump" => types("dump - Display all SAs", "display"),
            other => format!("{other}: Unknown command\n"),
        },
    }
}

fn types(head: &str, verb: &str) -> String {
    format!(
        "{head}\n\nOptional arguments:\nall        {verb} all SAs\nesp        {verb} just ESP SAs\nah         {verb} just AH SAs\n<number>   {verb} just SAs with type given by number\n\n"
    )
}

const MAIN: &str = "Commands
--------
?, help  - Display this list
help <cmd> - Display help for command
help attr  - Display possible SA attributes
quit, exit - Exit the program
monitor - Monitor all PF_KEY reply messages.
pmonitor, passive_monitor - Monitor PF_KEY messages that
                            reply to all PF_KEY sockets.
load FILE - Read commands from FILE

The following commands are of the form:
    <command> {SA type} {attribute value}*

add (interactive only) - Add a new security association (SA)
update (interactive only) - Update an existing SA
update-pair (interactive only) - Update an existing SA pair
delete - Delete an SA
delete-pair - Delete an SA pair
get - Display an SA
flush - Delete all SAs
dump - Display all SAs
save - Saves all SAs to a file
";

/// Tab completion at the prompt: commands first, then SA types, then
/// extension keywords. Returns where the completed word starts and the
/// candidates.
pub fn complete(line: &str, pos: usize) -> (usize, Vec<String>) {
    let upto = line.get(..pos).unwrap_or(line);
    let start = upto.rfind(char::is_whitespace).map(|i| i + 1).unwrap_or(0);
    let word = &upto[start..];
    let before: Vec<&str> = upto[..start].split_whitespace().collect();
    const COMMANDS: &[&str] = &[
        "add",
        "update",
        "update-pair",
        "delete",
        "delete-pair",
        "get",
        "flush",
        "dump",
        "save",
        "monitor",
        "passive_monitor",
        "pmonitor",
        "help",
        "load",
        "quit",
        "exit",
    ];
    let pool: Vec<&str> = match before.as_slice() {
        [] => COMMANDS.to_vec(),
        [cmd] if matches!(*cmd, "flush" | "dump" | "save") => vec!["all", "ah", "esp"],
        [cmd] if matches!(*cmd, "help" | "?") => {
            let mut v = COMMANDS.to_vec();
            v.push("attr");
            v
        }
        [_] => vec!["ah", "esp"],
        [cmd, ..]
            if matches!(
                *cmd,
                "add" | "update" | "update-pair" | "get" | "delete" | "delete-pair"
            ) =>
        {
            all_keywords()
        }
        _ => Vec::new(),
    };
    (
        start,
        pool.into_iter()
            .filter(|c| c.starts_with(word))
            .map(str::to_string)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completes_commands_types_and_keywords() {
        assert_eq!(
            complete("up", 2),
            (0, vec!["update".to_string(), "update-pair".to_string()])
        );
        assert_eq!(complete("add e", 5), (4, vec!["esp".to_string()]));
        assert_eq!(
            complete("flush a", 7),
            (6, vec!["all".to_string(), "ah".to_string()])
        );
        let (at, c) = complete("add esp spi 5 encr", 18);
        assert_eq!(
            (at, c),
            (
                14,
                vec![
                    "encr_alg".to_string(),
                    "encralg".to_string(),
                    "encrkey".to_string()
                ]
            )
        );
        assert!(complete("get esp spi 1 hard_", 19)
            .1
            .contains(&"hard_bytes".to_string()));
    }

    #[test]
    fn attr_lists_every_keyword() {
        let t = help(Some("attr"));
        assert!(t.starts_with("\nSA attributes:\n\n"));
        for k in all_keywords() {
            assert!(t.contains(&format!("    {k:<15}")), "{k}");
        }
    }
}
