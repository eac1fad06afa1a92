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
