//! Narrow entries for the fuzz targets in `fuzz/` and the in-tree
//! proptests (`fuzzing_tests.rs`): input in, a panic is the only failure.
//! Not an API.

use crate::commands::{self, Command};

/// One chat message through the command parser. Only text that starts
/// with `/` (after leading whitespace) is a command.
#[doc(hidden)]
pub fn fuzz_command(text: &str) {
    let parsed = commands::parse(text);
    if let Some(cmd) = &parsed {
        assert!(
            text.trim_start().starts_with('/'),
            "{text:?} parsed as {cmd:?}"
        );
        let _ = cmd.need();
        assert!(!cmd.name().is_empty(), "{cmd:?} has no name");
        if let Command::Unknown(w) = cmd {
            assert!(!w.is_empty(), "an empty unknown command from {text:?}");
        }
    }
}

/// `codex exec --json` stdout (lines split on `\n`) through the JSONL
/// translator; returns how many runner events came out.
#[doc(hidden)]
pub fn fuzz_codex_jsonl(data: &[u8]) -> usize {
    crate::runner::exec::fuzzing::translate_lines(data)
}

/// `codex app-server` stdout (lines split on `\n`, bounded) through the
/// JSON-RPC parser and one notification mapper, then through whole turns
/// of the session that answers its requests; returns how many runner events
/// came out. At most two events per message, so the work stays bounded by
/// the input.
#[doc(hidden)]
pub fn fuzz_app_server(data: &[u8]) -> usize {
    use crate::runner::app_server::fuzzing as f;
    let mapped = f::map_lines(data);
    let driven = f::drive_session(data);
    let messages = data.split(|b| *b == b'\n').count();
    // Per turn: ThreadStarted, then per message its events.
    let bound = 2 * (1 + f::EVENTS_PER_MESSAGE * messages);
    assert!(
        mapped <= f::EVENTS_PER_MESSAGE * messages && driven <= bound,
        "{mapped} / {driven} events from {messages} lines"
    );
    mapped + driven
}

#[cfg(test)]
#[path = "fuzzing_tests.rs"]
mod tests;
